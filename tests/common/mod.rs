//! Test harness: real nodes on port 0 with PKI made by `passerelle init` at test time, and clients for each role.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle::cli::init::{self, InitArgs, InitOutput};
use passerelle::client::Profile;
use passerelle::pb::v1 as pb;
use passerelle::server::{self, ServerHandle};
use passerelle_node::NodeConfig;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub use pb::shortages_client::ShortagesClient;
pub use pb::supply_client::SupplyClient;
pub use pb::vacancies_client::VacanciesClient;

/// One agency's node folder (kept for the whole test) and, while running, its server.
pub struct TestNode {
    pub dir: TempDir,
    pub init: InitOutput,
    pub handle: Option<ServerHandle>,
}

impl TestNode {
    /// Creates the PKI for `agency` with `init` and starts the node on a fresh loopback port.
    pub async fn start(agency: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let init = init::run(&InitArgs {
            agency: agency.parse().unwrap(),
            dir: dir.path().join(agency),
            listen: addr,
            hostname: Vec::new(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            days: 30,
        })
        .expect("init");
        let mut node = TestNode {
            dir,
            init,
            handle: None,
        };
        node.serve_on(listener).await;
        node
    }

    pub fn config(&self) -> NodeConfig {
        NodeConfig::load(&self.init.config).expect("node.toml")
    }

    async fn serve_on(&mut self, listener: TcpListener) {
        let handle = server::start(self.config(), Some(listener))
            .await
            .expect("server start");
        self.handle = Some(handle);
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().expect("running").addr
    }

    pub fn node(&self) -> &passerelle_node::Node {
        &self.handle.as_ref().expect("running").node
    }

    pub fn head_seq(&self) -> u64 {
        self.node().store().head_seq()
    }

    /// Stops the node (drain + flush) and starts it again on the same port with the same store.
    pub async fn restart(&mut self) {
        let addr = self.addr();
        self.stop().await;
        let listener = TcpListener::bind(addr).await.expect("rebind same port");
        self.serve_on(listener).await;
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("shutdown");
        }
    }

    pub fn profile_path(&self, role: &str) -> PathBuf {
        self.init.dir.join(format!("clients/{role}.toml"))
    }

    /// A channel authenticated as the agency's `publisher`, `analyst` or `operator`.
    pub async fn channel(&self, role: &str) -> Channel {
        Profile::load(&self.profile_path(role))
            .expect("profile")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn vacancies(&self, role: &str) -> VacanciesClient<Channel> {
        VacanciesClient::new(self.channel(role).await)
    }

    pub async fn shortages(&self, role: &str) -> ShortagesClient<Channel> {
        ShortagesClient::new(self.channel(role).await)
    }

    pub async fn supply(&self, role: &str) -> SupplyClient<Channel> {
        SupplyClient::new(self.channel(role).await)
    }

    /// The agency CA (certificate and key), to issue extra certificates in tests.
    pub fn ca(&self) -> passerelle_pki::Pem {
        read_pem(
            &self.init.dir.join("ca.pem"),
            &self.init.dir.join("ca-key.pem"),
        )
    }

    pub fn address(&self) -> String {
        format!("https://{}", self.addr())
    }
}

pub fn read_pem(cert: &Path, key: &Path) -> passerelle_pki::Pem {
    passerelle_pki::Pem {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

/// Connects to `node` with an arbitrary client certificate (or none), trusting the node's CA.
pub async fn connect_with(
    node: &TestNode,
    client: Option<&passerelle_pki::Pem>,
) -> anyhow::Result<Channel> {
    passerelle_pki::install_crypto_provider();
    let agency: passerelle_model::AgencyId = node.config().agency;
    let ca = std::fs::read_to_string(node.init.dir.join("ca.pem"))?;
    let trust = passerelle_pki::TrustStore::load(&agency, &ca, None)?;
    let tls = match client {
        Some(pem) => {
            passerelle_pki::client_config(&pem.cert_pem, &pem.key_pem, &trust, Some(&agency))?
        }
        None => {
            // same server verification, but no client certificate at all
            let with_cert = node.ca();
            let _ = with_cert;
            let mut roots = rustls::RootCertStore::empty();
            for c in passerelle_pki::certs_from_pem(&ca, "ca")? {
                roots.add(c)?;
            }
            rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
    };
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    passerelle::client::connect(&node.address(), Arc::new(tls)).await
}

/// A complete, valid vacancy using every field (real ISCO and ESCO codes).
pub fn full_vacancy(id: &str) -> pb::Vacancy {
    pb::Vacancy {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        status: pb::VacancyStatus::Open as i32,
        title: "Lasser TIG/MIG".into(),
        description: "Lassen van constructies.\nOpleiding voorzien.".into(),
        language: "nl-BE".into(),
        occupation: Some(pb::Occupation {
            isco08: "7212".into(),
            esco_uri: first_esco_occupation(),
        }),
        skills: skill_uris(3)
            .into_iter()
            .enumerate()
            .map(|(i, (uri, label))| pb::Skill {
                esco_uri: uri,
                label,
                essential: i == 0,
            })
            .collect(),
        location: Some(pb::Location {
            country: "BE".into(),
            subdivision: "BE-VAN".into(),
            nuts: "BE211".into(),
            locality: "Antwerpen".into(),
        }),
        employer_name: "Staalbouw nv".into(),
        contract: pb::Contract::Permanent as i32,
        schedule: pb::Schedule::FullTime as i32,
        positions: 3,
        salary: Some(pb::Salary {
            min: 2600.0,
            max: 3400.5,
            currency: "EUR".into(),
            period: pb::SalaryPeriod::Month as i32,
        }),
        languages: vec![
            pb::LanguageRequirement {
                code: "nl".into(),
                level: pb::CefrLevel::B1 as i32,
            },
            pb::LanguageRequirement {
                code: "fra".into(),
                level: pb::CefrLevel::A2 as i32,
            },
        ],
        isced_level: Some(0),
        experience_months: 24,
        posted_on: "2026-03-01".into(),
        closes_on: "2099-12-31".into(),
        open_to_international: true,
        programmes: vec!["be-tg-circular-2026".into()],
        updated_at: None,
    }
}

/// A complete, valid shortage-list line using every field.
pub fn full_shortage(id: &str) -> pb::Shortage {
    pb::Shortage {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        list: "vdab-knelpuntberoepen".into(),
        year: 2026,
        country: "BE".into(),
        subdivision: "BE-VLG".into(),
        occupation: Some(pb::Occupation {
            isco08: "2221".into(),
            esco_uri: String::new(),
        }),
        national_code: "K-2221".into(),
        causes: vec![
            pb::ShortageCause::Quantitative as i32,
            pb::ShortageCause::WorkingConditions as i32,
        ],
        skills: skill_uris(2)
            .into_iter()
            .map(|(uri, label)| pb::Skill {
                esco_uri: uri,
                label,
                essential: true,
            })
            .collect(),
        unfilled_vacancies: Some(412),
        median_days_open: Some(87),
        jobseekers_per_100_vacancies: Some(63.5),
        updated_at: None,
    }
}

/// A complete, valid supply cell using every field.
pub fn full_supply(id: &str) -> pb::SupplyCell {
    pb::SupplyCell {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        period: "2026-Q3".into(),
        country: "TG".into(),
        subdivision: "TG-M".into(),
        occupation: Some(pb::Occupation {
            isco08: "72".into(),
            esco_uri: String::new(),
        }),
        isced_level: Some(3),
        registered_jobseekers: 120,
        willing_to_migrate: 45,
        suppressed: false,
        updated_at: None,
    }
}

/// The first `n` ESCO skills of the embedded reference data (URI, label).
pub fn skill_uris(n: usize) -> Vec<(String, String)> {
    passerelle_refdata::esco_skills()
        .iter()
        .take(n)
        .map(|s| (s.uri.to_owned(), s.label.to_owned()))
        .collect()
}

pub fn first_esco_occupation() -> String {
    passerelle_refdata::esco_occupations()[0].uri.to_owned()
}

/// Connects to `node` presenting `client` (or no certificate) with a plain rustls client.
/// Unlike [`connect_with`], nothing on this side checks what the certificate claims (its
/// agency, its SAN), so the node alone decides; the node's certificate is still verified
/// against the node's CA.
pub async fn connect_raw(
    node: &TestNode,
    client: Option<&passerelle_pki::Pem>,
) -> anyhow::Result<Channel> {
    use rustls::pki_types::pem::PemObject;
    passerelle_pki::install_crypto_provider();
    let ca = std::fs::read_to_string(node.init.dir.join("ca.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in passerelle_pki::certs_from_pem(&ca, "ca")? {
        roots.add(c)?;
    }
    let builder = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots);
    let mut tls = match client {
        Some(pem) => {
            let chain = passerelle_pki::certs_from_pem(&pem.cert_pem, "client certificate")?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.key_pem.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec()];
    passerelle::client::connect(&node.address(), Arc::new(tls)).await
}

/// [`TestNode::restart`], working around `ServerHandle::shutdown` leaving the port bound:
/// the accept loop of src/server.rs only sees the shutdown when its next connection
/// arrives, so until then the listener stays open. A TCP connect wakes it; then the node
/// starts again on the same port with the same store. Bounded: 100 tries, 20 ms apart.
pub async fn restart_releasing_port(node: &mut TestNode) {
    let addr = node.addr();
    node.stop().await;
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                node.serve_on(listener).await;
                return;
            }
            Err(_) => {
                let _ = tokio::net::TcpStream::connect(addr).await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    panic!("port {addr} still bound after shutdown");
}

/// The `passerelle` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_passerelle"))
}

/// A loopback port free right now (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

/// What a finished run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

fn drain(r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut r = r;
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut r, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` at most `timeout`; kills it (SIGKILL) and returns None when it runs over.
pub fn wait_bounded(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs the binary with `args` (no stdin), killed after `timeout` (a failure).
pub fn run_bin<I, S>(args: I, timeout: std::time::Duration) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::process::{Command, Stdio};
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = Command::new(bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn passerelle");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, timeout);
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "passerelle {args:?} ran over {timeout:?}: {run:#?}"
    );
    run
}

/// Runs `passerelle init` for `agency` into `dir` listening on a free loopback port.
pub fn init_with_binary(agency: &str, dir: &Path) -> std::net::SocketAddr {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let run = run_bin(
        [
            "init".as_ref(),
            "--agency".as_ref(),
            agency.as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
            "--listen".as_ref(),
            addr.to_string().as_ref(),
            "--metrics-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ] as [&std::ffi::OsStr; 9],
        std::time::Duration::from_secs(60),
    );
    assert!(run.ok(), "init failed: {run:#?}");
    addr
}

/// A `passerelle serve` child process; SIGKILLed when dropped if still running.
pub struct Served {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub log: PathBuf,
}

impl Served {
    /// Starts `serve --config CONFIG` (stderr appended to `log`) and waits, at most
    /// 60 s, for its `listening on ADDR` line.
    pub fn start(config: &Path, log: &Path) -> Served {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("serve log");
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn passerelle serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // keeps reading after the first line so the child never blocks on a full pipe
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut served = Served {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log: log.to_path_buf(),
        };
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(addr) => served.addr = addr.parse().expect("listening address"),
            Err(e) => {
                let _ = served.child.kill();
                let _ = served.child.wait();
                panic!(
                    "serve did not report listening ({e}); log:\n{}",
                    served.log_text()
                );
            }
        }
        served
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit status if the process ended within `timeout` (else it is killed).
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
        wait_bounded(&mut self.child, timeout)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One valid vacancy in the JSON form the CLI reads (the serde form of
/// `passerelle_model::Vacancy`), varied by `i`; real ISCO-08 groups and ESCO skills.
pub fn vacancy_json(id: &str, i: usize) -> serde_json::Value {
    const ISCO: [&str; 6] = ["2221", "7411", "7212", "8332", "5120", "7126"];
    let skills: Vec<serde_json::Value> = skill_uris(3)
        .into_iter()
        .enumerate()
        .map(|(k, (uri, label))| {
            serde_json::json!({"esco_uri": uri, "label": label, "essential": k == 0})
        })
        .collect();
    serde_json::json!({
        "id": id,
        "status": "OPEN",
        "title": format!("Lasser TIG/MIG {i}"),
        "description": "Lassen van constructies.\nOpleiding voorzien.",
        "language": "nl-BE",
        "occupation": {"isco08": ISCO[i % ISCO.len()]},
        "skills": skills,
        "location": {"country": "BE", "subdivision": "BE-VAN", "nuts": "BE211", "locality": "Antwerpen"},
        "employer_name": "Staalbouw nv",
        "contract": "PERMANENT",
        "schedule": "FULL_TIME",
        "positions": 1 + (i % 5),
        "salary": {"min": 2600.0, "max": 3400.5, "currency": "EUR", "period": "MONTH"},
        "languages": [{"code": "nl", "level": "B1"}, {"code": "fra", "level": "A2"}],
        "isced_level": (i % 9),
        "experience_months": (i % 61),
        "posted_on": "2026-03-01",
        "closes_on": "2099-12-31",
        "open_to_international": i.is_multiple_of(2),
        "programmes": ["be-tg-circular-2026"]
    })
}

/// [`full_vacancy`] closing in 2099, so that no expiry sweep touches it whatever the date
/// the tests run on (full_vacancy closes on 2026-12-31).
pub fn lasting_vacancy(id: &str) -> pb::Vacancy {
    pb::Vacancy {
        closes_on: "2099-12-31".into(),
        ..full_vacancy(id)
    }
}

// ---------------------------------------------------------------- federation harness

/// A node folder made by `init` whose port is already bound but which is not serving yet:
/// its node.toml and trust file can still be edited, since the peer loops read them at start.
pub struct PendingNode {
    pub node: TestNode,
    listener: TcpListener,
}

impl PendingNode {
    /// Binds a loopback port, then runs `init` for `agency` listening on it.
    pub async fn init(agency: &str) -> PendingNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let init = init::run(&InitArgs {
            agency: agency.parse().unwrap(),
            dir: dir.path().join(agency),
            listen: addr,
            hostname: Vec::new(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            days: 30,
        })
        .expect("init");
        PendingNode {
            node: TestNode {
                dir,
                init,
                handle: None,
            },
            listener,
        }
    }

    /// Starts serving (and pulling from the configured peers) on the bound port.
    pub async fn start(self) -> TestNode {
        let mut node = self.node;
        node.serve_on(self.listener).await;
        node
    }

    /// Closes the port without serving: partners' connections are refused until
    /// [`TestNode::start_again`].
    pub fn close_port(self) -> TestNode {
        drop(self.listener);
        self.node
    }
}

/// A node's `[[peers]]` entry for a partner: whether this node pulls from it, and what the
/// partner may pull from this node (the `peer add` options).
#[derive(Debug, Clone, Default)]
pub struct PeerEntry {
    pub pull: bool,
    pub share: Vec<passerelle_model::Kind>,
    pub relay: bool,
    pub international: Option<bool>,
    pub country: Vec<String>,
}

impl PeerEntry {
    /// An entry with an endpoint and the default outbound policy.
    pub fn pull() -> PeerEntry {
        PeerEntry {
            pull: true,
            ..PeerEntry::default()
        }
    }

    /// An entry without endpoint (the partner only pulls from us), default policy.
    pub fn serve() -> PeerEntry {
        PeerEntry::default()
    }
}

impl TestNode {
    pub fn agency(&self) -> passerelle_model::AgencyId {
        self.config().agency
    }

    /// The address `init` wrote into node.toml (the port the node is, or was, bound to).
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        self.config().listen
    }

    /// Starts a stopped node again on its port with the same store. The port may take a
    /// moment to be released after shutdown: bounded, 100 tries 20 ms apart.
    pub async fn start_again(&mut self) {
        assert!(self.handle.is_none(), "start_again on a running node");
        let addr = self.listen_addr();
        for _ in 0..100 {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    self.serve_on(listener).await;
                    return;
                }
                Err(_) => {
                    let _ = tokio::net::TcpStream::connect(addr).await;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        panic!("port {addr} still bound after shutdown");
    }

    /// The shared node core of the running server (to read counters across a stop).
    pub fn node_arc(&self) -> Arc<passerelle_node::Node> {
        self.handle.as_ref().expect("running").node.clone()
    }

    /// This node's view of its pull from `agency`, if it pulls from it.
    pub fn peer_status(&self, agency: &str) -> Option<passerelle::federation::peer::PeerStatus> {
        self.handle
            .as_ref()
            .expect("running")
            .peers
            .get(&agency.parse().unwrap())
    }

    /// Appends a `[sync]` table to node.toml (call at most once per node, before start).
    pub fn configure_sync(&self, settings: &[(&str, u64)]) {
        let mut text = std::fs::read_to_string(&self.init.config).expect("node.toml");
        text.push_str("\n[sync]\n");
        for (k, v) in settings {
            text.push_str(&format!("{k} = {v}\n"));
        }
        NodeConfig::parse(&text).expect("node.toml with [sync] parses");
        std::fs::write(&self.init.config, text).expect("write node.toml");
    }
}

/// `me` trusts `other`: `trust export` on `other`, `trust add` (replacing) on `me`.
pub fn trust_partner(me: &TestNode, other: &TestNode) {
    let entry = me.dir.path().join(format!("trust-{}.toml", other.agency()));
    std::fs::write(
        &entry,
        passerelle::cli::federate::export(&other.init.config).expect("trust export"),
    )
    .expect("write trust entry");
    passerelle::cli::federate::add(&me.init.config, &entry, true).expect("trust add");
}

/// `peer add` on `me` for `other` (endpoint: `other`'s listen address when `entry.pull`).
pub fn add_peer(me: &TestNode, other: &TestNode, entry: &PeerEntry) {
    use passerelle::cli::federate::{ConfigArg, PeerAddArgs};
    passerelle::cli::federate::peer_add(&PeerAddArgs {
        config: ConfigArg {
            config: me.init.config.clone(),
        },
        agency: other.agency(),
        endpoint: entry
            .pull
            .then(|| format!("https://{}", other.listen_addr())),
        share: entry.share.clone(),
        relay: entry.relay,
        international: entry.international,
        country: entry.country.clone(),
    })
    .expect("peer add");
}

/// Mutual trust between `a` and `b`, and each one's entry for the other.
pub fn federate_pair(
    a: &TestNode,
    a_entry_for_b: &PeerEntry,
    b: &TestNode,
    b_entry_for_a: &PeerEntry,
) {
    trust_partner(a, b);
    trust_partner(b, a);
    add_peer(a, b, a_entry_for_b);
    add_peer(b, a, b_entry_for_a);
}

/// Every pair of `nodes` federated, each pulling from every other with the default policy.
pub fn full_mesh(nodes: &[&TestNode]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            federate_pair(a, &PeerEntry::pull(), b, &PeerEntry::pull());
        }
    }
}

/// Polls `check` every 20 ms until it returns `Ok`, at most `timeout`; panics with
/// `what` and the last state `check` described.
pub async fn wait_until_ok<F>(what: &str, timeout: std::time::Duration, mut check: F)
where
    F: FnMut() -> Result<(), String>,
{
    let started = std::time::Instant::now();
    loop {
        let last = match check() {
            Ok(()) => return,
            Err(e) => e,
        };
        if started.elapsed() >= timeout {
            panic!("{what}: not reached within {timeout:?}; last state: {last}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The node's state digest (records of every origin).
pub fn state_digest(node: &TestNode) -> passerelle_store::StateDigest {
    node.node().store().digest().expect("digest")
}

/// Every record `node` holds whose origin is `origin`: key → (revision, content, seal).
pub fn records_of_origin(
    node: &TestNode,
    origin: &str,
) -> std::collections::BTreeMap<String, (u64, Vec<u8>, Vec<u8>)> {
    node.node()
        .store()
        .iter(None)
        .map(|r| r.expect("stored record"))
        .filter(|r| r.key.origin.as_str() == origin)
        .map(|r| (r.key.to_string(), (r.revision, r.content, r.seal)))
        .collect()
}

/// Panics unless the store's records, log and metadata are consistent.
pub fn assert_store_consistent(node: &TestNode) -> passerelle_store::ConsistencyReport {
    let report = node
        .node()
        .store()
        .check_consistency()
        .expect("check_consistency");
    assert!(report.is_ok(), "{}: {report}", node.agency());
    report
}

/// Verifies the origin's Ed25519 signature of every record `node` holds, with the key the
/// node's trust store gives for the seal's key id; `keys` maps each origin to the public key
/// its own node signs with, so the trust store cannot quietly hold another key. Returns how
/// many records were checked.
pub fn assert_signatures_verify(
    node: &TestNode,
    keys: &std::collections::BTreeMap<String, [u8; 32]>,
) -> usize {
    use passerelle_model::envelope::{encode_payload, Seal};
    let trust = node.node().trust();
    let mut checked = 0;
    for r in node.node().store().iter(None) {
        let r = r.expect("stored record");
        let seal = Seal::decode(&r.seal).unwrap_or_else(|e| {
            panic!("{}: seal of {} does not decode: {e}", node.agency(), r.key)
        });
        let public = trust
            .signing_key(&r.key.origin, &seal.key_id)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no trusted key {} for {}",
                    node.agency(),
                    seal.key_id,
                    r.key
                )
            });
        if let Some(expected) = keys.get(r.key.origin.as_str()) {
            assert_eq!(
                &public,
                expected,
                "{}: trusted key of {} is not its node's",
                node.agency(),
                r.key.origin
            );
        }
        let payload = encode_payload(&r.key, r.revision, r.updated_at_micros, &r.content);
        assert!(
            passerelle_pki::verify_signature(&public, &payload, &seal.signature),
            "{}: signature of {} revision {} does not verify",
            node.agency(),
            r.key,
            r.revision
        );
        checked += 1;
    }
    checked
}

// ---------------------------------------------------------------- analytics harness

pub use pb::analytics_client::AnalyticsClient;

impl TestNode {
    /// An `Analytics` client authenticated as the agency's `analyst` (or another role).
    pub async fn analytics(&self, role: &str) -> AnalyticsClient<Channel> {
        AnalyticsClient::new(self.channel(role).await)
    }
}

/// A node on an in-memory store, its folder made by `init` for `agency` in `dir` (loopback
/// addresses it does not listen on), after `edit` has changed its configuration.
pub fn mem_node(
    dir: &Path,
    agency: &str,
    edit: impl FnOnce(&mut NodeConfig),
) -> passerelle_node::Node {
    let out = init::run(&InitArgs {
        agency: agency.parse().expect("agency"),
        dir: dir.join(agency),
        listen: "127.0.0.1:7443".parse().expect("addr"),
        hostname: Vec::new(),
        metrics_listen: "127.0.0.1:9464".parse().expect("addr"),
        days: 30,
    })
    .expect("init");
    let mut cfg = NodeConfig::load(&out.config).expect("node.toml");
    edit(&mut cfg);
    let engine = passerelle_store::AnyEngine::Mem(passerelle_store::MemEngine::new());
    passerelle_node::Node::open_on(&cfg, engine).expect("open node")
}

/// The first vacancy of `samples/vdab-vacancies.jsonl`.
pub fn sample_vacancy() -> passerelle_model::Vacancy {
    use passerelle::cli::files::{read_records, Format};
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/vdab-vacancies.jsonl"
    ))
    .expect("sample file");
    let first = read_records(
        passerelle_model::Kind::Vacancy,
        Format::Jsonl,
        Box::new(std::io::Cursor::new(sample)),
    )
    .expect("jsonl")
    .next()
    .expect("one line")
    .record
    .expect("sample vacancy");
    match first {
        passerelle_model::Record::Vacancy(v) => v,
        other => panic!("not a vacancy: {other:?}"),
    }
}
