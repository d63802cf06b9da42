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
        closes_on: "2026-12-31".into(),
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
