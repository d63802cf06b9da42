//! `passerelle peer test AGENCY` (PRODUCT.md section 6): every step passes against a good
//! partner, and the failing step is named for a wrong CA in the trust file, a partner
//! certificate without the name dialled, an unreachable address, and a partner that does not
//! list this node as a peer.
//!
//! Nodes are made by `init` and federated with the CLI's own trust and peer code; the
//! diagnosis runs in-process (for its structured result) and as the real binary.

mod common;

use std::time::Duration;

use common::*;
use passerelle::cli::peertest::{diagnose, Diagnosis, Step};
use passerelle_pki::issue_cert_with_sans;
use rcgen::SanType;
use time::OffsetDateTime;

const ANPE: &str = "tg.anpe";
const VDAB: &str = "be.vdab";
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

async fn run_diagnosis(from: &TestNode, to: &str) -> Diagnosis {
    diagnose(&from.config(), &to.parse().unwrap(), STEP_TIMEOUT)
        .await
        .expect("diagnosis runs")
}

async fn peer_test_bin(from: &TestNode, to: &str) -> Run {
    let config = from.init.config.clone();
    let to = to.to_owned();
    tokio::task::spawn_blocking(move || {
        run_bin(
            [
                "peer".as_ref(),
                "test".as_ref(),
                to.as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ] as [&std::ffi::OsStr; 5],
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap()
}

/// The step that failed, and its words.
fn failure(d: &Diagnosis) -> (Step, String) {
    let f = d
        .failed()
        .unwrap_or_else(|| panic!("no step failed: {d:#?}"));
    // every step before the failure passed, none after it ran
    assert_eq!(d.steps.len(), f.step.number(), "{d:#?}");
    assert!(d.steps[..d.steps.len() - 1].iter().all(|s| s.ok), "{d:#?}");
    (f.step, f.detail.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_passes_for_a_good_partner() {
    let anpe = PendingNode::init(ANPE).await;
    let vdab = PendingNode::init(VDAB).await;
    federate_pair(
        &anpe.node,
        &PeerEntry::pull(),
        &vdab.node,
        &PeerEntry::serve(),
    );
    let vdab = vdab.start().await;
    let anpe = anpe.start().await;

    let d = run_diagnosis(&anpe, VDAB).await;
    assert!(d.is_ok(), "{d:#?}");
    assert_eq!(
        d.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        Step::ALL.to_vec()
    );
    let detail = |s: Step| d.steps[s.number() - 1].detail.clone();
    assert!(
        detail(Step::Certificate).contains("urn:passerelle:be.vdab:node:node"),
        "{d:#?}"
    );
    assert!(detail(Step::Authorisation).contains("be.vdab"), "{d:#?}");
    // the node answers with a Date header, so the clocks were compared
    assert!(detail(Step::Clock).contains("clock"), "{d:#?}");
    assert!(!detail(Step::Clock).contains("no Date header"), "{d:#?}");

    let run = peer_test_bin(&anpe, VDAB).await;
    assert!(run.ok(), "{run:#?}");
    assert!(run.stdout.contains("all 7 steps passed"), "{run:#?}");
    for s in Step::ALL {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{}. {}", s.number(), s.label()))
                    && l.contains(" OK ")),
            "{s:?}: {run:#?}"
        );
    }
    drop(vdab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_in_the_trust_file_fails_the_certificate_step() {
    let anpe = PendingNode::init(ANPE).await;
    let vdab = PendingNode::init(VDAB).await;
    federate_pair(
        &anpe.node,
        &PeerEntry::pull(),
        &vdab.node,
        &PeerEntry::serve(),
    );
    // ANPE's entry for be.vdab now holds another CA (a stale or mixed-up trust entry)
    let impostor = PendingNode::init(VDAB).await;
    trust_partner(&anpe.node, &impostor.node);
    let _vdab = vdab.start().await;
    let anpe = anpe.start().await;

    let d = run_diagnosis(&anpe, VDAB).await;
    let (step, detail) = failure(&d);
    assert_eq!(step, Step::Certificate, "{d:#?}");
    assert!(
        detail.contains("not issued by the CA the trust file holds for be.vdab"),
        "{detail}"
    );

    let run = peer_test_bin(&anpe, VDAB).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout
            .contains("failed at step 4 (certificate chain and san)"),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_the_dialled_name_fails_the_certificate_step() {
    let anpe = PendingNode::init(ANPE).await;
    let vdab = PendingNode::init(VDAB).await;
    federate_pair(
        &anpe.node,
        &PeerEntry::pull(),
        &vdab.node,
        &PeerEntry::serve(),
    );
    // VDAB serves a certificate from its own CA, with its identity, but only for a DNS name
    // the endpoint (127.0.0.1) does not use
    let now = OffsetDateTime::now_utc();
    let wrong = issue_cert_with_sans(
        &vdab.node.ca(),
        vec![
            SanType::URI("urn:passerelle:be.vdab:node:node".try_into().unwrap()),
            SanType::DnsName("vdab.elsewhere.example".try_into().unwrap()),
        ],
        true,
        now - time::Duration::hours(1),
        now + time::Duration::days(5),
    )
    .unwrap();
    std::fs::write(vdab.node.init.dir.join("node.pem"), &wrong.cert_pem).unwrap();
    std::fs::write(vdab.node.init.dir.join("node-key.pem"), &wrong.key_pem).unwrap();
    let _vdab = vdab.start().await;
    let anpe = anpe.start().await;

    let d = run_diagnosis(&anpe, VDAB).await;
    let (step, detail) = failure(&d);
    assert_eq!(step, Step::Certificate, "{d:#?}");
    assert!(detail.contains("not valid for 127.0.0.1"), "{detail}");
    assert!(detail.contains("vdab.elsewhere.example"), "{detail}");

    let run = peer_test_bin(&anpe, VDAB).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("4. certificate chain and san") && l.contains("FAIL")),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_address_fails_the_tcp_step() {
    let anpe = PendingNode::init(ANPE).await;
    let vdab = PendingNode::init(VDAB).await;
    trust_partner(&anpe.node, &vdab.node);
    // nothing listens there: the partner's port is closed
    let port = free_port();
    passerelle::cli::federate::peer_add(&passerelle::cli::federate::PeerAddArgs {
        config: passerelle::cli::federate::ConfigArg {
            config: anpe.node.init.config.clone(),
        },
        agency: VDAB.parse().unwrap(),
        endpoint: Some(format!("https://127.0.0.1:{port}")),
        share: Vec::new(),
        relay: false,
        international: None,
        country: Vec::new(),
    })
    .unwrap();
    let anpe = anpe.start().await;

    let d = run_diagnosis(&anpe, VDAB).await;
    let (step, detail) = failure(&d);
    assert_eq!(step, Step::Tcp, "{d:#?}");
    assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");
    assert!(d.steps[0].ok, "address resolution passes: {d:#?}");

    let run = peer_test_bin(&anpe, VDAB).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains("failed at step 2 (tcp connection)"),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_does_not_list_us_fails_the_authorisation_step() {
    let anpe = PendingNode::init(ANPE).await;
    let vdab = PendingNode::init(VDAB).await;
    // trust both ways, but only ANPE lists the other as a peer
    trust_partner(&anpe.node, &vdab.node);
    trust_partner(&vdab.node, &anpe.node);
    add_peer(&anpe.node, &vdab.node, &PeerEntry::pull());
    let _vdab = vdab.start().await;
    let anpe = anpe.start().await;

    let d = run_diagnosis(&anpe, VDAB).await;
    let (step, detail) = failure(&d);
    assert_eq!(step, Step::Authorisation, "{d:#?}");
    assert!(detail.contains("[[peers]]"), "{detail}");
}
