//! Operations (PRODUCT.md sections 3, 6 and 7): the Prometheus page on its own listener, and
//! certificates, trust file and CRL reloaded without a restart and without dropping streams.
//!
//! Real nodes on loopback; the metrics page is fetched with a plain HTTP/1.1 request and
//! parsed line by line. Every wait is a bounded poll; nothing asserts on timing.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use passerelle::federation::peer::PeerState;
use passerelle::pb::v1 as pb;
use passerelle_model::Record;
use passerelle_node::Refusal;
use passerelle_pki::{CertRequest, Identity, Pem, Role};
use passerelle_store::{Replica, ReplicaOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";

/// Bound of every wait for replication or a reload on loopback (the machine is shared).
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

/// `GET path` on the metrics listener: (status line and headers, body).
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("metrics answer within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).expect("utf-8 page");
    let (head, body) = text.split_once("\r\n\r\n").expect("http answer");
    (head.to_owned(), body.to_owned())
}

async fn scrape(node: &TestNode) -> String {
    let addr = node.handle.as_ref().expect("running").metrics_addr;
    let (head, body) = http_get(addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// Parses one sample line `name{k="v",...} value` (labels optional).
fn parse_line(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), BTreeMap::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => val.extend(chars.next()),
                '"' => break,
                c => val.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), val);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_owned(), labels, value))
}

/// The value of the sample `name` with exactly the labels `labels`, if the page has it.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    page.lines()
        .filter_map(parse_line)
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
}

fn must(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(page, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} on the page:\n{page}"))
}

async fn put_vacancy(node: &TestNode, id: &str, i: usize) {
    let mut v = lasting_vacancy(id);
    v.title = format!("Lasser TIG/MIG {i}");
    let r = node
        .vacancies("publisher")
        .await
        .put(pb::PutVacancyRequest {
            vacancy: Some(v),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put {id}: {s:?}"))
        .into_inner();
    assert!(r.changed, "put of {id} changed nothing");
}

fn cursor(node: &TestNode, peer: &str) -> u64 {
    node.node()
        .store()
        .cursor(peer)
        .expect("cursor")
        .unwrap_or(0)
}

/// Waits until `node` has pulled everything `source` logged so far and is live.
async fn wait_caught_up(what: &str, node: &TestNode, source: &TestNode) {
    let head = source.head_seq();
    let peer = source.agency().to_string();
    wait_until_ok(what, WAIT, || {
        let c = cursor(node, &peer);
        let live = node
            .peer_status(&peer)
            .is_some_and(|s| s.state == PeerState::Live);
        if c >= head && live {
            Ok(())
        } else {
            Err(format!("cursor {c}, head {head}, live {live}"))
        }
    })
    .await;
}

/// The serial of the certificate a node at `addr` presents to a new connection (made with
/// the agency's publisher certificate from `dir`, as `init` wrote it).
async fn served_serial(dir: &Path, agency: &str, addr: SocketAddr) -> Vec<u8> {
    passerelle_pki::install_crypto_provider();
    let agency: passerelle_model::AgencyId = agency.parse().unwrap();
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let me = read_pem(
        &dir.join("clients/publisher.pem"),
        &dir.join("clients/publisher-key.pem"),
    );
    let trust = passerelle_pki::TrustStore::load(&agency, &ca, None).unwrap();
    let tls =
        passerelle_pki::client_config(&me.cert_pem, &me.key_pem, &trust, Some(&agency)).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp),
    )
    .await
    .expect("handshake within 10 s")
    .expect("handshake");
    let certs = conn
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate");
    passerelle_pki::cert_serial(&certs[0]).unwrap()
}

fn serial_of(pem: &str) -> Vec<u8> {
    let der = passerelle_pki::certs_from_pem(pem, "certificate").unwrap();
    passerelle_pki::cert_serial(&der[0]).unwrap()
}

/// Issues a new node certificate (same CA, identity and address, `days` of validity) and
/// writes it over node.pem and node-key.pem, each through a rename as an operator's tooling
/// would; returns its serial.
fn renew_node_cert(dir: &Path, agency: &str, addr: SocketAddr, days: u32) -> Vec<u8> {
    let ca = read_pem(&dir.join("ca.pem"), &dir.join("ca-key.pem"));
    let mut req = CertRequest::new(
        Identity::new(agency.parse().unwrap(), Role::Node, "node").unwrap(),
        days,
    );
    req.ip_addrs = vec![addr.ip()];
    let pem = passerelle_pki::issue_cert(&ca, &req).unwrap();
    for (file, text) in [("node.pem", &pem.cert_pem), ("node-key.pem", &pem.key_pem)] {
        let tmp = dir.join(format!("{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
    serial_of(&pem.cert_pem)
}

async fn hello_as(node: &TestNode, who: &Pem, agency: &str) -> Result<(), String> {
    let channel = connect_raw(node, Some(who))
        .await
        .map_err(|e| format!("connect: {e:#}"))?;
    pb::federation_client::FederationClient::new(channel)
        .hello(pb::HelloRequest {
            agency: agency.into(),
            node_version: passerelle::NODE_VERSION.into(),
            protocol_version: passerelle::federation::PROTOCOL_VERSION,
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// VDAB serves, ANPE pulls from it; both started.
async fn pair() -> (TestNode, TestNode) {
    let (vdab, anpe) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(
        &vdab.node,
        &PeerEntry::serve(),
        &anpe.node,
        &PeerEntry::pull(),
    );
    (vdab.start().await, anpe.start().await)
}

// ---------------------------------------------------------------- 1. the metrics page

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_carries_every_series() {
    let (vdab, anpe) = pair().await;
    for i in 0..3 {
        put_vacancy(&vdab, &format!("V-{i:03}"), i).await;
    }
    wait_caught_up("ANPE pulled VDAB's records", &anpe, &vdab).await;

    // VDAB's store is tampered with: a record altered after it was signed
    let target: passerelle_model::RecordKey = "be.vdab/vacancy/V-001".parse().unwrap();
    let stored = vdab.node().store().get(&target).unwrap().expect("stored");
    let Record::Vacancy(mut altered) = passerelle_node::decode(&stored).unwrap() else {
        unreachable!()
    };
    altered.title = "Forged".into();
    let outcome = vdab
        .node()
        .store()
        .apply_replica(Replica {
            key: target.clone(),
            revision: stored.revision + 1,
            updated_at_micros: stored.updated_at_micros + 1,
            content: passerelle_model::codec::encode_content(&Record::Vacancy(altered)),
            seal: stored.seal.clone(),
        })
        .unwrap();
    assert!(
        matches!(outcome, ReplicaOutcome::Applied { .. }),
        "{outcome:?}"
    );
    // wakes the Pull stream with a change committed through the node
    put_vacancy(&vdab, "V-003", 3).await;
    wait_until_ok("ANPE refuses the altered copy", WAIT, || {
        match anpe.node().counters.refused().get(&Refusal::BadSignature) {
            Some(n) if *n >= 1 => Ok(()),
            _ => Err(format!("{:?}", anpe.node().counters.refused())),
        }
    })
    .await;
    wait_caught_up("ANPE pulled VDAB's later record", &anpe, &vdab).await;
    // the peer's figures are updated just after the batch is committed
    wait_until_ok("ANPE counted the last batch", WAIT, || {
        let st = anpe.peer_status(VDAB).expect("ANPE pulls from VDAB");
        let applied = anpe.node().counters.applied.load(Ordering::Relaxed);
        if st.applied >= 4 && st.refused >= 1 && applied >= 4 {
            Ok(())
        } else {
            Err(format!("{st:?}, node applied {applied}"))
        }
    })
    .await;

    // a call the node refuses: an analyst may not write
    let refused = anpe
        .vacancies("analyst")
        .await
        .put(pb::PutVacancyRequest {
            vacancy: Some(lasting_vacancy("V-900")),
            expected_revision: None,
        })
        .await
        .expect_err("an analyst may not put");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // and one the service refuses after authorisation: a record that does not exist
    let missing = anpe
        .vacancies("analyst")
        .await
        .get(pb::GetVacancyRequest {
            id: "NOPE".into(),
            origin: String::new(),
        })
        .await
        .expect_err("no such record");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let page = scrape(&anpe).await;
    // per-peer sync
    let lag = must(&page, "passerelle_peer_lag_records", &[("peer", VDAB)]);
    assert_eq!(lag, 0.0, "ANPE caught up with VDAB");
    let last = must(
        &page,
        "passerelle_peer_last_success_timestamp_seconds",
        &[("peer", VDAB)],
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(last > now - 600.0 && last <= now + 1.0, "{last} vs {now}");
    assert_eq!(
        must(
            &page,
            "passerelle_peer_state",
            &[("peer", VDAB), ("state", "live")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "passerelle_peer_state",
            &[("peer", VDAB), ("state", "failing")]
        ),
        0.0
    );
    assert!(
        must(
            &page,
            "passerelle_peer_applied_records_total",
            &[("peer", VDAB)]
        ) >= 4.0
    );
    assert!(
        must(
            &page,
            "passerelle_peer_refused_records_total",
            &[("peer", VDAB)]
        ) >= 1.0
    );
    // records applied and refused by reason
    assert!(must(&page, "passerelle_records_applied_total", &[]) >= 4.0);
    assert!(
        must(
            &page,
            "passerelle_records_refused_total",
            &[("reason", "bad_signature")]
        ) >= 1.0
    );
    assert_eq!(
        must(
            &page,
            "passerelle_records_refused_total",
            &[("reason", "unknown_origin")]
        ),
        0.0,
        "every reason has its series, at 0 until it happens"
    );
    // RPCs by method and code, with latency histograms
    let put = "/passerelle.v1.Vacancies/Put";
    let get = "/passerelle.v1.Vacancies/Get";
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_handled_total",
            &[("method", put), ("code", "PERMISSION_DENIED")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_handled_total",
            &[("method", get), ("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_duration_seconds_count",
            &[("method", put), ("code", "PERMISSION_DENIED")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_duration_seconds_bucket",
            &[
                ("method", put),
                ("code", "PERMISSION_DENIED"),
                ("le", "+Inf")
            ]
        ),
        1.0
    );
    assert!(page.contains("# TYPE passerelle_rpc_duration_seconds histogram"));
    // store size and certificate expiry (init gave the certificates 30 days)
    assert!(must(&page, "passerelle_store_size_bytes", &[]) > 0.0);
    assert!(must(&page, "passerelle_store_head_sequence", &[]) >= 0.0);
    let node_cert = must(
        &page,
        "passerelle_certificate_expiry_seconds",
        &[
            ("kind", "node"),
            ("subject", "urn:passerelle:tg.anpe:node:node"),
        ],
    );
    assert!(
        node_cert > 29.0 * 86_400.0 && node_cert <= 30.0 * 86_400.0,
        "{node_cert}"
    );
    assert!(
        must(
            &page,
            "passerelle_certificate_expiry_seconds",
            &[("kind", "ca"), ("subject", ANPE)]
        ) > 0.0
    );
    assert!(
        must(
            &page,
            "passerelle_certificate_expiry_seconds",
            &[("kind", "partner_ca"), ("subject", VDAB)]
        ) > 0.0
    );
    assert!(
        must(
            &page,
            "passerelle_certificate_not_after_timestamp_seconds",
            &[
                ("kind", "node"),
                ("subject", "urn:passerelle:tg.anpe:node:node")
            ]
        ) > now
    );

    // the serving side counts OK calls, whose status travels in the trailers, and the
    // follow stream that is still open
    let page = scrape(&vdab).await;
    // four puts: V-000 to V-002, and V-003 that woke the stream
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_handled_total",
            &[("method", put), ("code", "OK")]
        ),
        4.0,
        "{page}"
    );
    assert_eq!(
        must(
            &page,
            "passerelle_rpc_duration_seconds_count",
            &[("method", put), ("code", "OK")]
        ),
        4.0
    );
    assert!(
        must(
            &page,
            "passerelle_rpc_handled_total",
            &[
                ("method", "/passerelle.v1.Federation/Hello"),
                ("code", "OK")
            ]
        ) >= 1.0
    );
    assert!(
        must(
            &page,
            "passerelle_rpc_started_total",
            &[("method", "/passerelle.v1.Federation/Pull")]
        ) >= 1.0
    );
    assert_eq!(
        sample(&page, "passerelle_peer_lag_records", &[("peer", ANPE)]),
        None,
        "VDAB does not pull from ANPE"
    );

    // anything but /metrics is not found
    let addr = anpe.handle.as_ref().unwrap().metrics_addr;
    let (head, _) = http_get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

// ---------------------------------------------------------------- 2. certificate reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_node_certificate_is_served_after_reload_and_the_open_stream_goes_on() {
    let (vdab, anpe) = pair().await;
    put_vacancy(&vdab, "V-000", 0).await;
    wait_caught_up("ANPE live on VDAB", &anpe, &vdab).await;
    let before = anpe.peer_status(VDAB).expect("ANPE pulls from VDAB");
    let pulls = |page: &str| {
        must(
            page,
            "passerelle_rpc_started_total",
            &[("method", "/passerelle.v1.Federation/Pull")],
        )
    };
    let pulls_before = pulls(&scrape(&vdab).await);

    let dir = vdab.init.dir.clone();
    let addr = vdab.addr();
    let old = served_serial(&dir, VDAB, addr).await;
    let renewed = renew_node_cert(&dir, VDAB, addr, 90);
    assert_ne!(old, renewed);
    let reloader = vdab.handle.as_ref().unwrap().reloader.clone();
    reloader.reload("test").expect("reload");
    assert_eq!(served_serial(&dir, VDAB, addr).await, renewed);

    // the follow stream opened before the reload still delivers
    for i in 1..4 {
        put_vacancy(&vdab, &format!("V-{i:03}"), i).await;
    }
    wait_caught_up("ANPE gets records over the old stream", &anpe, &vdab).await;
    let after = anpe.peer_status(VDAB).unwrap();
    assert_eq!(after.state, PeerState::Live);
    assert_eq!(
        after.state_since, before.state_since,
        "the pull never left the live state: {after:?}"
    );
    let page = scrape(&vdab).await;
    assert_eq!(pulls(&page), pulls_before, "ANPE did not pull again");
    assert!(must(&page, "passerelle_tls_reloads_total", &[]) >= 1.0);
    let node_cert = must(
        &page,
        "passerelle_certificate_expiry_seconds",
        &[
            ("kind", "node"),
            ("subject", "urn:passerelle:be.vdab:node:node"),
        ],
    );
    assert!(
        node_cert > 89.0 * 86_400.0,
        "renewed expiry shown: {node_cert}"
    );

    // a broken key is refused, names the file and keeps the renewed certificate in force
    let key_path = dir.join("node-key.pem");
    let good_key = std::fs::read_to_string(&key_path).unwrap();
    std::fs::write(
        &key_path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = reloader.reload("test").expect_err("a broken key must fail");
    assert!(format!("{err:#}").contains("node-key.pem"), "{err:#}");
    assert_eq!(served_serial(&dir, VDAB, addr).await, renewed);
    assert!(reloader.certs.reload_failures() >= 1);
    assert!(reloader.certs.last_error().is_some());
    std::fs::write(&key_path, good_key).unwrap();

    // without a signal: a changed file is noticed by itself
    let third = renew_node_cert(&dir, VDAB, addr, 120);
    let started = Instant::now();
    loop {
        if served_serial(&dir, VDAB, addr).await == third {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the changed certificate was not picked up within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reloader.certs.last_error().is_none());
    put_vacancy(&vdab, "V-004", 4).await;
    wait_caught_up("ANPE still live after the second reload", &anpe, &vdab).await;
    assert_eq!(
        anpe.peer_status(VDAB).unwrap().state_since,
        before.state_since
    );
}

// ---------------------------------------------------------------- 3. CRL reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_certificate_revoked_in_the_crl_is_refused_after_reload() {
    // ANPE serves, VDAB pulls from it
    let (anpe, vdab) = (PendingNode::init(ANPE).await, PendingNode::init(VDAB).await);
    federate_pair(
        &anpe.node,
        &PeerEntry::serve(),
        &vdab.node,
        &PeerEntry::pull(),
    );
    let (anpe, vdab) = (anpe.start().await, vdab.start().await);
    put_vacancy(&anpe, "V-000", 0).await;
    wait_caught_up("VDAB live on ANPE", &vdab, &anpe).await;

    let vdab_dir = &vdab.init.dir;
    let revoked = read_pem(&vdab_dir.join("node.pem"), &vdab_dir.join("node-key.pem"));
    let other = passerelle_pki::issue_cert(
        &vdab.ca(),
        &CertRequest::new(
            Identity::new(VDAB.parse().unwrap(), Role::Node, "n2").unwrap(),
            5,
        ),
    )
    .unwrap();
    hello_as(&anpe, &revoked, VDAB)
        .await
        .expect("VDAB's node certificate works before");
    hello_as(&anpe, &other, VDAB)
        .await
        .expect("VDAB's second certificate works");

    // VDAB's CA revokes its node certificate; ANPE's operator installs the CRL, names it in
    // node.toml and reloads
    let crl = passerelle_pki::new_crl(&vdab.ca(), &[serial_of(&revoked.cert_pem)], 7).unwrap();
    let anpe_dir = &anpe.init.dir;
    std::fs::write(anpe_dir.join("crl.pem"), crl).unwrap();
    let toml = std::fs::read_to_string(&anpe.init.config).unwrap();
    assert!(
        toml.contains("# crl = \"crl.pem\""),
        "init's commented crl line"
    );
    std::fs::write(
        &anpe.init.config,
        toml.replace("# crl = \"crl.pem\"", "crl = \"crl.pem\""),
    )
    .unwrap();
    let reloader = anpe.handle.as_ref().unwrap().reloader.clone();
    reloader.set_config_file(anpe.init.config.clone());
    reloader.reload("test").expect("reload with the CRL");

    let refused = hello_as(&anpe, &revoked, VDAB).await;
    assert!(refused.is_err(), "the revoked certificate still works");
    hello_as(&anpe, &other, VDAB)
        .await
        .expect("VDAB's other certificate still works");
    put_vacancy(&anpe, "V-001", 1).await;

    // a CRL that does not parse is refused, named, and the previous one stays in force
    std::fs::write(anpe_dir.join("crl.pem"), "not a crl\n").unwrap();
    let err = reloader.reload("test").expect_err("a broken CRL must fail");
    assert!(format!("{err:#}").contains("crl.pem"), "{err:#}");
    assert!(hello_as(&anpe, &revoked, VDAB).await.is_err());
    hello_as(&anpe, &other, VDAB).await.expect("still accepted");
    let page = scrape(&anpe).await;
    assert!(must(&page, "passerelle_tls_reloads_total", &[]) >= 1.0);
    assert!(must(&page, "passerelle_tls_reload_failures_total", &[]) >= 1.0);
}

// ---------------------------------------------------------------- 4. SIGHUP, real binary

#[test]
fn sighup_makes_the_binary_serve_a_renewed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("anpe");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // certificates for 20 days: within the 30 days that are warned about
    let init = run_bin(
        [
            "init",
            "--agency",
            ANPE,
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--days",
            "20",
        ],
        Duration::from_secs(60),
    );
    assert!(init.ok(), "{init:#?}");
    let mut served = Served::start(&dir.join("node.toml"), &tmp.path().join("serve.log"));
    let started = Instant::now();
    while !served.log_text().contains("certificate expires soon") {
        assert!(
            started.elapsed() < WAIT,
            "no expiry warning at start-up; log:\n{}",
            served.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let warning = served
        .log_text()
        .lines()
        .find(|l| l.contains("certificate expires soon"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("urn:passerelle:tg.anpe:node:node") && warning.contains("19"),
        "{warning}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let old = rt.block_on(served_serial(&dir, ANPE, addr));
    let renewed = renew_node_cert(&dir, ANPE, addr, 90);
    assert_ne!(old, renewed);
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(served.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    let started = Instant::now();
    loop {
        let log = served.log_text();
        let reloaded = log
            .lines()
            .any(|l| l.contains("reloaded certificates") && l.contains("sighup"));
        if reloaded && rt.block_on(served_serial(&dir, ANPE, addr)) == renewed {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "no reload on SIGHUP within {WAIT:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the node"
    );
    let status = served.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        served.log_text()
    );
}
