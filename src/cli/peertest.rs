//! `passerelle peer test AGENCY`: diagnoses the link to a partner's node one step at a time (name, TCP, TLS, certificate, clock, authorisation, protocol) and names the first that fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use clap::Args;
use passerelle_model::AgencyId;
use passerelle_node::NodeConfig;
use passerelle_pki::{Role, TrustStore};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::federate::ConfigArg;
use crate::federation::PROTOCOL_VERSION;
use crate::pb::v1 as pb;

#[derive(Args, Debug, Clone)]
pub struct PeerTestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The partner agency: a `[[peers]]` entry of node.toml with an endpoint.
    pub agency: AgencyId,
    /// Seconds each network step may take.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// The steps of the diagnosis, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Resolve,
    Tcp,
    Tls,
    Certificate,
    Clock,
    Authorisation,
    Protocol,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Resolve,
        Step::Tcp,
        Step::Tls,
        Step::Certificate,
        Step::Clock,
        Step::Authorisation,
        Step::Protocol,
    ];

    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).expect("listed") + 1
    }

    pub fn label(self) -> &'static str {
        match self {
            Step::Resolve => "address resolution",
            Step::Tcp => "tcp connection",
            Step::Tls => "tls handshake",
            Step::Certificate => "certificate chain and san",
            Step::Clock => "clock skew",
            Step::Authorisation => "authorisation",
            Step::Protocol => "protocol version",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub step: Step,
    pub ok: bool,
    pub detail: String,
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}. {:<26} {:<4}  {}",
            self.step.number(),
            self.step.label(),
            if self.ok { "OK" } else { "FAIL" },
            self.detail
        )
    }
}

/// Every step run, up to and including the first failure.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub agency: AgencyId,
    pub endpoint: String,
    pub steps: Vec<StepResult>,
}

impl Diagnosis {
    /// The step that failed, if one did.
    pub fn failed(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| !s.ok)
    }

    pub fn is_ok(&self) -> bool {
        self.steps.len() == Step::ALL.len() && self.failed().is_none()
    }
}

/// Largest clock difference with a partner that passes step 5: TLS tolerates more (the
/// certificates are valid from an hour back), but timestamps and expiry sweeps do not.
const MAX_SKEW_SECS: i64 = 300;

/// Runs the diagnosis and prints one line per step; returns the exit code.
pub async fn run(args: &PeerTestArgs) -> anyhow::Result<i32> {
    let cfg = NodeConfig::load(&args.config.config)?;
    let d = diagnose(&cfg, &args.agency, Duration::from_secs(args.timeout.max(1))).await?;
    println!(
        "testing the link from {} to {} at {}",
        cfg.agency, d.agency, d.endpoint
    );
    for s in &d.steps {
        println!("{s}");
    }
    match d.failed() {
        Some(s) => {
            println!(
                "failed at step {} ({}); later steps not run",
                s.step.number(),
                s.step.label()
            );
            Ok(1)
        }
        None => {
            println!("all {} steps passed", Step::ALL.len());
            Ok(0)
        }
    }
}

struct Steps(Vec<StepResult>);

impl Steps {
    fn ok(&mut self, step: Step, detail: impl Into<String>) {
        self.0.push(StepResult {
            step,
            ok: true,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, step: Step, detail: impl Into<String>) {
        self.0.push(StepResult {
            step,
            ok: false,
            detail: detail.into(),
        });
    }
}

fn read(cfg: &NodeConfig, p: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let path = cfg.path(p);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Runs the steps against the endpoint of `agency`'s `[[peers]]` entry, with this node's
/// own certificate, stopping at the first failure.
pub async fn diagnose(
    cfg: &NodeConfig,
    agency: &AgencyId,
    timeout: Duration,
) -> anyhow::Result<Diagnosis> {
    passerelle_pki::install_crypto_provider();
    let peer = cfg
        .peers
        .iter()
        .find(|p| &p.agency == agency)
        .ok_or_else(|| {
            anyhow!("{agency} is not a peer in node.toml: add it with `passerelle peer add --agency {agency} --endpoint https://HOST:PORT`")
        })?;
    let endpoint = peer.endpoint.clone().ok_or_else(|| {
        anyhow!("the [[peers]] entry of {agency} has no endpoint: this node never calls it (it only pulls from us), so there is no link to test from here")
    })?;
    let cert_pem = read(cfg, &cfg.tls.cert, "node certificate")?;
    let key_pem = read(cfg, &cfg.tls.key, "node key")?;
    let ca_pem = read(cfg, &cfg.tls.ca, "CA certificate")?;
    let trust_path = cfg.tls.trust.as_ref().map(|p| cfg.path(p));
    let trust = TrustStore::load(&cfg.agency, &ca_pem, trust_path.as_deref())?;
    let mut steps = Steps(Vec::new());
    let mut d = Diagnosis {
        agency: agency.clone(),
        endpoint: endpoint.clone(),
        steps: Vec::new(),
    };
    let link = Link {
        cfg,
        agency,
        endpoint: &endpoint,
        cert_pem: &cert_pem,
        key_pem: &key_pem,
        trust: &trust,
        timeout,
    };
    link.run(&mut steps).await;
    d.steps = steps.0;
    Ok(d)
}

struct Link<'a> {
    cfg: &'a NodeConfig,
    agency: &'a AgencyId,
    endpoint: &'a str,
    cert_pem: &'a str,
    key_pem: &'a str,
    trust: &'a TrustStore,
    timeout: Duration,
}

impl Link<'_> {
    fn secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    async fn run(&self, steps: &mut Steps) {
        // 1. address resolution
        let (host, port) = match host_port(self.endpoint) {
            Ok(hp) => hp,
            Err(e) => return steps.fail(Step::Resolve, e),
        };
        let addrs: Vec<SocketAddr> =
            match tokio::time::timeout(self.timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
            {
                Err(_) => {
                    return steps.fail(
                        Step::Resolve,
                        format!("no answer from the resolver for {host} within {} s", self.secs()),
                    )
                }
                Ok(Err(e)) => {
                    return steps.fail(
                        Step::Resolve,
                        format!("cannot resolve {host}: {e} (check the endpoint in node.toml and this host's DNS)"),
                    )
                }
                Ok(Ok(a)) => a.collect(),
            };
        if addrs.is_empty() {
            return steps.fail(Step::Resolve, format!("{host} resolves to no address"));
        }
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        steps.ok(Step::Resolve, format!("{host} → {}", list.join(", ")));

        // 2. tcp
        let mut tcp = None;
        let mut errors = Vec::new();
        for a in &addrs {
            let started = std::time::Instant::now();
            match tokio::time::timeout(self.timeout, TcpStream::connect(a)).await {
                Ok(Ok(s)) => {
                    tcp = Some((s, *a, started.elapsed()));
                    break;
                }
                Ok(Err(e)) => errors.push(format!("{a}: {e}")),
                Err(_) => errors.push(format!(
                    "{a}: no answer within {} s (a firewall dropping packets?)",
                    self.secs()
                )),
            }
        }
        let Some((tcp, addr, took)) = tcp else {
            return steps.fail(
                Step::Tcp,
                format!(
                    "cannot connect: {} (is the partner's node running, and may this host reach port {port} through every firewall?)",
                    errors.join("; ")
                ),
            );
        };
        let _ = tcp.set_nodelay(true);
        steps.ok(
            Step::Tcp,
            format!("connected to {addr} in {} ms", took.as_millis()),
        );

        // 3. tls handshake, recording the partner's chain without judging it yet
        let server_name = match ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(e) => {
                return steps.fail(
                    Step::Tls,
                    format!("{host:?} is not a valid server name: {e}"),
                )
            }
        };
        let recorder = Arc::new(Recorder::new());
        let tls = match self.recording_config(recorder.clone()) {
            Ok(c) => c,
            Err(e) => return steps.fail(Step::Tls, format!("{e:#}")),
        };
        let connector = TlsConnector::from(Arc::new(tls));
        let mut stream =
            match tokio::time::timeout(self.timeout, connector.connect(server_name.clone(), tcp))
                .await
            {
                Err(_) => {
                    return steps.fail(
                        Step::Tls,
                        format!("the handshake did not finish within {} s", self.secs()),
                    )
                }
                Ok(Err(e)) => return steps.fail(Step::Tls, handshake_failure(&e)),
                Ok(Ok(s)) => s,
            };
        let (version, suite, alpn) = {
            let c = stream.get_ref().1;
            (
                c.protocol_version(),
                c.negotiated_cipher_suite(),
                c.alpn_protocol().map(<[u8]>::to_vec),
            )
        };
        if version != Some(rustls::ProtocolVersion::TLSv1_3) {
            return steps.fail(
                Step::Tls,
                format!("the partner negotiated {version:?}, not TLS 1.3"),
            );
        }
        if alpn.as_deref() != Some(passerelle_pki::ALPN_H2) {
            return steps.fail(
                Step::Tls,
                "the partner did not agree to HTTP/2 (ALPN h2): is a passerelle node listening there?",
            );
        }
        // In TLS 1.3 the server judges our certificate after our side has finished the
        // handshake: its verdict (an alert, or a closed connection) comes with the first read.
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
        let answer = async {
            stream.write_all(&preface).await?;
            stream.flush().await?;
            let mut buf = [0u8; 64];
            stream.read(&mut buf).await
        };
        match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => {
                return steps.fail(
                    Step::Tls,
                    format!("no answer after the handshake within {} s", self.secs()),
                )
            }
            Ok(Ok(0)) => {
                return steps.fail(
                    Step::Tls,
                    "the partner closed the connection right after the handshake: it refused this node's certificate (its log says why: \"client identity refused\" or \"tls handshake failed\")",
                )
            }
            Ok(Err(e)) => {
                return steps.fail(
                    Step::Tls,
                    format!(
                        "the partner refused this node's certificate: {e} (it needs {}'s CA in its trust file, `passerelle trust add`; our certificate must be valid and not revoked)",
                        self.cfg.agency
                    ),
                )
            }
            Ok(Ok(_)) => {}
        }
        drop(stream);
        let suite = suite
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        steps.ok(
            Step::Tls,
            format!("TLS 1.3 ({suite}), ALPN h2; the partner accepted this node's certificate"),
        );

        // 4. certificate chain and SAN, judged here against the partner's CA
        let chain = recorder.take();
        let time_problem = match self.check_certificate(&chain, &server_name, &host) {
            Ok((detail, time_problem)) => {
                steps.ok(Step::Certificate, detail);
                time_problem
            }
            Err(why) => return steps.fail(Step::Certificate, why),
        };

        // 5. clock (certificate window now; the partner's Date header after Hello)
        if let Some(why) = time_problem {
            return steps.fail(Step::Clock, why);
        }
        let hello = self.hello().await;
        let (date, result) = match hello {
            Ok((date, r)) => (date, Ok(r)),
            Err((date, why)) => (date, Err(why)),
        };
        let not_after = chain
            .first()
            .and_then(|c| passerelle_pki::cert_not_after(c).ok())
            .map(unix);
        let validity = match not_after {
            Some(t) => format!(
                "its certificate is valid until {} ({} days left)",
                crate::backup::format_unix(t.max(0) as u64),
                (t - unix(SystemTime::now())) / 86_400
            ),
            None => String::new(),
        };
        match date.as_deref().and_then(parse_http_date) {
            Some(theirs) => {
                let skew = theirs - unix(SystemTime::now());
                let how = match skew {
                    0 => "agrees with ours to the second".to_string(),
                    s if s > 0 => format!("is {s} s ahead of ours"),
                    s => format!("is {} s behind ours", -s),
                };
                if skew.abs() > MAX_SKEW_SECS {
                    return steps.fail(
                        Step::Clock,
                        format!("the partner's clock {how} (more than {MAX_SKEW_SECS} s): synchronise both hosts with NTP"),
                    );
                }
                steps.ok(
                    Step::Clock,
                    format!("the partner's clock {how}; {validity}"),
                );
            }
            None => steps.ok(
                Step::Clock,
                format!("{validity}; the partner sent no Date header, its clock was not compared"),
            ),
        }

        // 6. authorisation
        let hello = match result {
            Ok(h) => h,
            Err(why) => return steps.fail(Step::Authorisation, why),
        };
        if hello.agency != self.agency.as_str() {
            return steps.fail(
                Step::Authorisation,
                format!(
                    "the node answered Hello as {}, not {}",
                    hello.agency, self.agency
                ),
            );
        }
        steps.ok(
            Step::Authorisation,
            format!(
                "Hello accepted by {} (passerelle {}, head seq {})",
                hello.agency, hello.node_version, hello.head_seq
            ),
        );

        // 7. protocol version
        if hello.protocol_version != PROTOCOL_VERSION {
            return steps.fail(
                Step::Protocol,
                format!(
                    "the partner speaks federation protocol {}, this node {PROTOCOL_VERSION}: upgrade the older node",
                    hello.protocol_version
                ),
            );
        }
        steps.ok(
            Step::Protocol,
            format!("both speak federation protocol {PROTOCOL_VERSION}"),
        );
    }

    /// TLS 1.3 with this node's certificate, accepting (and recording) any server chain
    /// whose handshake signature verifies: the chain is judged in step 4.
    fn recording_config(&self, recorder: Arc<Recorder>) -> anyhow::Result<rustls::ClientConfig> {
        let chain = passerelle_pki::certs_from_pem(self.cert_pem, "node certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| anyhow!("node key: {e}"))?;
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(recorder)
        .with_client_auth_cert(chain, key)?;
        tls.alpn_protocols = vec![passerelle_pki::ALPN_H2.to_vec()];
        Ok(tls)
    }

    /// Step 4: the chain against the CA the trust file holds for the partner, the name we
    /// dialled, and the SAN identity. Validity dates are left to step 5 (returned as the
    /// second value when they fail now).
    fn check_certificate(
        &self,
        chain: &[CertificateDer<'static>],
        server_name: &ServerName<'static>,
        host: &str,
    ) -> Result<(String, Option<String>), String> {
        let Some(leaf) = chain.first() else {
            return Err("the partner sent no certificate".into());
        };
        let intermediates = &chain[1..];
        let identity = passerelle_pki::identity_from_cert_der(leaf)
            .map_err(|e| format!("its certificate carries no valid passerelle identity: {e}"))?;
        let Some(trusted) = self.trust.get(self.agency) else {
            return Err(format!(
                "{} is not in the trust file: add the entry it exported with `passerelle trust add`",
                self.agency
            ));
        };
        let verify_at = |ca: &CertificateDer<'static>, now: UnixTime| {
            let mut roots = RootCertStore::empty();
            roots
                .add(ca.clone())
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            let verifier = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            verifier.verify_server_cert(leaf, intermediates, server_name, &[], now)
        };
        let now = UnixTime::now();
        let mut time_problem = None;
        let mut result = verify_at(trusted.ca_der(), now);
        if let Err(rustls::Error::InvalidCertificate(e)) = &result {
            if let Some(why) = time_failure(e) {
                time_problem = Some(why);
                // judge the chain and names at a moment inside the certificate's window
                let inside = passerelle_pki::cert_not_after(leaf)
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| UnixTime::since_unix_epoch(d.saturating_sub(Duration::from_secs(1))))
                    .unwrap_or(now);
                result = verify_at(trusted.ca_der(), inside);
            }
        }
        match result {
            Ok(_) => {}
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => {
                let other = self
                    .trust
                    .iter()
                    .filter(|t| t.agency() != self.agency)
                    .find(|t| verify_at(t.ca_der(), now).is_ok())
                    .map(|t| format!("it was issued by the CA of {}", t.agency()))
                    .unwrap_or_else(|| "by no CA in the trust file".into());
                return Err(format!(
                    "the certificate is not issued by the CA the trust file holds for {} ({other}): the trust entry is outdated or the partner uses another CA; exchange trust entries again (`passerelle trust add --replace`)",
                    self.agency
                ));
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) => {
                return Err(format!(
                    "the certificate is not valid for {host}, the name in the endpoint (it names {}): use one of those in node.toml, or have the partner issue it for {host}",
                    presented.join(", ")
                ));
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                return Err(format!(
                    "the certificate is not valid for {host}, the name in the endpoint"
                ));
            }
            Err(e) => return Err(format!("the certificate is refused: {e}")),
        }
        if identity.role != Role::Node {
            return Err(format!(
                "its SAN is {}: role {}, a partner's node needs role node",
                identity.uri(),
                identity.role
            ));
        }
        if &identity.agency != self.agency {
            return Err(format!(
                "its SAN {} claims agency {}, but this peer entry is {}",
                identity.uri(),
                identity.agency,
                self.agency
            ));
        }
        Ok((
            format!(
                "{} issued by the CA of {} in the trust file, valid for {host}",
                identity.uri(),
                self.agency
            ),
            time_problem,
        ))
    }

    /// Federation.Hello with the node's own TLS settings; the partner's `date` header comes
    /// with the answer or the refusal.
    async fn hello(&self) -> Result<(Option<String>, pb::HelloResponse), (Option<String>, String)> {
        let tls = passerelle_pki::client_config(
            self.cert_pem,
            self.key_pem,
            self.trust,
            Some(self.agency),
        )
        .map_err(|e| (None, format!("cannot build this node's TLS settings: {e}")))?;
        let channel = crate::client::connect(self.endpoint, Arc::new(tls))
            .await
            .map_err(|e| {
                (
                    None,
                    format!("cannot connect with this node's own TLS settings: {e:#}"),
                )
            })?;
        let mut client = pb::federation_client::FederationClient::new(channel);
        let call = client.hello(pb::HelloRequest {
            agency: self.cfg.agency.to_string(),
            node_version: crate::NODE_VERSION.into(),
            protocol_version: PROTOCOL_VERSION,
        });
        let date = |m: &tonic::metadata::MetadataMap| {
            m.get("date")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err((None, format!("no answer to Hello within {} s", self.secs()))),
            Ok(Ok(r)) => Ok((date(r.metadata()), r.into_inner())),
            Ok(Err(s)) => {
                let why = match s.code() {
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => format!(
                        "the partner refused this node: {} (its node.toml must list {ours} under [[peers]], `passerelle peer add --agency {ours}`, then restart; and it must not have blocked {ours})",
                        s.message(),
                        ours = self.cfg.agency
                    ),
                    _ => crate::cli::records::status_lines("Hello ", &s).join(" "),
                };
                Err((date(s.metadata()), why))
            }
        }
    }
}

/// The words of a step 5 failure when `e` is about validity dates.
fn time_failure(e: &CertificateError) -> Option<String> {
    let local = crate::backup::format_unix(unix(SystemTime::now()).max(0) as u64);
    let at = |t: &UnixTime| crate::backup::format_unix(t.as_secs());
    match e {
        CertificateError::ExpiredContext { not_after, .. } => Some(format!(
            "the partner's certificate expired on {} and this host's clock says {local}: the partner must renew it (or this clock is wrong)",
            at(not_after)
        )),
        CertificateError::Expired => Some(format!(
            "the partner's certificate has expired by this host's clock ({local})"
        )),
        CertificateError::NotValidYetContext { not_before, .. } => Some(format!(
            "the partner's certificate is valid only from {} and this host's clock says {local}: one of the two clocks is wrong",
            at(not_before)
        )),
        CertificateError::NotValidYet => Some(format!(
            "the partner's certificate is not valid yet by this host's clock ({local})"
        )),
        _ => None,
    }
}

fn handshake_failure(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("alert") {
        format!("the partner ended the handshake: {text} (it may not trust this node's CA: `passerelle trust add` on its side)")
    } else {
        format!("the handshake failed: {text} (is this a passerelle node's port?)")
    }
}

/// Host and port of `https://host:port`.
fn host_port(endpoint: &str) -> Result<(String, u16), String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| {
        format!("the endpoint {endpoint:?} is not a URL like https://host:port: {e}")
    })?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "the endpoint {endpoint:?} must start with https://"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("the endpoint {endpoint:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Seconds since 1970 of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 IMF-fixdate).
fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == month)? as u32 + 1;
    let date = passerelle_model::Date::from_ymd(year.parse().ok()?, m, day.parse().ok()?)?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, sec] = hms[..] else {
        return None;
    };
    Some(i64::from(date.0) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Accepts any server chain whose handshake signature verifies, and keeps it for step 4.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Vec<CertificateDer<'static>>>,
    algs: WebPkiSupportedAlgorithms,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            seen: Mutex::new(Vec::new()),
            algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn take(&self) -> Vec<CertificateDer<'static>> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = self.seen.lock().expect("lock");
        seen.clear();
        seen.push(end_entity.clone().into_owned());
        seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn endpoints_split() {
        assert_eq!(
            host_port("https://vdab.example:7443").unwrap(),
            ("vdab.example".into(), 7443)
        );
        assert_eq!(
            host_port("https://[::1]:7443").unwrap(),
            ("::1".into(), 7443)
        );
        assert!(host_port("http://vdab.example:7443").is_err());
    }

    #[test]
    fn steps_are_numbered_in_order() {
        assert_eq!(Step::Resolve.number(), 1);
        assert_eq!(Step::Certificate.number(), 4);
        assert_eq!(Step::Protocol.number(), 7);
    }
}
