//! Federation between real nodes on loopback (PRODUCT.md sections 3, 4 and 7): convergence of a
//! full mesh, relaying with intact signatures, refusal of records altered by a relay, outbound
//! policy filters, tombstones that stale copies cannot resurrect, a restart in the middle of a
//! large sync, resync after the retention horizon, per-peer states, and expiry.
//!
//! Nodes are federated with the `trust export|add` and `peer add` code of the CLI before they
//! start, as an operator would. Every wait is a bounded poll; nothing asserts on timing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use passerelle::federation::peer::PeerState;
use passerelle::pb::v1 as pb;
use passerelle_model::{Kind, Record, RecordKey, VacancyStatus};
use passerelle_node::Refusal;
use passerelle_store::{Replica, ReplicaOutcome};
use tonic::transport::Channel;

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";
const FT: &str = "fr.francetravail";

/// Bound of every wait for replication on loopback (generous: the machine is shared).
const SYNC: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- helpers

type Vacancies = VacanciesClient<Channel>;

fn key(s: &str) -> RecordKey {
    s.parse().expect("record key")
}

/// A valid open vacancy located in `country`, varied by `i`.
fn vacancy(id: &str, i: usize, country: &str, international: bool) -> pb::Vacancy {
    let mut v = lasting_vacancy(id);
    v.title = format!("Lasser TIG/MIG {i}");
    v.positions = 1 + (i % 4) as u32;
    v.open_to_international = international;
    if country != "BE" {
        v.location = Some(pb::Location {
            country: country.into(),
            subdivision: String::new(),
            nuts: String::new(),
            locality: format!("Ville {i}"),
        });
    }
    v
}

fn shortage(id: &str, i: usize, country: &str) -> pb::Shortage {
    let mut s = full_shortage(id);
    s.national_code = format!("K-{i}");
    s.country = country.into();
    if country != "BE" {
        s.subdivision = String::new();
    }
    s
}

fn supply(id: &str, i: usize, country: &str) -> pb::SupplyCell {
    let mut c = full_supply(id);
    c.registered_jobseekers = 100 + i as u64;
    c.country = country.into();
    if country != "TG" {
        c.subdivision = String::new();
    }
    c
}

async fn put_vacancy(c: &mut Vacancies, v: pb::Vacancy) -> u64 {
    let id = v.id.clone();
    let r = c
        .put(pb::PutVacancyRequest {
            vacancy: Some(v),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put vacancy {id}: {s:?}"))
        .into_inner();
    assert!(r.changed, "put of {id} changed nothing");
    r.revision
}

async fn put_shortage(node: &TestNode, s: pb::Shortage) {
    let id = s.id.clone();
    node.shortages("publisher")
        .await
        .put(pb::PutShortageRequest {
            shortage: Some(s),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|e| panic!("put shortage {id}: {e:?}"));
}

async fn put_supply(node: &TestNode, c: pb::SupplyCell) {
    let id = c.id.clone();
    node.supply("publisher")
        .await
        .put(pb::PutSupplyRequest {
            cell: Some(c),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|e| panic!("put supply {id}: {e:?}"));
}

async fn withdraw(c: &mut Vacancies, id: &str) -> u64 {
    let r = c
        .withdraw(pb::WithdrawVacancyRequest {
            id: id.into(),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("withdraw {id}: {s:?}"))
        .into_inner();
    assert!(r.changed, "withdraw of {id} changed nothing");
    r.revision
}

/// Publishes 30 records of every kind (15 vacancies of which 3 updated and 2 withdrawn,
/// 8 shortage lines, 7 supply cells) with the node's publisher; returns how many records.
async fn publish_mix(node: &TestNode) -> usize {
    let mut vac = node.vacancies("publisher").await;
    let countries = ["BE", "FR", "TG"];
    for i in 0..15 {
        put_vacancy(
            &mut vac,
            vacancy(&format!("V-{i:03}"), i, countries[i % 3], i % 2 == 0),
        )
        .await;
    }
    for i in 0..3 {
        let mut v = vacancy(&format!("V-{i:03}"), i, countries[i % 3], i % 2 == 0);
        v.title = format!("Lasser TIG/MIG {i} (herzien)");
        assert_eq!(put_vacancy(&mut vac, v).await, 2);
    }
    for i in 13..15 {
        withdraw(&mut vac, &format!("V-{i:03}")).await;
    }
    for i in 0..8 {
        put_shortage(node, shortage(&format!("S-{i:03}"), i, countries[i % 3])).await;
    }
    for i in 0..7 {
        put_supply(node, supply(&format!("C-{i:03}"), i, countries[i % 3])).await;
    }
    30
}

/// Each node's own record-signing public key, by agency.
fn signing_keys(nodes: &[&TestNode]) -> BTreeMap<String, [u8; 32]> {
    nodes
        .iter()
        .map(|n| (n.agency().to_string(), n.node().signing_public_key()))
        .collect()
}

fn vacancy_status(node: &TestNode, k: &RecordKey) -> Option<(u64, VacancyStatus)> {
    match node.node().get(k) {
        Ok(Record::Vacancy(v)) => Some((v.revision, v.status)),
        Ok(other) => panic!("{k} is not a vacancy: {other:?}"),
        Err(passerelle_node::NodeError::NotFound(_)) => None,
        Err(e) => panic!("get {k}: {e}"),
    }
}

/// Waits until `node` holds exactly the versions `origin` holds of its own records.
async fn wait_same_records(what: &str, node: &TestNode, origin: &TestNode) {
    let a = origin.agency().to_string();
    wait_until_ok(what, SYNC, || {
        let want = records_of_origin(origin, &a);
        let got = records_of_origin(node, &a);
        if want == got {
            Ok(())
        } else {
            let differ = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).count();
            Err(format!(
                "{} holds {} of {a}'s records, origin {}; {differ} missing or different",
                node.agency(),
                got.len(),
                want.len()
            ))
        }
    })
    .await;
}

fn cursor(node: &TestNode, peer: &str) -> u64 {
    node.node()
        .store()
        .cursor(peer)
        .expect("cursor")
        .unwrap_or(0)
}

/// Waits until `node` has pulled everything `source` logged so far.
async fn wait_caught_up(what: &str, node: &TestNode, source: &TestNode) {
    let head = source.head_seq();
    let peer = source.agency().to_string();
    wait_until_ok(what, SYNC, || {
        let c = cursor(node, &peer);
        if c >= head {
            Ok(())
        } else {
            Err(format!(
                "{} cursor for {peer} at {c}, head {head}",
                node.agency()
            ))
        }
    })
    .await;
}

// ---------------------------------------------------------------- 1. full mesh

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fully_meshed_converge_with_verified_signatures() {
    let pending = [
        PendingNode::init(VDAB).await,
        PendingNode::init(ANPE).await,
        PendingNode::init(FT).await,
    ];
    full_mesh(&[&pending[0].node, &pending[1].node, &pending[2].node]);
    let mut nodes = Vec::new();
    for p in pending {
        nodes.push(p.start().await);
    }
    let mut total = 0;
    for n in &nodes {
        total += publish_mix(n).await;
    }
    wait_until_ok("three digests equal", SYNC, || {
        let d: Vec<_> = nodes.iter().map(state_digest).collect();
        if d.iter().all(|x| x.records == total as u64 && *x == d[0]) {
            Ok(())
        } else {
            Err(format!(
                "{:?}",
                d.iter()
                    .map(|x| (x.records, x.to_string()))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await;
    let keys = signing_keys(&nodes.iter().collect::<Vec<_>>());
    for n in &nodes {
        let report = assert_store_consistent(n);
        assert_eq!(report.records, total as u64);
        assert_eq!(report.log_entries, total as u64, "one log entry per record");
        assert_eq!(assert_signatures_verify(n, &keys), total);
        for origin in [VDAB, ANPE, FT] {
            let held = records_of_origin(n, origin);
            assert_eq!(
                held.len(),
                30,
                "{} holds {} of {origin}'s",
                n.agency(),
                held.len()
            );
            // the updated and withdrawn versions arrived, not the first ones
            assert_eq!(held[&format!("{origin}/vacancy/V-000")].0, 2);
            assert_eq!(
                vacancy_status(n, &key(&format!("{origin}/vacancy/V-014"))),
                Some((2, VacancyStatus::Withdrawn))
            );
        }
        // nothing was refused and nothing own came back applied
        assert!(
            n.node().counters.refused().is_empty(),
            "{:?}",
            n.node().counters.refused()
        );
    }
}

// ---------------------------------------------------------------- 2. relay chain

/// A (be.vdab) → B (fr.francetravail) → C (tg.anpe): B pulls from A, C pulls only from B,
/// with `relay` on B's entry for C as given; C trusts A without peering with it.
async fn relay_chain(relay: bool) -> (TestNode, TestNode, TestNode) {
    let (a, b, c) = (
        PendingNode::init(VDAB).await,
        PendingNode::init(FT).await,
        PendingNode::init(ANPE).await,
    );
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let b_for_c = PeerEntry {
        relay,
        ..PeerEntry::serve()
    };
    federate_pair(&b.node, &b_for_c, &c.node, &PeerEntry::pull());
    trust_partner(&c.node, &a.node);
    assert!(
        !c.node
            .config()
            .peers
            .iter()
            .any(|p| p.agency.as_str() == VDAB),
        "C must not peer with A"
    );
    (a.start().await, b.start().await, c.start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_records_reach_a_non_peer_with_their_signatures_intact() {
    let (a, b, c) = relay_chain(true).await;
    publish_mix(&a).await;
    let mut bv = b.vacancies("publisher").await;
    put_vacancy(&mut bv, vacancy("FT-1", 1, "FR", true)).await;
    wait_same_records("C holds A's records through B", &c, &a).await;
    wait_same_records("C holds B's records", &c, &b).await;
    assert!(c.peer_status(VDAB).is_none(), "C has no pull loop for A");
    let keys = signing_keys(&[&a, &b, &c]);
    assert_eq!(assert_signatures_verify(&c, &keys), 31);
    assert_eq!(state_digest(&b), state_digest(&c));
    assert_store_consistent(&c);
    assert!(
        c.node().counters.refused().is_empty(),
        "{:?}",
        c.node().counters.refused()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_relay_a_partner_gets_none_of_the_third_party_records() {
    let (a, b, c) = relay_chain(false).await;
    publish_mix(&a).await;
    let mut bv = b.vacancies("publisher").await;
    put_vacancy(&mut bv, vacancy("FT-1", 1, "FR", true)).await;
    wait_same_records("B holds A's records", &b, &a).await;
    // C has pulled B's whole log, A's records included in it
    wait_caught_up("C pulled all of B's log", &c, &b).await;
    wait_same_records("C holds B's own records", &c, &b).await;
    assert_eq!(
        records_of_origin(&c, VDAB).len(),
        0,
        "A's records relayed though relay=false"
    );
    assert_eq!(records_of_origin(&b, VDAB).len(), 30);
}

// ---------------------------------------------------------------- 3. altered by a relay

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_altered_by_a_relay_is_refused_and_sync_goes_on() {
    let (a, b, c) = relay_chain(true).await;
    let mut av = a.vacancies("publisher").await;
    for i in 0..10 {
        put_vacancy(&mut av, vacancy(&format!("V-{i:03}"), i, "BE", true)).await;
    }
    wait_same_records("C holds A's genuine records", &c, &a).await;
    let target = key("be.vdab/vacancy/V-003");
    let genuine = a
        .node()
        .store()
        .get(&target)
        .unwrap()
        .expect("genuine on A");

    // B is compromised: it stores an altered copy under a higher revision, keeping A's seal
    let on_b = b.node().store().get(&target).unwrap().expect("copy on B");
    assert_eq!(on_b.seal, genuine.seal);
    let Record::Vacancy(mut altered) = passerelle_node::decode(&on_b).unwrap() else {
        unreachable!()
    };
    altered.title = "Forged: send your passport to this address".into();
    altered.positions = 99;
    let forged = Replica {
        key: target.clone(),
        revision: on_b.revision + 1,
        updated_at_micros: on_b.updated_at_micros + 1,
        content: passerelle_model::codec::encode_content(&Record::Vacancy(altered)),
        seal: on_b.seal.clone(),
    };
    let outcome = b.node().store().apply_replica(forged).unwrap();
    assert!(
        matches!(outcome, ReplicaOutcome::Applied { .. }),
        "{outcome:?}"
    );
    // stored straight into the store: wake B's Pull streams with a change B commits itself
    let mut bv = b.vacancies("publisher").await;
    put_vacancy(&mut bv, vacancy("FT-1", 1, "FR", true)).await;

    wait_until_ok("C refuses the altered copy", SYNC, || {
        match c.node().counters.refused().get(&Refusal::BadSignature) {
            Some(n) if *n >= 1 => Ok(()),
            _ => Err(format!("refused so far: {:?}", c.node().counters.refused())),
        }
    })
    .await;
    let on_c = c
        .node()
        .store()
        .get(&target)
        .unwrap()
        .expect("C keeps its copy");
    assert_eq!(
        (on_c.revision, &on_c.content, &on_c.seal),
        (genuine.revision, &genuine.content, &genuine.seal),
        "C stored the altered version"
    );

    // C keeps syncing: A's later changes and B's own records still arrive
    for i in 10..15 {
        put_vacancy(&mut av, vacancy(&format!("V-{i:03}"), i, "BE", true)).await;
    }
    wait_same_records("C holds A's later records", &c, &a).await;
    wait_same_records("C holds B's records", &c, &b).await;
    let st = c.peer_status(FT).expect("C pulls from B");
    assert!(st.refused >= 1, "{st:?}");
    assert_ne!(st.state, PeerState::Failing, "{st:?}");
    let keys = signing_keys(&[&a, &b, &c]);
    assert_eq!(assert_signatures_verify(&c, &keys), 16);
    assert_store_consistent(&c);
    let refused = c.node().counters.refused();
    assert_eq!(
        refused.keys().copied().collect::<Vec<_>>(),
        vec![Refusal::BadSignature],
        "{refused:?}"
    );
}

// ---------------------------------------------------------------- 4. outbound policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_policy_filters_are_enforced_by_the_serving_node() {
    let (a, b, c) = (
        PendingNode::init(VDAB).await,
        PendingNode::init(ANPE).await,
        PendingNode::init(FT).await,
    );
    // B: only vacancies open to international candidates located in BE
    let for_b = PeerEntry {
        share: vec![Kind::Vacancy],
        international: Some(true),
        country: vec!["BE".into()],
        ..PeerEntry::serve()
    };
    // C: only shortages and supply, located in FR or TG
    let for_c = PeerEntry {
        share: vec![Kind::Shortage, Kind::Supply],
        country: vec!["FR".into(), "TG".into()],
        ..PeerEntry::serve()
    };
    federate_pair(&a.node, &for_b, &b.node, &PeerEntry::pull());
    federate_pair(&a.node, &for_c, &c.node, &PeerEntry::pull());
    let (a, b, c) = (a.start().await, b.start().await, c.start().await);

    publish_mix(&a).await;

    wait_caught_up("B pulled A's whole log", &b, &a).await;
    wait_caught_up("C pulled A's whole log", &c, &a).await;

    let all = records_of_origin(&a, VDAB);
    let mut want_b = BTreeSet::new();
    let mut want_c = BTreeSet::new();
    for k in all.keys() {
        let rec = a.node().get(&key(k)).unwrap();
        match &rec {
            // tombstones pass content filters (a vacancy that left the filter must still close
            // at the peer), so B also gets A's withdrawn vacancies
            Record::Vacancy(v)
                if v.status.is_tombstone()
                    || (v.open_to_international && v.location.country == "BE") =>
            {
                want_b.insert(k.clone());
            }
            Record::Shortage(s) if ["FR", "TG"].contains(&s.country.as_str()) => {
                want_c.insert(k.clone());
            }
            Record::Supply(s) if ["FR", "TG"].contains(&s.country.as_str()) => {
                want_c.insert(k.clone());
            }
            _ => {}
        }
    }
    assert!(
        want_b.len() >= 2 && want_c.len() >= 4,
        "{want_b:?} {want_c:?}"
    );
    let got_b = records_of_origin(&b, VDAB);
    let got_c = records_of_origin(&c, VDAB);
    assert_eq!(
        got_b.keys().cloned().collect::<BTreeSet<_>>(),
        want_b,
        "B's records of A"
    );
    assert_eq!(
        got_c.keys().cloned().collect::<BTreeSet<_>>(),
        want_c,
        "C's records of A"
    );
    for (k, v) in got_b.iter().chain(got_c.iter()) {
        assert_eq!(Some(v), all.get(k), "{k} differs from the origin's version");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_reaches_a_peer_that_got_the_vacancy_even_when_it_no_longer_matches_the_filter(
) {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    let for_b = PeerEntry {
        international: Some(true),
        ..PeerEntry::serve()
    };
    federate_pair(&a.node, &for_b, &b.node, &PeerEntry::pull());
    let (a, b) = (a.start().await, b.start().await);
    let mut av = a.vacancies("publisher").await;
    put_vacancy(&mut av, vacancy("V-900", 900, "BE", true)).await;
    let v = key("be.vdab/vacancy/V-900");
    wait_until_ok("B holds V-900", SYNC, || match vacancy_status(&b, &v) {
        Some((1, VacancyStatus::Open)) => Ok(()),
        other => Err(format!("B holds {other:?}")),
    })
    .await;
    // the employer no longer recruits abroad, then the post is filled elsewhere
    put_vacancy(&mut av, vacancy("V-900", 900, "BE", false)).await;
    assert_eq!(withdraw(&mut av, "V-900").await, 3);
    wait_caught_up("B pulled A's whole log", &b, &a).await;
    let held = vacancy_status(&b, &v);
    assert!(
        !matches!(held, Some((_, VacancyStatus::Open))),
        "B still shows be.vdab's withdrawn V-900 as open: {held:?}"
    );
}

// ---------------------------------------------------------------- 5. withdrawal

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_propagates_and_a_stale_copy_does_not_resurrect_it() {
    // A → B → C with relay, and C also pulls from A directly
    let (a, b, c) = (
        PendingNode::init(VDAB).await,
        PendingNode::init(FT).await,
        PendingNode::init(ANPE).await,
    );
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let b_for_c = PeerEntry {
        relay: true,
        ..PeerEntry::serve()
    };
    federate_pair(&b.node, &b_for_c, &c.node, &PeerEntry::pull());
    federate_pair(&a.node, &PeerEntry::serve(), &c.node, &PeerEntry::pull());
    let (a, b, mut c) = (a.start().await, b.start().await, c.start().await);

    let mut av = a.vacancies("publisher").await;
    put_vacancy(&mut av, vacancy("V-1", 1, "BE", true)).await;
    put_vacancy(&mut av, vacancy("V-2", 2, "BE", true)).await;
    let v = key("be.vdab/vacancy/V-1");
    wait_same_records("B holds V rev 1", &b, &a).await;
    wait_same_records("C holds V rev 1", &c, &a).await;
    let stale = c.node().store().get(&v).unwrap().expect("C's rev 1");
    assert_eq!(stale.revision, 1);

    // C is partitioned away while A withdraws V
    c.stop().await;
    assert_eq!(withdraw(&mut av, "V-1").await, 2);
    wait_until_ok("B holds the tombstone", SYNC, || {
        match vacancy_status(&b, &v) {
            Some((2, VacancyStatus::Withdrawn)) => Ok(()),
            other => Err(format!("B holds {other:?}")),
        }
    })
    .await;
    c.start_again().await;
    wait_until_ok("C holds the tombstone", SYNC, || {
        match vacancy_status(&c, &v) {
            Some((2, VacancyStatus::Withdrawn)) => Ok(()),
            other => Err(format!("C holds {other:?}")),
        }
    })
    .await;

    // replaying the old version, through the store or as a correctly signed delivery, is ignored
    for n in [&b, &c] {
        let outcome = n
            .node()
            .store()
            .apply_replica(Replica::from(stale.clone()))
            .unwrap();
        assert_eq!(
            outcome,
            ReplicaOutcome::Ignored { stored_revision: 2 },
            "{}",
            n.agency()
        );
        let signed = n.node().signed(&stale).unwrap();
        let report = n
            .node()
            .apply_from_peer(&"zz.replay".parse().unwrap(), &[], vec![signed], 0)
            .unwrap();
        assert_eq!(
            (report.applied, report.ignored, report.refused_total()),
            (0, 1, 0),
            "{}: {report:?}",
            n.agency()
        );
    }
    for n in [&a, &b, &c] {
        assert_eq!(
            vacancy_status(n, &v),
            Some((2, VacancyStatus::Withdrawn)),
            "{}",
            n.agency()
        );
        assert_store_consistent(n);
    }
    // B and C still converge with A after the replays, and stay there
    wait_same_records("C equals A", &c, &a).await;
    assert_eq!(state_digest(&a), state_digest(&b));
    assert_eq!(state_digest(&a), state_digest(&c));
}

// ---------------------------------------------------------------- 6. restart mid-stream

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_middle_of_a_large_sync_loses_and_duplicates_nothing() {
    const N: usize = 4000;
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    // small batches, so that the sync lasts many batches and the restart lands inside it
    a.node.configure_sync(&[("batch_records", 40)]);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let a = a.start().await;

    let items: Vec<_> = (0..N)
        .map(|i| pb::ImportVacancyRequest {
            vacancy: Some(vacancy(&format!("V-{i:05}"), i, "BE", i % 2 == 0)),
        })
        .collect();
    let summary = a
        .vacancies("publisher")
        .await
        .import(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.written, summary.rejected),
        (N as u64, 0),
        "{summary:?}"
    );
    // a nightly re-import where every third vacancy changed: the log keeps only the newest
    let changed: Vec<_> = (0..N)
        .step_by(3)
        .map(|i| {
            let mut v = vacancy(&format!("V-{i:05}"), i, "BE", i % 2 == 0);
            v.title = format!("Lasser TIG/MIG {i} (herzien)");
            pb::ImportVacancyRequest { vacancy: Some(v) }
        })
        .collect();
    let updated = changed.len() as u64;
    let summary = a
        .vacancies("publisher")
        .await
        .import(tokio_stream::iter(changed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.written, updated, "{summary:?}");

    let mut b = b.start().await;
    let started = Instant::now();
    wait_until_ok("B applied a quarter of A's records", SYNC, || {
        let n = b.node().store().count(Kind::Vacancy).unwrap() as usize;
        if n >= N / 4 {
            Ok(())
        } else {
            Err(format!("{n} records"))
        }
    })
    .await;
    let first = b.node_arc();
    b.stop().await;
    // an apply still running when the loop stopped holds the node: wait for every holder
    wait_until_ok("B's old node released", SYNC, || {
        match Arc::strong_count(&first) {
            1 => Ok(()),
            n => Err(format!("{n} holders")),
        }
    })
    .await;
    let held_at_stop = first.store().count(Kind::Vacancy).unwrap() as usize;
    let applied_before = first.counters.applied.load(Ordering::Relaxed);
    let cursor_at_stop = first.store().cursor(VDAB).unwrap().unwrap_or(0);
    drop(first);
    assert!(
        held_at_stop < N,
        "B finished syncing ({held_at_stop} records) before the restart: the test did not restart mid-stream"
    );
    assert_eq!(
        applied_before as usize, held_at_stop,
        "applied before the restart"
    );

    b.start_again().await;
    wait_until_ok("B converges with A after the restart", SYNC * 3, || {
        let (da, db) = (state_digest(&a), state_digest(&b));
        if da == db {
            Ok(())
        } else {
            Err(format!("A {} records, B {}", da.records, db.records))
        }
    })
    .await;
    let applied_after = b.node().counters.applied.load(Ordering::Relaxed);
    let ignored_after = b.node().counters.ignored.load(Ordering::Relaxed);
    println!(
        "restart after {held_at_stop}/{N} records (cursor {cursor_at_stop}); applied {applied_before} + {applied_after}, \
         ignored {ignored_after} after the restart; converged {:?} after B started",
        started.elapsed()
    );
    assert_eq!(
        applied_before + applied_after,
        N as u64,
        "each version applied exactly once over the restart"
    );
    let report = assert_store_consistent(&b);
    assert_eq!(
        (report.records, report.log_entries),
        (N as u64, N as u64),
        "{report}"
    );
    let want = records_of_origin(&a, VDAB);
    let got = records_of_origin(&b, VDAB);
    assert_eq!(
        got.values().filter(|v| v.0 == 2).count() as u64,
        updated,
        "the re-imported versions"
    );
    assert!(
        want.iter()
            .all(|(k, v)| got.get(k).map(|g| g.0) == Some(v.0)),
        "a revision differs"
    );
    assert_eq!(
        b.head_seq(),
        N as u64,
        "B logged more changes than there are records"
    );
    wait_until_ok("B live with lag 0", SYNC, || match b.peer_status(VDAB) {
        Some(s) if s.state == PeerState::Live && s.lag() == 0 => Ok(()),
        s => Err(format!("{s:?}")),
    })
    .await;
}

// ---------------------------------------------------------------- 7. retention horizon

/// A publishes 20 vacancies and withdraws 5; B syncs them and stops; A then withdraws 5 more,
/// publishes 5 new ones and purges every tombstone (horizon 0 days). Returns A, the stopped B,
/// B's cursor when it stopped, and the keys withdrawn while B was away.
async fn purged_while_away() -> (TestNode, TestNode, u64, Vec<RecordKey>) {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let (a, mut b) = (a.start().await, b.start().await);
    let mut av = a.vacancies("publisher").await;
    for i in 0..20 {
        put_vacancy(&mut av, vacancy(&format!("V-{i:03}"), i, "BE", true)).await;
    }
    for i in 0..5 {
        withdraw(&mut av, &format!("V-{i:03}")).await;
    }
    wait_same_records("B holds A's records", &b, &a).await;
    wait_caught_up("B's cursor at A's head", &b, &a).await;
    let old_cursor = cursor(&b, VDAB);
    b.stop().await;

    let mut away = Vec::new();
    for i in 5..10 {
        withdraw(&mut av, &format!("V-{i:03}")).await;
        away.push(key(&format!("be.vdab/vacancy/V-{i:03}")));
    }
    for i in 20..25 {
        put_vacancy(&mut av, vacancy(&format!("V-{i:03}"), i, "BE", true)).await;
    }
    let purged = a
        .node()
        .purge_tombstones(0, passerelle_node::now_micros() + 1)
        .unwrap();
    assert_eq!(purged, 10);
    let through = a.node().store().purged_through_seq();
    assert!(
        through > old_cursor,
        "purged through {through}, B's cursor {old_cursor}"
    );
    assert_eq!(records_of_origin(&a, VDAB).len(), 15);
    (a, b, old_cursor, away)
}

/// Pull on `source` authenticated as `puller`'s node.
async fn pull_as(
    puller: &TestNode,
    source: &TestNode,
    since: u64,
) -> Result<pb::PullBatch, tonic::Status> {
    let dir = &puller.init.dir;
    let pem = read_pem(&dir.join("node.pem"), &dir.join("node-key.pem"));
    let channel = connect_raw(source, Some(&pem))
        .await
        .expect("connect as node");
    let mut client = pb::federation_client::FederationClient::new(channel);
    let mut stream = client
        .pull(pb::PullRequest {
            since,
            follow: false,
            max_records: 0,
            max_bytes: 0,
        })
        .await?
        .into_inner();
    Ok(stream.message().await?.expect("one batch"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_horizon_resyncs_from_a_snapshot() {
    let (a, mut b, old_cursor, _away) = purged_while_away().await;

    let refused = pull_as(&b, &a, old_cursor)
        .await
        .expect_err("pull behind the horizon");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let snapshot = pull_as(&b, &a, 0).await.expect("pull from 0");
    assert_eq!(
        snapshot.records.len(),
        15,
        "the snapshot is A's current state"
    );

    b.start_again().await;
    wait_until_ok("B live again at A's head", SYNC, || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Live && s.lag() == 0 && s.cursor >= a.head_seq() => {
                Ok(())
            }
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    // every record A holds, B holds in the same version
    let want = records_of_origin(&a, VDAB);
    let got = records_of_origin(&b, VDAB);
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k} on B");
    }
    // a snapshot, not a pull since the old cursor: the 10 open records B held came again
    let ignored = b.node().counters.ignored.load(Ordering::Relaxed);
    assert!(
        ignored >= 10,
        "B ignored {ignored} re-delivered records: no resync from 0"
    );
    assert_eq!(
        b.node().counters.applied.load(Ordering::Relaxed),
        5,
        "the 5 new vacancies"
    );
    assert_store_consistent(&b);
    let keys = signing_keys(&[&a, &b]);
    assert_signatures_verify(&b, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_after_the_horizon_leaves_no_vacancy_open_that_its_origin_withdrew() {
    let (a, mut b, _old_cursor, away) = purged_while_away().await;
    b.start_again().await;
    wait_until_ok("B live again at A's head", SYNC, || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Live && s.lag() == 0 && s.cursor >= a.head_seq() => {
                Ok(())
            }
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    let ghosts: Vec<String> = away
        .iter()
        .filter(|k| matches!(vacancy_status(&b, k), Some((_, VacancyStatus::Open))))
        .map(|k| k.to_string())
        .collect();
    assert!(
        ghosts.is_empty(),
        "B still shows as OPEN vacancies that be.vdab withdrew: {ghosts:?}"
    );
    // what a peer holds of an origin after a snapshot resync is what the origin holds (open)
    let open_on_b: BTreeSet<String> = records_of_origin(&b, VDAB)
        .keys()
        .filter(|k| matches!(vacancy_status(&b, &key(k)), Some((_, VacancyStatus::Open))))
        .cloned()
        .collect();
    let on_a: BTreeSet<String> = records_of_origin(&a, VDAB).keys().cloned().collect();
    assert_eq!(open_on_b, on_a);
}

// ---------------------------------------------------------------- 8. peer states

/// Waits until `node`'s pull from `peer` is backing off or failing with an error, and returns it.
async fn wait_unreachable(node: &TestNode, peer: &str) -> passerelle::federation::peer::PeerStatus {
    wait_until_ok(
        "backing off or failing, with the error",
        SYNC,
        || match node.peer_status(peer) {
            Some(s)
                if matches!(s.state, PeerState::BackingOff | PeerState::Failing)
                    && s.last_error.as_deref().is_some_and(|e| !e.is_empty()) =>
            {
                Ok(())
            }
            s => Err(format!("{s:?}")),
        },
    )
    .await;
    node.peer_status(peer).unwrap()
}

/// Publishes one vacancy on `a` and waits until `b` is live on `a` with lag 0 and holds it.
async fn wait_live_again(a: &TestNode, b: &TestNode, id: &str) {
    let mut av = a.vacancies("publisher").await;
    put_vacancy(&mut av, vacancy(id, 2, "BE", true)).await;
    let peer = a.agency().to_string();
    wait_until_ok("live again with lag 0", SYNC, || {
        match b.peer_status(&peer) {
            Some(s) if s.state == PeerState::Live && s.lag() == 0 && s.cursor == a.head_seq() => {
                Ok(())
            }
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    wait_same_records("B holds A's records", b, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_state_shows_an_unreachable_partner_then_returns_to_live() {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    b.node
        .configure_sync(&[("backoff_min_ms", 50), ("backoff_max_secs", 1)]);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    // A's port is closed: B's connections are refused
    let mut a = a.close_port();
    let b = b.start().await;
    let first = wait_unreachable(&b, VDAB).await;
    println!(
        "A unreachable: {} ({:?})",
        first.state.as_str(),
        first.last_error
    );
    // attempts go on, and after several failures in a row the state says so
    wait_until_ok("failing after repeated failures", SYNC, || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Failing && s.last_error.is_some() => Ok(()),
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    assert_eq!(b.peer_status(VDAB).unwrap().last_success, None);

    a.start_again().await;
    wait_live_again(&a, &b, "V-2").await;
    let st = b.peer_status(VDAB).unwrap();
    assert!(st.last_success.is_some() && st.applied == 1, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_state_shows_a_partner_that_stopped_then_returns_to_live() {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    b.node
        .configure_sync(&[("backoff_min_ms", 50), ("backoff_max_secs", 1)]);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let (mut a, b) = (a.start().await, b.start().await);
    let mut av = a.vacancies("publisher").await;
    put_vacancy(&mut av, vacancy("V-1", 1, "BE", true)).await;
    wait_same_records("B holds V-1", &b, &a).await;
    drop(av);

    let core = a.node_arc();
    a.stop().await;
    wait_until_ok(
        "the stopped node released",
        SYNC,
        || match Arc::strong_count(&core) {
            1 => Ok(()),
            n => Err(format!("{n} holders of A's node (open calls still served)")),
        },
    )
    .await;
    drop(core);
    let down = wait_unreachable(&b, VDAB).await;
    println!("A stopped: {} ({:?})", down.state.as_str(), down.last_error);

    a.start_again().await;
    wait_live_again(&a, &b, "V-2").await;
}

// ---------------------------------------------------------------- 9. expiry

/// An open vacancy posted and closed in 2024.
fn past_due(id: &str) -> pb::Vacancy {
    pb::Vacancy {
        posted_on: "2024-01-10".into(),
        closes_on: "2024-02-10".into(),
        ..vacancy(id, 7, "BE", true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_expires_past_due_vacancies_and_the_expiry_propagates() {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());

    // written while A is down, so that the start-up sweep finds it
    let cfg = a.node.config();
    let first = tokio::task::spawn_blocking(move || {
        let node = passerelle_node::Node::open(&cfg).expect("open A's store");
        let (v, violations) = passerelle::convert::vacancy_in(past_due("V-OLD"), "vacancy");
        assert!(violations.is_empty(), "{violations}");
        node.put(Record::Vacancy(v), None)
            .expect("put past-due vacancy")
    })
    .await
    .unwrap();
    assert_eq!(first.revision, 1);

    let (a, b) = (a.start().await, b.start().await);
    let old = key("be.vdab/vacancy/V-OLD");
    wait_until_ok("B holds V-OLD expired", SYNC, || {
        match vacancy_status(&b, &old) {
            Some((2, VacancyStatus::Expired)) => Ok(()),
            other => Err(format!("B holds {other:?}")),
        }
    })
    .await;
    assert_eq!(vacancy_status(&a, &old), Some((2, VacancyStatus::Expired)));

    // published while running: the sweep's next run (here a direct call) expires it
    let mut av = a.vacancies("publisher").await;
    assert_eq!(put_vacancy(&mut av, past_due("V-LATE")).await, 1);
    put_vacancy(&mut av, vacancy("V-OPEN", 8, "BE", true)).await;
    let late = key("be.vdab/vacancy/V-LATE");
    let expired = a
        .node()
        .expire_due(passerelle_model::Date::today())
        .unwrap();
    assert!(expired <= 1, "expired {expired}");
    assert_eq!(vacancy_status(&a, &late), Some((2, VacancyStatus::Expired)));
    assert_eq!(
        a.node()
            .expire_due(passerelle_model::Date::today())
            .unwrap(),
        0,
        "no new revision"
    );
    wait_same_records("B holds A's records", &b, &a).await;
    assert_eq!(vacancy_status(&b, &late), Some((2, VacancyStatus::Expired)));
    assert_eq!(
        vacancy_status(&b, &key("be.vdab/vacancy/V-OPEN")),
        Some((1, VacancyStatus::Open)),
        "a vacancy still open is left alone"
    );
    // the expired version differs from the open one by its status only
    let Ok(Record::Vacancy(v)) = b.node().get(&old) else {
        panic!("V-OLD on B")
    };
    assert_eq!(
        (v.title.as_str(), v.closes_on.as_str()),
        ("Lasser TIG/MIG 7", "2024-02-10")
    );
    let keys = signing_keys(&[&a, &b]);
    assert_signatures_verify(&b, &keys);
}
