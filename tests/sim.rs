//! Deterministic simulation of federation sync: the real node core (`Node` on memory
//! engines, real PKI, real signatures) driven by a seeded scheduler that plays the network
//! between nodes, with partitions, latency, several batches in flight, connection resets,
//! crash-restarts, replays and tombstone purges, and checks every sync invariant of
//! PRODUCT.md section 4 on every seed.
//!
//! One seed is one reproducible run: no decision depends on the wall clock or on threads
//! (record timestamps do not, they only travel inside signed bytes). A failure names its
//! seed and the last events; `PASSERELLE_SIM_SEED=<n>` replays that seed alone with its
//! whole history, `PASSERELLE_SIM_SEEDS=<count>` sweeps seeds 1..=count (default 70 per
//! topology), and a summary of each sweep goes to stderr.
//!
//! Why not turmoil: the node core works in blocking calls (sled, `spawn_blocking`), which
//! turmoil cannot schedule deterministically; the gRPC/TLS transport itself is covered by
//! the multi-node tests over real mutual TLS. Here each Pull session is modelled on
//! src/federation/service.rs (one `pull_batch` per turn, the announce of the first
//! caught-up batch, waiting for the head to move) and the peer loop on
//! src/federation/peer.rs (start from the persisted cursor, FAILED_PRECONDITION below the
//! purge horizon resets it to 0, `apply_from_peer` per batch in order, a snapshot (a pull from
//! 0) kept across sessions and finished with `drop_unseen` once caught up, started over after
//! a crash, backoff on errors, an operator's sync from the start).
//!
//! The ignored tests at the end are product bugs the simulation found, each with the seed
//! or the scripted scenario that shows it; they pass once the bug is fixed.

// a test crate's root resolves modules next to itself, so point into tests/sim/
#[path = "sim/pki.rs"]
mod pki;
#[path = "sim/records.rs"]
mod records;
#[path = "sim/rng.rs"]
mod rng;
#[path = "sim/script.rs"]
mod script;
#[path = "sim/world.rs"]
mod world;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use passerelle_model::{Kind, Record, RecordKey, VacancyStatus};
use pki::{Federation, Shape};
use script::{End, Nodes};
use world::{Params, Quirks, Stats, World};

/// Seeds per topology when nothing else is asked for: a seed costs about 0.35 s of CPU in
/// debug, most of it opening nodes (the analytics index), so 3 × 70 seeds fit in well under
/// a minute on two cores.
const DEFAULT_SEEDS: u64 = 70;
/// Steps of workload and faults before the links heal.
const FAULT_STEPS: u64 = 160;
/// Events a failure report shows: the last few in a sweep, all of them when replaying one seed.
fn history_len() -> usize {
    if std::env::var("PASSERELLE_SIM_SEED").is_ok() {
        usize::MAX
    } else {
        60
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// `PASSERELLE_SIM_SEED=n` runs that seed alone; else seeds 1..=`PASSERELLE_SIM_SEEDS`.
fn seeds() -> Vec<u64> {
    match env_u64("PASSERELLE_SIM_SEED") {
        Some(s) => vec![s],
        None => (1..=env_u64("PASSERELLE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs one seed; on a violation (or a panic in the code under test) the error names the
/// seed, how to replay it, and the last events.
fn run_seed(test: &str, fed: &Federation, seed: u64, params: Params) -> Result<Stats, String> {
    let mut world = World::new(fed, seed, params).map_err(|e| format!("seed {seed}: {e}"))?;
    let outcome = catch_unwind(AssertUnwindSafe(|| world.run()));
    let why = match outcome {
        Ok(Ok(stats)) => return Ok(stats),
        Ok(Err(violation)) => violation,
        Err(p) => format!("panicked: {}", panic_text(p.as_ref())),
    };
    let history: Vec<&str> = world.history.iter().map(String::as_str).collect();
    Err(format!(
        "{test}: seed {seed}: {why}\n\
         replay: PASSERELLE_SIM_SEED={seed} cargo test --test sim {test} -- --include-ignored\n\
         last events:\n  {}",
        history.join("\n  ")
    ))
}

fn summary(test: &str, s: &Stats, started: Instant) -> String {
    format!(
        "{test}: {} seeds in {:.1?}: {} steps; writes: {} puts, {} no-ops, {} ABORTED, {} withdrawn, {} expired; \
         faults: {} crashes, {} partitions, {} resets, {} syncs from the start, {} replays, {} purges ({} tombstones), {} FAILED_PRECONDITION resyncs, {} dropped after a snapshot ({} still at their origin); \
         sync: {} sessions, {} batches applied, {} dropped, {} versions applied, {} ignored, {} server loops spinning; \
         quiet after at most {} steps (smallest bound {}, mean {:.1})",
        s.runs,
        started.elapsed(),
        s.steps,
        s.puts,
        s.noops,
        s.mismatches,
        s.withdrawals,
        s.expired,
        s.crashes,
        s.partitions,
        s.resets,
        s.from_start,
        s.replays,
        s.purges,
        s.purged,
        s.resyncs,
        s.dropped_unseen,
        s.dropped_live,
        s.sessions,
        s.batches,
        s.dropped,
        s.applied,
        s.ignored,
        s.spins,
        s.heal_steps_max,
        s.heal_bound_min,
        s.heal_steps as f64 / s.runs.max(1) as f64,
    )
}

/// Runs every seed on one topology and fails on the first violation.
fn sweep(test: &str, shape: Shape) {
    let fed = Federation::build(shape);
    let params = Params {
        fault_steps: FAULT_STEPS,
        history: history_len(),
        quirks: Quirks::default(),
    };
    let started = Instant::now();
    let mut total = Stats::default();
    for seed in seeds() {
        match run_seed(test, &fed, seed, params) {
            Ok(stats) => total.add(&stats),
            Err(e) => panic!("{e}"),
        }
    }
    // past the harness's capture on purpose: the sweep's size belongs in the CI log
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        summary(test, &total, started)
    );
    assert!(total.runs > 0, "no seed ran");
    assert!(
        total.applied > 0 && total.batches > 0,
        "nothing was replicated"
    );
}

/// Runs one seed with `quirks` and expects it to pass: these are the product bugs.
fn known_bug(test: &str, shape: Shape, seed: u64, quirks: Quirks) {
    let fed = Federation::build(shape);
    let seed = env_u64("PASSERELLE_SIM_SEED").unwrap_or(seed);
    let params = Params {
        fault_steps: FAULT_STEPS,
        history: history_len(),
        quirks,
    };
    if let Err(e) = run_seed(test, &fed, seed, params) {
        panic!("{e}");
    }
}

#[test]
fn mesh_converges_under_faults() {
    sweep("mesh_converges_under_faults", Shape::Mesh { relay: false });
}

#[test]
fn relaying_mesh_converges_under_faults() {
    sweep(
        "relaying_mesh_converges_under_faults",
        Shape::Mesh { relay: true },
    );
}

#[test]
fn relay_chain_converges_under_faults() {
    sweep("relay_chain_converges_under_faults", Shape::Chain);
}

#[test]
fn one_seed_is_one_run() {
    let fed = Federation::build(Shape::Mesh { relay: true });
    let params = Params {
        fault_steps: FAULT_STEPS,
        history: usize::MAX,
        quirks: Quirks::default(),
    };
    let run = || {
        let mut w = World::new(&fed, 7, params).expect("world");
        w.run().expect("seed 7 passes");
        w.history.clone()
    };
    let (first, second) = (run(), run());
    assert!(first.len() > 100, "a run has events");
    assert_eq!(first, second, "seed 7 ran differently the second time");
    let mut other = World::new(&fed, 8, params).expect("world");
    other.run().expect("seed 8 passes");
    assert_ne!(first, other.history, "seeds 7 and 8 ran alike");
}

// ---- known product bugs: each test states what should happen and fails until it does ----

fn put_vacancy(n: &Nodes, i: usize, id: &str, variant: u64) -> u64 {
    let agency = n.agency(i);
    let v = records::vacancy(agency.as_str(), id, variant, VacancyStatus::Open, false);
    n.nodes[i].put(v, None).expect("put").revision
}

fn held(n: &Nodes, i: usize, origin: usize, id: &str) -> Option<(u64, VacancyStatus)> {
    let key = RecordKey::new(n.agency(origin), Kind::Vacancy, id).expect("key");
    match n.nodes[i].get(&key) {
        Ok(Record::Vacancy(v)) => Some((v.revision, v.status)),
        Ok(_) => unreachable!("a vacancy key holds a vacancy"),
        Err(_) => None,
    }
}

#[test]
fn a_peer_catches_up_with_a_log_whose_last_entry_was_purged() {
    let fed = Federation::build(Shape::Mesh { relay: false });
    let n = Nodes::open(&fed);
    let (vdab, anpe) = (0, 1);
    put_vacancy(&n, vdab, "V-1", 1);
    put_vacancy(&n, vdab, "V-2", 2);
    n.nodes[vdab].withdraw("V-2", None).expect("withdraw");
    // the retention horizon passes: the withdrawal, the newest entry of the log, goes
    assert_eq!(
        n.nodes[vdab].purge_tombstones(0, i64::MAX).expect("purge"),
        1
    );
    // a new partner (or `sync --from-start`) pulls the snapshot
    let ends = n.sync(anpe, vdab, 1000, 6).expect("sync");
    let cursor = n.nodes[anpe].store().cursor("be.vdab").unwrap();
    let head = n.nodes[vdab].store().head_seq();
    assert_eq!(
        ends.last(),
        Some(&End::Live),
        "sessions ended {ends:?}; cursor {cursor:?}, server head {head}"
    );
    assert_eq!(
        held(&n, anpe, vdab, "V-1").map(|h| h.1),
        Some(VacancyStatus::Open)
    );
}

#[test]
fn a_reposted_id_reaches_peers_after_its_tombstone_was_purged() {
    let fed = Federation::build(Shape::Mesh { relay: false });
    let n = Nodes::open(&fed);
    let (vdab, anpe) = (0, 1);
    put_vacancy(&n, vdab, "V-1", 1);
    n.nodes[vdab].withdraw("V-1", None).expect("withdraw");
    assert_eq!(
        n.sync(anpe, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert_eq!(
        held(&n, anpe, vdab, "V-1"),
        Some((2, VacancyStatus::Withdrawn))
    );
    // only the origin's horizon has passed (sweeps and retention differ per node)
    assert_eq!(
        n.nodes[vdab].purge_tombstones(0, i64::MAX).expect("purge"),
        1
    );
    let revision = put_vacancy(&n, vdab, "V-1", 3);
    assert_eq!(
        n.sync(anpe, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert!(
        revision > 2,
        "the re-posted V-1 got revision {revision}, after revision 2"
    );
    assert_eq!(
        held(&n, anpe, vdab, "V-1"),
        held(&n, vdab, vdab, "V-1"),
        "the peer does not hold the origin's acknowledged version"
    );
}

#[test]
fn an_interrupted_snapshot_still_drops_copies_purged_at_the_origin() {
    let fed = Federation::build(Shape::Mesh { relay: false });
    let n = Nodes::open(&fed);
    let (vdab, anpe) = (0, 1);
    put_vacancy(&n, vdab, "V-1", 1);
    assert_eq!(
        n.sync(anpe, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    // ANPE is away longer than the horizon: V-1 is withdrawn and its tombstone purged meanwhile
    n.nodes[vdab].withdraw("V-1", None).expect("withdraw");
    put_vacancy(&n, vdab, "V-2", 2);
    put_vacancy(&n, vdab, "V-3", 3);
    assert_eq!(
        n.nodes[vdab].purge_tombstones(0, i64::MAX).expect("purge"),
        1
    );
    assert_eq!(
        n.session(anpe, vdab, 1, usize::MAX).expect("pull"),
        End::Resync
    );
    // the snapshot's connection drops after its first batch
    assert_eq!(n.session(anpe, vdab, 1, 1).expect("pull"), End::Interrupted);
    assert_eq!(
        n.sync(anpe, vdab, 1000, 3).expect("sync").last(),
        Some(&End::Live)
    );
    let stale = held(&n, anpe, vdab, "V-1");
    assert!(
        stale.is_none_or(|(_, status)| status.is_tombstone()),
        "ANPE still shows V-1 as {stale:?}; be.vdab withdrew it"
    );
}

#[test]
fn a_snapshot_cut_by_a_restart_starts_over_and_still_drops_copies_purged_at_the_origin() {
    let fed = Federation::build(Shape::Mesh { relay: false });
    let mut n = Nodes::open(&fed);
    let (vdab, anpe) = (0, 1);
    put_vacancy(&n, vdab, "V-1", 1);
    assert_eq!(
        n.sync(anpe, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    n.nodes[vdab].withdraw("V-1", None).expect("withdraw");
    put_vacancy(&n, vdab, "V-2", 2);
    put_vacancy(&n, vdab, "V-3", 3);
    assert_eq!(
        n.nodes[vdab].purge_tombstones(0, i64::MAX).expect("purge"),
        1
    );
    assert_eq!(
        n.session(anpe, vdab, 1, usize::MAX).expect("pull"),
        End::Resync
    );
    assert_eq!(n.session(anpe, vdab, 1, 1).expect("pull"), End::Interrupted);
    let vdab_id = n.agency(vdab);
    let cursor = n.nodes[anpe].store().cursor("be.vdab").unwrap();
    assert!(
        cursor > Some(0),
        "the snapshot's first batch moved the cursor"
    );
    assert!(n.nodes[anpe].snapshot_pending(&vdab_id).unwrap());
    // ANPE restarts in the middle of the snapshot: the keys it had delivered are forgotten
    n.restart(anpe);
    assert!(
        n.nodes[anpe].snapshot_pending(&vdab_id).unwrap(),
        "the marker is durable"
    );
    assert_eq!(n.sync(anpe, vdab, 1000, 3).expect("sync"), vec![End::Live]);
    let ignored = n.nodes[anpe]
        .counters
        .ignored
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        ignored, 1,
        "the snapshot starts over from 0 (V-2 delivered again), not from cursor {cursor:?}"
    );
    let stale = held(&n, anpe, vdab, "V-1");
    assert!(
        stale.is_none_or(|(_, status)| status.is_tombstone()),
        "ANPE still shows V-1 as {stale:?}; be.vdab withdrew it"
    );
    assert!(!n.nodes[anpe].snapshot_pending(&vdab_id).unwrap());
    assert_eq!(
        n.nodes[anpe].store().digest().unwrap(),
        n.nodes[vdab].store().digest().unwrap()
    );
    // once finished, a pull resumes from the cursor, without a new snapshot
    put_vacancy(&n, vdab, "V-4", 4);
    n.restart(anpe);
    assert_eq!(n.sync(anpe, vdab, 1000, 1).expect("sync"), vec![End::Live]);
    assert_eq!(
        n.nodes[anpe]
            .counters
            .ignored
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(held(&n, anpe, vdab, "V-4").map(|h| h.0), Some(1));
}

#[test]
#[ignore = "model lag: the real Pull service now ends a stream with FAILED_PRECONDITION when \
            tombstones are purged ahead of its cursor (src/federation/service.rs), but the \
            simulation's session model (tests/sim/world.rs) does not mirror that check yet"]
fn mesh_seed_20_purge_during_a_live_stream() {
    known_bug(
        "mesh_seed_20_purge_during_a_live_stream",
        Shape::Mesh { relay: false },
        20,
        Quirks {
            purge_undelivered: true,
            ..Quirks::default()
        },
    );
}

#[test]
#[ignore = "bug: a snapshot from a relay drops only the relay's own records \
            (src/federation/peer.rs session, Node::drop_unseen), so a relayed vacancy withdrawn \
            and purged upstream while the peer was away stays OPEN there"]
fn a_snapshot_from_a_relay_drops_relayed_copies_purged_upstream() {
    let fed = Federation::build(Shape::Chain);
    let n = Nodes::open(&fed);
    let (vdab, anpe, ft) = (0, 1, 2);
    put_vacancy(&n, vdab, "V-1", 1);
    assert_eq!(
        n.sync(ft, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert_eq!(
        n.sync(anpe, ft, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert_eq!(
        held(&n, anpe, vdab, "V-1").map(|h| h.1),
        Some(VacancyStatus::Open)
    );
    // tg.anpe is away longer than the horizon: V-1 is withdrawn, relayed, and purged everywhere
    n.nodes[vdab].withdraw("V-1", None).expect("withdraw");
    put_vacancy(&n, vdab, "V-2", 2);
    assert_eq!(
        n.sync(ft, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert_eq!(
        n.nodes[vdab].purge_tombstones(0, i64::MAX).expect("purge"),
        1
    );
    assert_eq!(n.nodes[ft].purge_tombstones(0, i64::MAX).expect("purge"), 1);
    let ends = n.sync(anpe, ft, 1000, 3).expect("sync");
    assert_eq!(
        ends,
        vec![End::Resync, End::Live],
        "a snapshot from fr.francetravail"
    );
    let stale = held(&n, anpe, vdab, "V-1");
    assert!(
        stale.is_none_or(|(_, status)| status.is_tombstone()),
        "tg.anpe still shows V-1 as {stale:?}; be.vdab withdrew it"
    );
}

#[test]
fn mesh_seed_1_with_ids_reused_after_purge() {
    known_bug(
        "mesh_seed_1_with_ids_reused_after_purge",
        Shape::Mesh { relay: false },
        1,
        Quirks {
            reuse_purged_ids: true,
            ..Quirks::default()
        },
    );
}

#[test]
#[ignore = "bug: drop_unseen after a snapshot drops the origin's records that its policy does not \
            share with this peer but a relay delivered (src/federation/peer.rs session, \
            crates/passerelle-node/src/sync.rs Node::drop_unseen); they never come back"]
fn a_snapshot_keeps_what_a_relay_delivered_beyond_the_direct_policy() {
    let fed = Federation::build(Shape::NarrowedMesh);
    let n = Nodes::open(&fed);
    let (vdab, anpe, ft) = (0, 1, 2);
    let shortage = records::shortage("be.vdab", "S-1", 1);
    n.nodes[vdab].put(shortage, None).expect("put");
    let key = RecordKey::new(n.agency(vdab), Kind::Shortage, "S-1").expect("key");
    assert_eq!(
        n.sync(ft, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert_eq!(
        n.sync(anpe, ft, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert!(
        n.nodes[anpe].get(&key).is_ok(),
        "relayed shortage not received"
    );
    // tg.anpe's first pull from be.vdab itself is a snapshot of what be.vdab shares with it
    assert_eq!(
        n.sync(anpe, vdab, 1000, 2).expect("sync").last(),
        Some(&End::Live)
    );
    assert!(
        n.nodes[anpe].get(&key).is_ok(),
        "the snapshot from be.vdab dropped its shortage that fr.francetravail relayed"
    );
}

#[test]
#[ignore = "bug: see a_snapshot_keeps_what_a_relay_delivered_beyond_the_direct_policy"]
fn narrowed_mesh_seed_2() {
    known_bug(
        "narrowed_mesh_seed_2",
        Shape::NarrowedMesh,
        2,
        Quirks::default(),
    );
}

/// Seed 25 found the end of a first sync dropping records that arrived through a relay after
/// its last batch was cut (the version applied twice, the purge raising purged_through at the
/// log tail: the server loop spun). A first sync is no longer a snapshot (it has nothing of the
/// peer's to drop), so this passes with strict drops. A re-sync snapshot can still race a relay
/// the same way (`dropped ... still at their origin` in the sweeps' statistics).
#[test]
fn relaying_mesh_seed_25_snapshot_races_a_relay() {
    known_bug(
        "relaying_mesh_seed_25_snapshot_races_a_relay",
        Shape::Mesh { relay: true },
        25,
        Quirks {
            strict_snapshot_drops: true,
            ..Quirks::default()
        },
    );
}
