//! A snapshot resync (PRODUCT.md section 4) broken before it reaches the origin's head, over real
//! nodes and mutual TLS, the puller reaching the origin through the slow proxy of
//! `passerelle-faultlink` so that the snapshot lasts long enough to be broken in its middle:
//! a link cut resumes the snapshot from its cursor, a restart of the puller starts it over from
//! 0 (the keys it had delivered were in memory only), and either way its end drops the records
//! the origin purged.
//!
//! `PASSERELLE_FLAKY_SEED` sets the link's seed. Every wait is bounded; no assertion is on timing.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use passerelle::federation::peer::PeerState;
use passerelle_faultlink::{FaultLink, LinkConfig};
use passerelle_model::{AgencyId, Kind, Record, VacancyStatus, Violations};

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";
const DEFAULT_SEED: u64 = 0x5eed_f1a4;

fn vdab() -> AgencyId {
    VDAB.parse().unwrap()
}

/// A valid open vacancy of be.vdab, varied by `i`.
fn vacancy(i: usize) -> Record {
    let mut v = lasting_vacancy(&format!("V-{i:06}"));
    v.title = format!("Lasser TIG/MIG {i}");
    v.positions = 1 + (i % 7) as u32;
    let (v, violations) = passerelle::convert::vacancy_in(v, "vacancy");
    assert!(violations.is_empty(), "{violations}");
    Record::Vacancy(v)
}

/// Writes vacancies `from..to` on `node` as its own, 1000 to an atomic batch.
async fn publish(node: &TestNode, from: usize, to: usize) {
    let core = node.node_arc();
    tokio::task::spawn_blocking(move || {
        let mut i = from;
        while i < to {
            let end = (i + 1000).min(to);
            let items = (i..end)
                .map(|k| (vacancy(k), None, Violations::new()))
                .collect();
            for r in core.put_many(items) {
                assert!(r.expect("put").changed);
            }
            i = end;
        }
    })
    .await
    .expect("publish");
}

/// A (be.vdab, serving in batches of 20) and B (tg.anpe, pulling from A through `link`),
/// trusting each other; A runs, B is configured but not started.
async fn through_link(link: LinkConfig) -> (TestNode, PendingNode, FaultLink) {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    a.node.configure_sync(&[("batch_records", 20)]);
    b.node
        .configure_sync(&[("backoff_min_ms", 50), ("backoff_max_secs", 1)]);
    trust_partner(&a.node, &b.node);
    trust_partner(&b.node, &a.node);
    add_peer(&a.node, &b.node, &PeerEntry::serve());
    let proxy = FaultLink::start(a.node.listen_addr(), link)
        .await
        .expect("start the link");
    use passerelle::cli::federate::{ConfigArg, PeerAddArgs};
    passerelle::cli::federate::peer_add(&PeerAddArgs {
        config: ConfigArg {
            config: b.node.init.config.clone(),
        },
        agency: a.node.agency(),
        endpoint: Some(format!("https://{}", proxy.addr())),
        share: Vec::new(),
        relay: false,
        international: None,
        country: Vec::new(),
    })
    .expect("peer add");
    (a.start().await, b, proxy)
}

/// B's pull from A as the test follows it: cursor, A's vacancies held, and B's counters since
/// it was (re)started.
#[derive(Debug, Clone, Copy)]
struct Progress {
    cursor: u64,
    held: u64,
    applied: u64,
    ignored: u64,
}

fn progress(b: &TestNode) -> Progress {
    let store = b.node().store();
    Progress {
        cursor: store.cursor(VDAB).expect("cursor").unwrap_or(0),
        held: store.count_origin(Kind::Vacancy, &vdab()).expect("count"),
        applied: b.node().counters.applied.load(Ordering::Relaxed),
        ignored: b.node().counters.ignored.load(Ordering::Relaxed),
    }
}

/// Waits until B is live with A at `head` or beyond.
async fn wait_live(b: &TestNode, head: u64) {
    wait_until_ok("B caught up with A", Duration::from_secs(90), || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Live && s.cursor >= head => Ok(()),
            s => Err(format!("{s:?}")),
        }
    })
    .await;
}

/// Waits until B's pull is under way with its cursor at `at` or beyond, far from `head`.
async fn wait_cursor(what: &str, b: &TestNode, at: u64, head: u64) -> Progress {
    wait_until_ok(what, Duration::from_secs(90), || {
        let p = progress(b);
        if p.cursor >= at && p.cursor + 300 < head {
            Ok(())
        } else {
            Err(format!("{p:?}, A's head {head}"))
        }
    })
    .await;
    progress(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_resumes_after_a_cut_starts_over_after_a_restart_and_drops_what_the_origin_purged(
) {
    const FIRST: usize = 20;
    const WITHDRAWN: usize = 10;
    const LATER: usize = 3_000;
    let seed = match std::env::var("PASSERELLE_FLAKY_SEED") {
        Ok(v) => v.parse().expect("PASSERELLE_FLAKY_SEED is a number"),
        Err(_) => DEFAULT_SEED,
    };
    println!("link seed {seed:#x} (PASSERELLE_FLAKY_SEED to replay)");
    // slow enough that the snapshot takes several seconds, in batches of 20
    let link = LinkConfig::new()
        .with_rtt(Duration::from_millis(20))
        .with_bandwidth(40_000)
        .with_seed(seed);
    let (a, b, proxy) = through_link(link).await;
    publish(&a, 0, FIRST).await;
    let mut b = b.start().await;
    wait_live(&b, FIRST as u64).await;
    assert!(!b.node().snapshot_pending(&vdab()).unwrap());
    b.stop().await;

    // while B is away, A withdraws vacancies B holds open, publishes more, and purges the
    // tombstones: B's cursor is now behind the horizon and B must resync from a snapshot
    let withdrawn: Vec<String> = (0..WITHDRAWN).map(|i| format!("V-{i:06}")).collect();
    for id in &withdrawn {
        a.node().withdraw(id, None).expect("withdraw");
    }
    publish(&a, FIRST, FIRST + LATER).await;
    let purged = a
        .node()
        .purge_tombstones(0, passerelle_node::now_micros() + 1)
        .expect("purge");
    assert_eq!(purged, WITHDRAWN as u64);
    let head = a.head_seq();
    // what a snapshot delivers again of what B held: the vacancies A did not withdraw
    let kept = (FIRST - WITHDRAWN) as u64;

    // ---- a cut in the middle: the snapshot resumes from its cursor
    b.start_again().await;
    let at_cut = wait_cursor("B's snapshot under way", &b, head / 4, head).await;
    assert!(b.node().snapshot_pending(&vdab()).unwrap(), "{at_cut:?}");
    let before_cut = proxy.stats();
    proxy.cut(Duration::ZERO);
    println!("snapshot cut at {at_cut:?}, A's head {head}");
    let at_stop = wait_cursor(
        "B's snapshot resumed after the cut",
        &b,
        at_cut.cursor + 200,
        head,
    )
    .await;
    assert!(
        proxy.stats().accepted > before_cut.accepted,
        "the snapshot went on over the connection that was cut: {:?}",
        proxy.stats()
    );
    assert_eq!(
        at_stop.ignored, kept,
        "a cut must resume the snapshot, not start it over: only the {kept} records B held \
         before are delivered again ({at_stop:?})"
    );
    assert!(b.node().snapshot_pending(&vdab()).unwrap());

    // ---- a restart in the middle: the keys delivered so far are lost, the snapshot starts over
    b.stop().await;
    println!("B stopped at {at_stop:?}");
    b.start_again().await;
    wait_live(&b, head).await;
    let end = progress(&b);
    println!("B live again: {end:?}");
    assert!(
        end.ignored >= at_stop.held - WITHDRAWN as u64 && end.ignored > kept,
        "after a restart the snapshot starts over from 0, delivering again the {} of A's records \
         B held: {end:?}",
        at_stop.held - WITHDRAWN as u64
    );
    let ghosts: Vec<&String> = withdrawn
        .iter()
        .filter(|id| {
            let k = format!("{VDAB}/vacancy/{id}").parse().unwrap();
            matches!(b.node().get(&k), Ok(Record::Vacancy(v)) if v.status == VacancyStatus::Open)
        })
        .collect();
    assert!(
        ghosts.is_empty(),
        "after a snapshot broken by a cut and a restart, B still shows as OPEN {} vacancies \
         that {VDAB} withdrew and purged: {ghosts:?}",
        ghosts.len()
    );
    assert!(
        !b.node().snapshot_pending(&vdab()).unwrap(),
        "the finished snapshot is still marked"
    );
    let (want, got) = (records_of_origin(&a, VDAB), records_of_origin(&b, VDAB));
    assert!(
        want == got,
        "B holds {} of A's records, A {}",
        got.len(),
        want.len()
    );
    assert_eq!(state_digest(&a), state_digest(&b));
    assert_store_consistent(&b);

    // ---- a restart once it is finished: the pull resumes from the cursor, no new snapshot
    b.stop().await;
    publish(&a, FIRST + LATER, FIRST + LATER + 5).await;
    b.start_again().await;
    wait_live(&b, a.head_seq()).await;
    let p = progress(&b);
    assert_eq!(
        (p.applied, p.ignored),
        (5, 0),
        "a restart after the snapshot ended pulls only what is new"
    );
    assert_eq!(state_digest(&a), state_digest(&b));
    proxy.stop().await;
}
