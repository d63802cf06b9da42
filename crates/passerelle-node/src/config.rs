//! `node.toml`: the node's configuration, deserialised into documented structs with defaults.
//!
//! Relative paths are resolved against the folder that holds the file, so a
//! node folder written by `passerelle init` can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use passerelle_model::{AgencyId, Kind};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The reason is part of the message, not a separate source: callers that print the whole
    /// chain (`{:#}`) said it twice.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The whole `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's agency id, e.g. `tg.anpe`.
    pub agency: AgencyId,
    /// Address the gRPC port listens on (mutual TLS only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder of the sled store.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub signing: SigningConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub records: RecordsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub access: AccessConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    /// Partner agencies this node has a relationship with.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Folder of the file this was read from; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This agency's CA certificate (PEM).
    #[serde(default = "default_ca")]
    pub ca: PathBuf,
    /// The node certificate chain (PEM).
    #[serde(default = "default_node_cert")]
    pub cert: PathBuf,
    /// The node certificate's private key (PEM).
    #[serde(default = "default_node_key")]
    pub key: PathBuf,
    /// Partners' CAs and signing keys (TOML, written by `passerelle trust add`); optional.
    #[serde(default)]
    pub trust: Option<PathBuf>,
    /// A PEM certificate revocation list; optional.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The Ed25519 record-signing key (PKCS#8 PEM).
    #[serde(default = "default_signing_key")]
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// sled page cache size in MiB.
    #[serde(default = "default_cache_mb")]
    pub cache_capacity_mb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// Smallest count a supply cell may publish unsuppressed (5 or more).
    #[serde(default = "default_min_cell")]
    pub min_cell_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus metrics listener.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest gRPC message accepted, in bytes (4 MiB).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Concurrent streams per connection.
    #[serde(default = "default_max_streams")]
    pub max_concurrent_streams: u32,
    /// Open `Pull` streams one partner agency may hold at once, all its connections together.
    #[serde(default = "default_streams_per_peer")]
    pub max_streams_per_peer: u32,
    /// Calls per second one partner agency may make (a burst of twice as many is let through).
    #[serde(default = "default_peer_rate")]
    pub peer_calls_per_second: u32,
    /// Most records this node accepts in one batch from a peer.
    #[serde(default = "default_max_batch")]
    pub max_batch_records: u32,
    /// Deadline of every call that is not a stream, seconds (this node serving, and calling peers).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_secs: u64,
    /// A pull stream that brings nothing (not even the heartbeat a node sends every
    /// `sync.heartbeat_secs`) for this long is dropped and reconnected, seconds.
    #[serde(default = "default_idle_timeout")]
    pub pull_idle_timeout_secs: u64,
}

/// How this node pulls from its peers and keeps its log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Tombstones (FILLED, WITHDRAWN, EXPIRED) are purged this many days after their last change.
    #[serde(default = "default_retention")]
    pub tombstone_retention_days: u64,
    /// First retry delay after a failed pull, milliseconds (doubles up to the ceiling, with jitter).
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    /// Ceiling of the retry delay, seconds.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: u64,
    /// Most records per batch served to a peer.
    #[serde(default = "default_batch_records")]
    pub batch_records: u32,
    /// Approximate most bytes per batch served to a peer.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
    /// Seconds between sweeps that expire own vacancies past `closes_on` (old tombstones are
    /// purged by the first sweep of each UTC day).
    #[serde(default = "default_sweep")]
    pub sweep_interval_secs: u64,
    /// A `follow` stream with nothing new sends an empty batch this often, seconds, so that the
    /// peer can tell a quiet link from a dead one.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
}

fn default_retention() -> u64 {
    180
}
fn default_backoff_min() -> u64 {
    200
}
fn default_backoff_max() -> u64 {
    30
}
fn default_batch_records() -> u32 {
    1000
}
fn default_batch_bytes() -> u32 {
    1 << 20
}
fn default_sweep() -> u64 {
    60
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            tombstone_retention_days: default_retention(),
            backoff_min_ms: default_backoff_min(),
            backoff_max_secs: default_backoff_max(),
            batch_records: default_batch_records(),
            batch_bytes: default_batch_bytes(),
            sweep_interval_secs: default_sweep(),
            heartbeat_secs: default_heartbeat(),
        }
    }
}

/// Extra access beyond the defaults of PRODUCT.md section 3.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Partner agencies whose analysts may query Analytics and read records here.
    #[serde(default)]
    pub partner_analysts: Vec<AgencyId>,
}

/// A `[[peers]]` entry: a partner agency, where to pull from, and what it may pull from us.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub agency: AgencyId,
    /// `https://host:port` to pull from; absent: the partner only pulls from us.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Kinds shared with this partner (default all three).
    #[serde(default = "default_share")]
    pub share: Vec<Kind>,
    /// Whether third-party (relayed) records may be forwarded to this partner.
    #[serde(default)]
    pub relay: bool,
    #[serde(default)]
    pub filter: PeerFilter,
    /// Origins never accepted from this partner, even when signed correctly.
    #[serde(default)]
    pub refuse_origins: Vec<AgencyId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFilter {
    /// When set, only vacancies with this `open_to_international` value are shared.
    #[serde(default)]
    pub open_to_international: Option<bool>,
    /// When non-empty, only records located in these countries are shared.
    #[serde(default)]
    pub countries: Vec<String>,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:7443".parse().expect("valid literal")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_ca() -> PathBuf {
    PathBuf::from("ca.pem")
}
fn default_node_cert() -> PathBuf {
    PathBuf::from("node.pem")
}
fn default_node_key() -> PathBuf {
    PathBuf::from("node-key.pem")
}
fn default_signing_key() -> PathBuf {
    PathBuf::from("signing-key.pem")
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_cache_mb() -> u64 {
    // measured at 1 M vacancies: 64 MiB kept a node above 512 MB resident after start-up,
    // 32 MiB stays below with no visible cost to imports or pulls (BENCHMARKS.md)
    32
}
fn default_min_cell() -> u64 {
    passerelle_model::validate::DEFAULT_MIN_CELL_SIZE
}
fn default_metrics_listen() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("valid literal")
}
fn default_max_message() -> usize {
    4 * 1024 * 1024
}
fn default_max_streams() -> u32 {
    64
}
fn default_streams_per_peer() -> u32 {
    4
}
fn default_peer_rate() -> u32 {
    20
}
fn default_max_batch() -> u32 {
    5000
}
fn default_call_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    90
}
fn default_heartbeat() -> u64 {
    20
}
fn default_share() -> Vec<Kind> {
    Kind::ALL.to_vec()
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: default_ca(),
            cert: default_node_cert(),
            key: default_node_key(),
            trust: None,
            crl: None,
            handshake_timeout_secs: default_handshake_timeout(),
        }
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            key: default_signing_key(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_capacity_mb: default_cache_mb(),
        }
    }
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            min_cell_size: default_min_cell(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: default_max_message(),
            max_concurrent_streams: default_max_streams(),
            max_streams_per_peer: default_streams_per_peer(),
            peer_calls_per_second: default_peer_rate(),
            max_batch_records: default_max_batch(),
            call_timeout_secs: default_call_timeout(),
            pull_idle_timeout_secs: default_idle_timeout(),
        }
    }
}

impl NodeConfig {
    /// A configuration with every default, for `init` and tests.
    pub fn new(agency: AgencyId, base_dir: PathBuf) -> Self {
        NodeConfig {
            agency,
            listen: default_listen(),
            data_dir: default_data_dir(),
            tls: TlsConfig::default(),
            signing: SigningConfig::default(),
            store: StoreConfig::default(),
            records: RecordsConfig::default(),
            metrics: MetricsConfig::default(),
            limits: LimitsConfig::default(),
            access: AccessConfig::default(),
            sync: SyncConfig::default(),
            peers: Vec::new(),
            base_dir,
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(cfg)
    }

    /// Parses and checks the text of a `node.toml`; the error names the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.records.min_cell_size < default_min_cell() {
            return Err(format!(
                "records.min_cell_size must be at least {} (got {})",
                default_min_cell(),
                cfg.records.min_cell_size
            ));
        }
        if cfg.sync.backoff_min_ms == 0 || cfg.sync.backoff_max_secs == 0 {
            return Err("sync.backoff_min_ms and sync.backoff_max_secs must be at least 1".into());
        }
        if cfg.sync.batch_records == 0 {
            return Err("sync.batch_records must be at least 1".into());
        }
        if cfg.tls.handshake_timeout_secs == 0 {
            return Err("tls.handshake_timeout_secs must be at least 1".into());
        }
        // the node turns these into bytes and microseconds: refuse what would overflow there
        let max_cache_mb = u64::MAX >> 20;
        if cfg.store.cache_capacity_mb > max_cache_mb {
            return Err(format!(
                "store.cache_capacity_mb must be at most {max_cache_mb}"
            ));
        }
        let max_retention_days = (i64::MAX / 86_400_000_000) as u64;
        if cfg.sync.tombstone_retention_days > max_retention_days {
            return Err(format!(
                "sync.tombstone_retention_days must be at most {max_retention_days}"
            ));
        }
        let l = &cfg.limits;
        for (key, value) in [
            (
                "limits.max_streams_per_peer",
                u64::from(l.max_streams_per_peer),
            ),
            (
                "limits.peer_calls_per_second",
                u64::from(l.peer_calls_per_second),
            ),
            ("limits.max_batch_records", u64::from(l.max_batch_records)),
            ("limits.call_timeout_secs", l.call_timeout_secs),
            ("sync.heartbeat_secs", cfg.sync.heartbeat_secs),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if l.pull_idle_timeout_secs <= cfg.sync.heartbeat_secs {
            return Err(format!(
                "limits.pull_idle_timeout_secs ({}) must be longer than sync.heartbeat_secs ({})",
                l.pull_idle_timeout_secs, cfg.sync.heartbeat_secs
            ));
        }
        if cfg.sync.batch_records > l.max_batch_records {
            return Err(format!(
                "sync.batch_records ({}) must not exceed limits.max_batch_records ({})",
                cfg.sync.batch_records, l.max_batch_records
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &cfg.peers {
            if !seen.insert(p.agency.clone()) {
                return Err(format!("peers: agency {} is listed twice", p.agency));
            }
            if p.agency == cfg.agency {
                return Err(format!("peers: {} is this node's own agency", p.agency));
            }
        }
        Ok(cfg)
    }

    /// Resolves a configured path against the config file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = NodeConfig::parse("agency = \"tg.anpe\"\n").unwrap();
        assert_eq!(c.listen.port(), 7443);
        assert_eq!(c.metrics.listen.port(), 9464);
        assert_eq!(c.records.min_cell_size, 5);
        assert_eq!(c.tls.handshake_timeout_secs, 10);
    }

    #[test]
    fn errors_name_the_key() {
        let e = NodeConfig::parse("agency = \"TG\"\n").unwrap_err();
        assert!(e.contains("agency"), "{e}");
        let e =
            NodeConfig::parse("agency = \"tg.anpe\"\n[records]\nmin_cell_size = 2\n").unwrap_err();
        assert!(e.contains("records.min_cell_size"), "{e}");
        let e = NodeConfig::parse("agency = \"tg.anpe\"\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.contains("listen_addr"), "{e}");
    }

    #[test]
    fn peers_parse_with_policy() {
        let c = NodeConfig::parse(
            "agency = \"tg.anpe\"\n[[peers]]\nagency = \"be.vdab\"\nendpoint = \"https://127.0.0.1:7444\"\nshare = [\"vacancy\"]\n[peers.filter]\nopen_to_international = true\n",
        )
        .unwrap();
        assert_eq!(c.peers[0].share, vec![Kind::Vacancy]);
        assert!(!c.peers[0].relay);
        assert_eq!(c.peers[0].filter.open_to_international, Some(true));
    }
}
