//! Certificates, trust file and CRL reloaded without a restart (on SIGHUP and when the files
//! change), and the certificate expiry sweep.
//!
//! Everything TLS needs is built from one reading of the files into a [`Material`]; a reload
//! builds a new one and swaps it in only when every part of it was built, so a bad file keeps
//! the node on its previous configuration. Connections already open keep the session they
//! negotiated: only new handshakes (and the peer loops' next connections) see the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use passerelle_model::AgencyId;
use passerelle_node::config::TlsConfig;
use passerelle_node::{Node, NodeConfig};
use passerelle_pki::TrustStore;
use serde::Serialize;
use tokio::sync::watch;

/// How often the TLS files' modification times are compared.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often certificate expiry is checked (PRODUCT.md section 7).
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Certificates closer than this to their end are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Client TLS configurations of the peer loops, by peer agency.
pub type PeerTls = HashMap<AgencyId, Arc<rustls::ClientConfig>>;

/// A value replaced whole on reload: readers take the current one; whoever holds an older
/// one (an open connection) keeps it.
#[derive(Debug)]
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Self {
        Swap(RwLock::new(Arc::new(value)))
    }

    pub fn load(&self) -> Arc<T> {
        self.0.read().expect("lock").clone()
    }

    fn store(&self, value: T) {
        *self.0.write().expect("lock") = Arc::new(value);
    }
}

/// One certificate whose expiry is watched.
#[derive(Debug, Clone, Serialize)]
pub struct CertExpiry {
    /// `node` (this node's certificate), `ca` (this agency's CA) or `partner_ca`.
    pub kind: &'static str,
    /// The SAN URI of a node certificate, the agency id of a CA.
    pub subject: String,
    /// The file it was read from.
    pub file: PathBuf,
    pub not_after: SystemTime,
}

impl CertExpiry {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -((e.duration().as_secs() / 86_400) as i64),
        }
    }

    /// Whether it expires within [`EXPIRY_WARNING_DAYS`] of `now` (or already has).
    pub fn expiring(&self, now: SystemTime) -> bool {
        self.not_after <= now + Duration::from_secs(EXPIRY_WARNING_DAYS as u64 * 86_400)
    }
}

/// The certificates in force and how reloads went, for metrics and status.
#[derive(Debug, Default)]
pub struct Certificates {
    list: RwLock<Vec<CertExpiry>>,
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Certificates {
    pub fn snapshot(&self) -> Vec<CertExpiry> {
        self.list.read().expect("lock").clone()
    }

    /// Those expiring within [`EXPIRY_WARNING_DAYS`] (or expired), for status.
    pub fn expiring(&self) -> Vec<CertExpiry> {
        let now = SystemTime::now();
        self.snapshot()
            .into_iter()
            .filter(|c| c.expiring(now))
            .collect()
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    pub fn reload_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last reload failed, until one succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("lock").clone()
    }
}

/// Everything built from the TLS files, each read once.
pub struct Material {
    pub server: rustls::ServerConfig,
    pub peers: PeerTls,
    /// Own CA and partners (without this node's signing key, which the node adds).
    pub trust: TrustStore,
    pub certs: Vec<CertExpiry>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

impl Material {
    /// Reads the files `cfg.tls` names and builds the server and peer configurations.
    pub fn load(cfg: &NodeConfig) -> anyhow::Result<Material> {
        Self::load_tls(cfg, &cfg.tls)
    }

    fn load_tls(cfg: &NodeConfig, tls: &TlsConfig) -> anyhow::Result<Material> {
        let (ca_path, cert_path, key_path) =
            (cfg.path(&tls.ca), cfg.path(&tls.cert), cfg.path(&tls.key));
        let ca = read(&ca_path, "CA certificate")?;
        let cert = read(&cert_path, "node certificate")?;
        let key = read(&key_path, "node key")?;
        let trust_path = tls.trust.as_ref().map(|p| cfg.path(p));
        let crl_path = tls.crl.as_ref().map(|p| cfg.path(p));
        let crls = match &crl_path {
            Some(p) => vec![read(p, "CRL")?],
            None => Vec::new(),
        };
        let trust =
            TrustStore::load(&cfg.agency, &ca, trust_path.as_deref()).with_context(|| {
                format!(
                    "cannot load the trust store from {}{}",
                    ca_path.display(),
                    trust_path
                        .as_ref()
                        .map(|p| format!(" and {}", p.display()))
                        .unwrap_or_default()
                )
            })?;
        let files = || {
            let mut s = format!("{} and {}", cert_path.display(), key_path.display());
            if let Some(p) = &crl_path {
                s.push_str(&format!(" with CRL {}", p.display()));
            }
            s
        };
        let server = passerelle_pki::server_config(&cert, &key, &trust, &crls)
            .with_context(|| format!("cannot build the TLS configuration from {}", files()))?;
        let mut peers = PeerTls::new();
        for p in cfg.peers.iter().filter(|p| p.endpoint.is_some()) {
            if trust.get(&p.agency).is_none() {
                return Err(anyhow!(
                    "peer {} has an endpoint but is not in the trust file: run `passerelle trust add` first",
                    p.agency
                ));
            }
            let client = passerelle_pki::client_config_with_crls(
                &cert,
                &key,
                &trust,
                Some(&p.agency),
                &crls,
            )
            .with_context(|| {
                format!("cannot build the TLS client configuration from {}", files())
            })?;
            peers.insert(p.agency.clone(), Arc::new(client));
        }

        let leaf = passerelle_pki::certs_from_pem(&cert, &cert_path.display().to_string())?;
        let mut certs = vec![CertExpiry {
            kind: "node",
            subject: passerelle_pki::identity_from_cert_der(&leaf[0])
                .map(|id| id.uri())
                .with_context(|| format!("{}", cert_path.display()))?,
            file: cert_path.clone(),
            not_after: passerelle_pki::cert_not_after(&leaf[0])
                .with_context(|| format!("{}", cert_path.display()))?,
        }];
        for t in trust.iter() {
            let own = t.agency() == &cfg.agency;
            certs.push(CertExpiry {
                kind: if own { "ca" } else { "partner_ca" },
                subject: t.agency().to_string(),
                file: if own {
                    ca_path.clone()
                } else {
                    trust_path.clone().unwrap_or_default()
                },
                not_after: passerelle_pki::cert_not_after(t.ca_der())
                    .with_context(|| format!("CA of {}", t.agency()))?,
            });
        }
        Ok(Material {
            server,
            peers,
            trust,
            certs,
        })
    }
}

/// What a file looked like when last read: modification time and length (None: missing).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct WatchState {
    /// Where `node.toml` is, when known: its `[tls]` paths are then re-read on reload.
    config_file: Option<PathBuf>,
    tls: TlsConfig,
    /// The stamps of the files the configuration in force (or the last attempt) was read from.
    seen: Vec<Stamp>,
    /// Stamps that differed at the last poll: reloaded only once they hold still for a
    /// poll, so that a certificate and its key written one after the other are read together.
    moving: Option<Vec<Stamp>>,
    /// Days left last warned about, per certificate, so each is warned about once a day.
    warned: HashMap<(String, String), i64>,
}

/// Reloads the node's TLS material and watches its files and expiry.
pub struct Reloader {
    cfg: NodeConfig,
    node: Arc<Node>,
    /// The listener's configuration, read at each accepted connection.
    pub server: Arc<Swap<rustls::ServerConfig>>,
    /// The peer loops' configurations, read at each (re)connection.
    pub peers: Arc<Swap<PeerTls>>,
    pub certs: Arc<Certificates>,
    state: Mutex<WatchState>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Takes over `material`, which was built from `cfg` (its trust goes to `node`).
    pub fn new(cfg: NodeConfig, node: Arc<Node>, material: Material) -> Reloader {
        let certs = Arc::new(Certificates::default());
        *certs.list.write().expect("lock") = material.certs;
        let state = WatchState {
            config_file: None,
            tls: cfg.tls.clone(),
            seen: Vec::new(),
            moving: None,
            warned: HashMap::new(),
        };
        let r = Reloader {
            server: Arc::new(Swap::new(material.server)),
            peers: Arc::new(Swap::new(material.peers)),
            certs,
            node,
            state: Mutex::new(state),
            cfg,
        };
        {
            let mut st = r.state.lock().expect("lock");
            st.seen = r.stamps(&st);
        }
        r
    }

    /// Makes reloads re-read the `[tls]` table of `node.toml` at `path` (a CRL configured
    /// after start-up, say); the node's other settings still need a restart.
    pub fn set_config_file(&self, path: PathBuf) {
        let mut st = self.state.lock().expect("lock");
        st.config_file = Some(path);
        st.seen = self.stamps(&st);
    }

    fn watched(&self, st: &WatchState) -> Vec<PathBuf> {
        let tls = &st.tls;
        let mut files = vec![
            self.cfg.path(&tls.ca),
            self.cfg.path(&tls.cert),
            self.cfg.path(&tls.key),
        ];
        files.extend(tls.trust.iter().map(|p| self.cfg.path(p)));
        files.extend(tls.crl.iter().map(|p| self.cfg.path(p)));
        files.extend(st.config_file.clone());
        files
    }

    fn stamps(&self, st: &WatchState) -> Vec<Stamp> {
        self.watched(st).iter().map(|p| stamp(p)).collect()
    }

    /// Re-reads certificate, key, CA, trust file and CRL and puts them in force for new
    /// connections. On failure nothing changes and the error (naming the file) is logged
    /// and returned. `trigger` says why, for the log.
    pub fn reload(&self, trigger: &str) -> anyhow::Result<()> {
        let mut st = self.state.lock().expect("lock");
        self.reload_locked(&mut st, trigger)
    }

    fn reload_locked(&self, st: &mut WatchState, trigger: &str) -> anyhow::Result<()> {
        let result = self.try_reload(st);
        // the next change is what warrants another attempt, not the next poll
        st.seen = self.stamps(st);
        st.moving = None;
        match &result {
            Ok(()) => {
                self.certs.reloads.fetch_add(1, Ordering::Relaxed);
                *self.certs.last_error.lock().expect("lock") = None;
                let node_cert = self.certs.snapshot().into_iter().find(|c| c.kind == "node");
                tracing::info!(
                    trigger,
                    node_certificate_days_left = node_cert.map(|c| c.days_left(SystemTime::now())),
                    "reloaded certificates, trust file and crl"
                );
                self.sweep_locked(st);
            }
            Err(e) => {
                self.certs.failures.fetch_add(1, Ordering::Relaxed);
                *self.certs.last_error.lock().expect("lock") = Some(format!("{e:#}"));
                tracing::error!(
                    trigger,
                    error = format!("{e:#}"),
                    "reload failed: keeping the previous certificates"
                );
            }
        }
        result
    }

    fn try_reload(&self, st: &mut WatchState) -> anyhow::Result<()> {
        let tls = match &st.config_file {
            Some(path) => NodeConfig::load(path)
                .map_err(|e| anyhow!("{e}"))?
                .tls
                .clone(),
            None => st.tls.clone(),
        };
        let material = Material::load_tls(&self.cfg, &tls)?;
        self.node.set_trust(
            material
                .trust
                .with_own_signing_key(self.node.signing_public_key()),
        );
        self.server.store(material.server);
        self.peers.store(material.peers);
        *self.certs.list.write().expect("lock") = material.certs;
        st.tls = tls;
        Ok(())
    }

    /// Reloads when the files changed since the last reload and have held still since the
    /// previous call; returns whether a reload was attempted.
    pub fn poll(&self) -> bool {
        let mut st = self.state.lock().expect("lock");
        let now = self.stamps(&st);
        if now == st.seen {
            st.moving = None;
            return false;
        }
        if st.moving.as_ref() != Some(&now) {
            st.moving = Some(now);
            return false;
        }
        let _ = self.reload_locked(&mut st, "file change");
        true
    }

    /// Logs certificates that expire within [`EXPIRY_WARNING_DAYS`]: at start-up, after a
    /// reload, and whenever a certificate's days left change (so once a day each).
    pub fn sweep_expiry(&self) {
        let mut st = self.state.lock().expect("lock");
        self.sweep_locked(&mut st);
    }

    fn sweep_locked(&self, st: &mut WatchState) {
        let now = SystemTime::now();
        let certs = self.certs.snapshot();
        st.warned.retain(|(kind, subject), _| {
            certs
                .iter()
                .any(|c| c.kind == kind && &c.subject == subject)
        });
        for c in certs {
            let key = (c.kind.to_owned(), c.subject.clone());
            if !c.expiring(now) {
                st.warned.remove(&key);
                continue;
            }
            let days = c.days_left(now);
            if st.warned.get(&key) == Some(&days) {
                continue;
            }
            st.warned.insert(key, days);
            let file = c.file.display().to_string();
            if c.not_after <= now {
                tracing::error!(kind = c.kind, subject = %c.subject, %file, days_ago = -days, "certificate expired");
            } else {
                tracing::warn!(kind = c.kind, subject = %c.subject, %file, days_left = days, "certificate expires soon");
            }
        }
    }
}

/// Polls the TLS files and sweeps expiry until `stop` turns true.
pub fn spawn_watch(
    reloader: Arc<Reloader>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut sweep = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let r = reloader.clone();
            // both ticks fire at once first: the start-up sweep
            tokio::select! {
                _ = poll.tick() => {
                    let _ = tokio::task::spawn_blocking(move || r.poll()).await;
                }
                _ = sweep.tick() => {
                    let _ = tokio::task::spawn_blocking(move || r.sweep_expiry()).await;
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// Reloads on every SIGHUP, for as long as the process runs (the `serve` command).
pub fn reload_on_sighup(reloader: Arc<Reloader>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload("sighup")).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days_from_now: i64) -> CertExpiry {
        let now = SystemTime::now();
        let d = Duration::from_secs(days_from_now.unsigned_abs() * 86_400 + 60);
        CertExpiry {
            kind: "node",
            subject: "urn:passerelle:tg.anpe:node:node".into(),
            file: PathBuf::from("node.pem"),
            not_after: if days_from_now >= 0 { now + d } else { now - d },
        }
    }

    #[test]
    fn warning_starts_thirty_days_before_expiry() {
        let now = SystemTime::now();
        assert!(!cert(31).expiring(now));
        assert!(cert(29).expiring(now));
        assert!(cert(-2).expiring(now));
        assert_eq!(cert(29).days_left(now), 29);
        assert_eq!(cert(-2).days_left(now), -2);
    }

    #[test]
    fn swap_keeps_old_values_for_their_holders() {
        let s = Swap::new(1);
        let old = s.load();
        s.store(2);
        assert_eq!((*old, *s.load()), (1, 2));
    }
}
