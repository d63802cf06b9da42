//! `passerelle init`: an agency's CA, node certificate, record-signing key, client certificates and profiles, and a commented node.toml.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Args;
use passerelle_model::AgencyId;
use passerelle_pki::{
    issue_cert, new_agency_ca, pkcs8_to_pem, CertRequest, Identity, Role, SigningKey,
};

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// The agency id, e.g. tg.anpe (ISO country, dot, short name).
    #[arg(long)]
    pub agency: AgencyId,
    /// Folder to create the node in (must not hold a node already).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address the node listens on; its IP goes into the node certificate.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// DNS name partners reach the node at (repeatable); goes into the node certificate.
    #[arg(long)]
    pub hostname: Vec<String>,
    /// Address of the Prometheus metrics listener.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,
    /// Validity of the node and client certificates, in days.
    #[arg(long, default_value_t = 397)]
    pub days: u32,
}

/// What `init` wrote, for callers that go on to use it (the demo, tests).
#[derive(Debug, Clone)]
pub struct InitOutput {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub publisher_profile: PathBuf,
    pub analyst_profile: PathBuf,
    pub operator_profile: PathBuf,
}

fn write(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

pub fn run(args: &InitArgs) -> anyhow::Result<InitOutput> {
    let dir = &args.dir;
    let config = dir.join("node.toml");
    if config.exists() {
        return Err(anyhow!(
            "{} exists: init never overwrites an agency's keys; choose another --dir",
            config.display()
        ));
    }
    std::fs::create_dir_all(dir.join("clients"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let agency = &args.agency;

    let ca = new_agency_ca(agency, 3650)?;
    write(&dir.join("ca.pem"), &ca.cert_pem, false)?;
    write(&dir.join("ca-key.pem"), &ca.key_pem, true)?;

    let mut req = CertRequest::new(
        Identity::new(agency.clone(), Role::Node, "node")?,
        args.days,
    );
    let ip = args.listen.ip();
    let reach_ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    req.ip_addrs.push(reach_ip);
    if reach_ip.is_loopback() {
        req.dns_names.push("localhost".into());
    }
    req.dns_names.extend(args.hostname.iter().cloned());
    let node = issue_cert(&ca, &req)?;
    write(&dir.join("node.pem"), &node.cert_pem, false)?;
    write(&dir.join("node-key.pem"), &node.key_pem, true)?;

    let signing = SigningKey::generate()?;
    let key_id = SigningKey::from_pkcs8(&signing)?.key_id();
    write(&dir.join("signing-key.pem"), &pkcs8_to_pem(&signing), true)?;
    write(
        &dir.join("trust.toml"),
        "# Partner agencies this node trusts: written by `passerelle trust add`.\n",
        false,
    )?;

    let host = match args.hostname.first() {
        Some(h) => h.clone(),
        None => match reach_ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let address = format!("https://{host}:{}", args.listen.port());
    let mut profiles = Vec::new();
    for role in [Role::Publisher, Role::Analyst, Role::Operator] {
        let name = role.as_str();
        let pem = issue_cert(
            &ca,
            &CertRequest::new(Identity::new(agency.clone(), role, name)?, args.days),
        )?;
        write(
            &dir.join(format!("clients/{name}.pem")),
            &pem.cert_pem,
            false,
        )?;
        write(
            &dir.join(format!("clients/{name}-key.pem")),
            &pem.key_pem,
            true,
        )?;
        let profile = dir.join(format!("clients/{name}.toml"));
        write(
            &profile,
            &format!(
                "# Client profile of the {agency} {name}: pass it as --profile or PASSERELLE_PROFILE.\n\
                 agency = \"{agency}\"\n\
                 address = \"{address}\"\n\
                 ca = \"../ca.pem\"\n\
                 cert = \"{name}.pem\"\n\
                 key = \"{name}-key.pem\"\n"
            ),
            true,
        )?;
        profiles.push(profile);
    }

    write(
        &config,
        &node_toml(agency, args.listen, args.metrics_listen, &key_id),
        false,
    )?;
    // a freshly written file must parse: init and serve agree on the format
    passerelle_node::NodeConfig::load(&config)?;
    Ok(InitOutput {
        dir: dir.clone(),
        config,
        publisher_profile: profiles[0].clone(),
        analyst_profile: profiles[1].clone(),
        operator_profile: profiles[2].clone(),
    })
}

fn node_toml(agency: &AgencyId, listen: SocketAddr, metrics: SocketAddr, key_id: &str) -> String {
    format!(
        r#"# passerelle node configuration, written by `passerelle init`.
# Relative paths are resolved against this file's folder.

# This node's agency id.
agency = "{agency}"
# The gRPC port: mutual TLS only, client certificates required.
listen = "{listen}"
# Folder of the sled store (created on first start).
data_dir = "data"

[tls]
# This agency's CA certificate. Its private key (ca-key.pem) is only needed to
# issue certificates: keep it offline once init is done.
ca = "ca.pem"
# The node certificate and key.
cert = "node.pem"
key = "node-key.pem"
# Partners' CAs and record-signing keys (`passerelle trust add`).
trust = "trust.toml"
# A PEM certificate revocation list, checked for client certificates.
# crl = "crl.pem"
# Seconds a client has to finish the TLS handshake.
handshake_timeout_secs = 10

[signing]
# The Ed25519 key this node signs its own records with (key id {key_id}).
key = "signing-key.pem"

[store]
# sled page cache, MiB (the node's resident memory is about this plus 0.4 KB per record).
cache_capacity_mb = 32

[records]
# Smallest count a supply cell may publish unsuppressed (5 or more).
min_cell_size = 5

[metrics]
# Prometheus metrics listener.
listen = "{metrics}"

[limits]
# Largest gRPC message accepted, bytes.
max_message_bytes = 4194304
# Concurrent HTTP/2 streams per connection.
max_concurrent_streams = 64
# Open Pull streams one partner agency may hold at once.
max_streams_per_peer = 4
# Calls per second one partner agency may make (bursts of twice as many pass).
peer_calls_per_second = 20
# Most records accepted in one batch from a peer.
max_batch_records = 5000
# Deadline of every call that is not a stream, seconds.
call_timeout_secs = 30
# A pull stream silent this long (heartbeats included) is dropped and reconnected, seconds.
pull_idle_timeout_secs = 90

[access]
# Partner agencies whose analysts may query this node.
partner_analysts = []

# Partner agencies (`passerelle peer add`), for example:
# [[peers]]
# agency = "be.vdab"
# endpoint = "https://vdab.example:7443"
# share = ["vacancy", "shortage", "supply"]
# relay = false
# [peers.filter]
# open_to_international = true
# countries = ["BE"]
"#
    )
}
