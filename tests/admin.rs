//! The `Admin` service and its CLI between real nodes over mutual TLS (PRODUCT.md sections 3, 4
//! and 6): status of a partner that goes down and comes back, blocking a peer (its open stream
//! ends, its calls are refused at once, the block survives a restart, unblocking resumes the
//! sync), sync-now (skipping backoff, and from sequence 0), operator-only access, and the
//! `status`, `sync` and `peer block|unblock` commands of the real binary.
//!
//! Every wait is a bounded poll; nothing asserts on timing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use passerelle::federation::peer::PeerState;
use passerelle::pb::v1 as pb;
use pb::admin_client::AdminClient;
use pb::federation_client::FederationClient;
use tonic::transport::Channel;
use tonic::Code;

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";

/// Bound of every wait on loopback (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

async fn admin(node: &TestNode, role: &str) -> AdminClient<Channel> {
    AdminClient::new(node.channel(role).await)
}

async fn status(client: &mut AdminClient<Channel>) -> pb::StatusResponse {
    client
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

fn peer<'a>(s: &'a pb::StatusResponse, agency: &str) -> Option<&'a pb::PeerStatus> {
    s.peers.iter().find(|p| p.agency == agency)
}

fn count(s: &pb::StatusResponse, origin: &str, kind: &str) -> Option<u64> {
    s.counts
        .iter()
        .find(|c| c.origin == origin && c.kind == kind)
        .map(|c| c.records)
}

/// Polls `node`'s Status as its operator until `check` accepts it (at most [`WAIT`]).
async fn wait_status<F>(what: &str, node: &TestNode, mut check: F) -> pb::StatusResponse
where
    F: FnMut(&pb::StatusResponse) -> Result<(), String>,
{
    let mut client = admin(node, "operator").await;
    let started = std::time::Instant::now();
    loop {
        let s = status(&mut client).await;
        let last = match check(&s) {
            Ok(()) => return s,
            Err(e) => e,
        };
        if started.elapsed() >= WAIT {
            panic!("{what}: not reached within {WAIT:?}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` shows its pull from `source` live, caught up with `source`'s head (read
/// at each poll: the source's head moves when it pulls too).
async fn wait_live(what: &str, node: &TestNode, source: &TestNode) -> pb::StatusResponse {
    let agency = source.agency().to_string();
    wait_status(what, node, |s| match peer(s, &agency) {
        Some(p) if p.state == "live" && p.lag_records == 0 && p.cursor == source.head_seq() => {
            Ok(())
        }
        p => Err(format!("{p:?} (source head {})", source.head_seq())),
    })
    .await
}

async fn put_vacancy(node: &TestNode, id: &str) {
    node.vacancies("publisher")
        .await
        .put(pb::PutVacancyRequest {
            vacancy: Some(lasting_vacancy(id)),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put vacancy {id}: {s:?}"));
}

/// A (VDAB) and B (ANPE) federated, B pulling from A with a short backoff; A pulls from B
/// too when `both_ways`. Not started yet.
async fn pair(both_ways: bool) -> (PendingNode, PendingNode) {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    for n in [&a.node, &b.node] {
        n.configure_sync(&[("backoff_min_ms", 50), ("backoff_max_secs", 1)]);
    }
    let a_for_b = if both_ways {
        PeerEntry::pull()
    } else {
        PeerEntry::serve()
    };
    federate_pair(&a.node, &a_for_b, &b.node, &PeerEntry::pull());
    (a, b)
}

/// A channel to `target` authenticated with `caller`'s node certificate.
async fn as_node(caller: &TestNode, target: &TestNode) -> Channel {
    let dir = &caller.init.dir;
    let pem = read_pem(&dir.join("node.pem"), &dir.join("node-key.pem"));
    connect_raw(target, Some(&pem))
        .await
        .expect("connect as node")
}

async fn hello(channel: Channel, agency: &str) -> Result<pb::HelloResponse, tonic::Status> {
    FederationClient::new(channel)
        .hello(pb::HelloRequest {
            agency: agency.into(),
            node_version: "test".into(),
            protocol_version: passerelle::federation::PROTOCOL_VERSION,
        })
        .await
        .map(|r| r.into_inner())
}

async fn block(node: &TestNode, agency: &str, on: bool) -> bool {
    let mut c = admin(node, "operator").await;
    let req = pb::PeerRequest {
        agency: agency.into(),
    };
    let r = if on {
        c.block_peer(req).await
    } else {
        c.unblock_peer(req).await
    };
    r.expect("block/unblock").into_inner().changed
}

/// Stops `node` and waits until every holder of its core let go (calls drained).
async fn stop_fully(node: &mut TestNode) {
    let core = node.node_arc();
    node.stop().await;
    wait_until_ok(
        "the stopped node released",
        WAIT,
        || match Arc::strong_count(&core) {
            1 => Ok(()),
            n => Err(format!("{n} holders of the node core")),
        },
    )
    .await;
}

// ---------------------------------------------------------------- status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_partner_failing_with_its_last_error_then_live_again() {
    let (a, b) = pair(false).await;
    let (mut a, b) = (a.start().await, b.start().await);
    put_vacancy(&a, "V-1").await;
    let s = wait_live("B live on A", &b, &a).await;

    // what the node says about itself
    assert_eq!(s.agency, ANPE);
    assert_eq!(s.node_version, passerelle::NODE_VERSION);
    assert_eq!(s.head_seq, b.head_seq());
    assert!(s.store_bytes > 0);
    assert!(s.server_time.is_some());
    assert_eq!(count(&s, VDAB, "vacancy"), Some(1), "{:?}", s.counts);
    for kind in ["vacancy", "shortage", "supply"] {
        assert_eq!(count(&s, ANPE, kind), Some(0), "own {kind} listed");
    }
    assert_eq!(s.applied, 1);
    let p = peer(&s, VDAB).unwrap();
    assert!(p.pulls && p.endpoint == a.address(), "{p:?}");
    assert_eq!(p.lag_seconds, Some(0));
    assert!(p.last_success.is_some() && p.state_since.is_some());
    assert_eq!((p.applied, p.ignored, p.refused), (1, 0, 0));
    // own node certificate (made by `init` for 30 days), own CA and the partner's CA
    let kinds: Vec<(&str, &str)> = s
        .certificates
        .iter()
        .map(|c| (c.kind.as_str(), c.agency.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("node", ANPE), ("ca", ANPE), ("partner_ca", VDAB)],
        "{:?}",
        s.certificates
    );
    for c in &s.certificates {
        let days = if c.kind == "node" {
            29..=30
        } else {
            29..=i64::MAX
        };
        assert!(days.contains(&c.days_left), "{c:?}");
        assert!(c.not_after.is_some());
    }
    assert!(s.certificates[0]
        .subject
        .starts_with("urn:passerelle:tg.anpe:node:"));

    // A only serves B: its status lists B without a pull of its own
    let sa = status(&mut admin(&a, "operator").await).await;
    let pa = peer(&sa, ANPE).expect("B listed on A");
    assert_eq!(pa.state, "serve_only");
    assert!(!pa.pulls);

    // A goes away: B's status says failing, with the error and since when
    stop_fully(&mut a).await;
    let down = wait_status("B shows A failing", &b, |s| match peer(s, VDAB) {
        Some(p) if p.state == "failing" && !p.last_error.is_empty() => Ok(()),
        p => Err(format!("{p:?}")),
    })
    .await;
    let p = peer(&down, VDAB).unwrap();
    println!(
        "A down: {} since {:?}: {}",
        p.state, p.state_since, p.last_error
    );
    let since = p.state_since.as_ref().expect("since").seconds;
    let now = down.server_time.as_ref().unwrap().seconds;
    assert!(since <= now && since >= now - WAIT.as_secs() as i64 - 5);
    assert!(p.lag_seconds.is_some(), "B was caught up before: {p:?}");
    assert_eq!(count(&down, VDAB, "vacancy"), Some(1), "B keeps its copy");

    // A comes back: live again, with what A published meanwhile
    a.start_again().await;
    put_vacancy(&a, "V-2").await;
    let back = wait_live("B live on A again", &b, &a).await;
    assert_eq!(count(&back, VDAB, "vacancy"), Some(2));
    let p = peer(&back, VDAB).unwrap();
    assert_eq!(p.lag_seconds, Some(0));
    assert_eq!(p.applied, 2);
}

// ---------------------------------------------------------------- block

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_peer_loses_its_open_stream_and_its_calls_at_once_until_unblocked() {
    let (a, b) = pair(false).await;
    let (mut a, b) = (a.start().await, b.start().await);
    put_vacancy(&a, "V-1").await;
    wait_live("B live on A", &b, &a).await;

    // B's node holds a follow stream open on A, caught up
    let mut stream = FederationClient::new(as_node(&b, &a).await)
        .pull(pb::PullRequest {
            since: 0,
            follow: true,
            max_records: 0,
            max_bytes: 0,
        })
        .await
        .expect("pull as B")
        .into_inner();
    let first = stream.message().await.expect("first batch").expect("batch");
    assert_eq!(first.cursor, first.head_seq);

    assert!(block(&a, ANPE, true).await, "newly blocked");
    assert!(!block(&a, ANPE, true).await, "already blocked");
    let ended = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the open stream ended");
    match ended {
        Err(s) => assert_eq!(s.code(), Code::PermissionDenied, "{s:?}"),
        Ok(m) => panic!("stream of a blocked peer went on: {m:?}"),
    }
    let refused = hello(as_node(&b, &a).await, ANPE)
        .await
        .expect_err("hello of a blocked peer");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("blocked"), "{refused:?}");
    let sa = status(&mut admin(&a, "operator").await).await;
    assert_eq!(peer(&sa, ANPE).map(|p| p.state.as_str()), Some("blocked"));

    // B sees why; what A publishes now does not reach it
    put_vacancy(&a, "V-2").await;
    let sb = wait_status("B refused by A", &b, |s| match peer(s, VDAB) {
        Some(p)
            if matches!(p.state.as_str(), "backing_off" | "failing")
                && p.last_error.contains("blocked") =>
        {
            Ok(())
        }
        p => Err(format!("{p:?}")),
    })
    .await;
    assert_eq!(count(&sb, VDAB, "vacancy"), Some(1));

    // the block survives a restart
    a.restart().await;
    let refused = hello(as_node(&b, &a).await, ANPE)
        .await
        .expect_err("hello of a blocked peer after restart");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let sa = status(&mut admin(&a, "operator").await).await;
    assert_eq!(peer(&sa, ANPE).map(|p| p.state.as_str()), Some("blocked"));

    // unblocked: B pulls again and gets what it missed
    assert!(block(&a, ANPE, false).await, "unblocked");
    assert!(!block(&a, ANPE, false).await, "not blocked any more");
    hello(as_node(&b, &a).await, ANPE)
        .await
        .expect("hello after unblock");
    let sb = wait_live("B live on A after unblock", &b, &a).await;
    assert_eq!(count(&sb, VDAB, "vacancy"), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_on_the_pulling_side_stops_the_pull_both_ways_and_survives_a_restart() {
    let (a, b) = pair(true).await;
    let (a, mut b) = (a.start().await, b.start().await);
    put_vacancy(&a, "V-1").await;
    put_vacancy(&b, "T-1").await;
    wait_live("B live on A", &b, &a).await;
    wait_live("A live on B", &a, &b).await;

    assert!(block(&b, VDAB, true).await);
    // B's own pull from A parks in the blocked state
    wait_until_ok("B's pull from A blocked", WAIT, || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Blocked => Ok(()),
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    // and A's pull from B is refused
    wait_status("A refused by B", &a, |s| match peer(s, ANPE) {
        Some(p)
            if matches!(p.state.as_str(), "backing_off" | "failing")
                && p.last_error.contains("blocked") =>
        {
            Ok(())
        }
        p => Err(format!("{p:?}")),
    })
    .await;
    put_vacancy(&a, "V-2").await;
    put_vacancy(&b, "T-2").await;
    // a parked loop pulls nothing: B's cursor for A stays where it was
    let sb = status(&mut admin(&b, "operator").await).await;
    assert_eq!(peer(&sb, VDAB).unwrap().state, "blocked");
    assert_eq!(count(&sb, VDAB, "vacancy"), Some(1));

    b.restart().await;
    wait_until_ok("B's pull from A blocked after restart", WAIT, || {
        match b.peer_status(VDAB) {
            Some(s) if s.state == PeerState::Blocked => Ok(()),
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    let refused = hello(as_node(&a, &b).await, VDAB)
        .await
        .expect_err("hello of a blocked peer after restart");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let sb = status(&mut admin(&b, "operator").await).await;
    assert_eq!(count(&sb, VDAB, "vacancy"), Some(1));

    assert!(block(&b, VDAB, false).await);
    let sb = wait_live("B live on A after unblock", &b, &a).await;
    assert_eq!(count(&sb, VDAB, "vacancy"), Some(2));
    let sa = wait_live("A live on B after unblock", &a, &b).await;
    assert_eq!(count(&sa, ANPE, "vacancy"), Some(2));
}

// ---------------------------------------------------------------- sync now

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_start_pulls_everything_again_and_applies_nothing_twice() {
    let (a, b) = pair(false).await;
    let (a, b) = (a.start().await, b.start().await);
    for i in 0..10 {
        put_vacancy(&a, &format!("V-{i}")).await;
    }
    let s = wait_live("B live on A", &b, &a).await;
    assert_eq!((s.applied, s.ignored), (10, 0));
    let digest = state_digest(&b);

    let mut op = admin(&b, "operator").await;
    let r = op
        .sync_now(pb::SyncNowRequest {
            peer: VDAB.into(),
            from_start: true,
        })
        .await
        .expect("sync now")
        .into_inner();
    assert_eq!(r.peers, [VDAB]);
    assert!(r.blocked.is_empty());
    let at = r.requested_at.expect("requested_at");
    let head = a.head_seq();
    let s = wait_status("B pulled A again from 0", &b, |s| match peer(s, VDAB) {
        Some(p)
            if p.state == "live"
                && p.cursor == head
                && p.ignored >= 10
                && p.state_since
                    .as_ref()
                    .is_some_and(|t| (t.seconds, t.nanos) >= (at.seconds, at.nanos)) =>
        {
            Ok(())
        }
        p => Err(format!("{p:?}")),
    })
    .await;
    // every record came again and was ignored: none applied twice
    assert_eq!(s.applied, 10);
    assert_eq!(s.ignored, 10);
    assert_eq!(peer(&s, VDAB).unwrap().applied, 10);
    assert_eq!(state_digest(&b), digest);
    assert_store_consistent(&b);

    // every peer (here one), without resetting anything
    let r = op
        .sync_now(pb::SyncNowRequest::default())
        .await
        .expect("sync every peer")
        .into_inner();
    assert_eq!(r.peers, [VDAB]);

    // peers it cannot sync
    let e = op
        .sync_now(pb::SyncNowRequest {
            peer: "fr.francetravail".into(),
            from_start: false,
        })
        .await
        .expect_err("not a peer");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = op
        .sync_now(pb::SyncNowRequest {
            peer: "Not An Agency".into(),
            from_start: false,
        })
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        passerelle::error::violations_of(&e)
            .first()
            .map(|v| v.0.as_str()),
        Some("peer")
    );
    let e = admin(&a, "operator")
        .await
        .sync_now(pb::SyncNowRequest {
            peer: ANPE.into(),
            from_start: false,
        })
        .await
        .expect_err("A does not pull from B");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(block(&b, VDAB, true).await);
    let e = op
        .sync_now(pb::SyncNowRequest {
            peer: VDAB.into(),
            from_start: false,
        })
        .await
        .expect_err("blocked");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let r = op
        .sync_now(pb::SyncNowRequest::default())
        .await
        .expect("sync every peer")
        .into_inner();
    assert!(r.peers.is_empty());
    assert_eq!(r.blocked, [VDAB]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_reconnects_without_waiting_for_the_backoff() {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    // the first retry waits at least 45 s (60 s, jitter -25 %)
    b.node
        .configure_sync(&[("backoff_min_ms", 60_000), ("backoff_max_secs", 120)]);
    federate_pair(&a.node, &PeerEntry::serve(), &b.node, &PeerEntry::pull());
    let mut a = a.close_port();
    let b = b.start().await;
    wait_status("B backing off", &b, |s| match peer(s, VDAB) {
        Some(p) if p.state == "backing_off" && !p.last_error.is_empty() => Ok(()),
        p => Err(format!("{p:?}")),
    })
    .await;
    a.start_again().await;
    put_vacancy(&a, "V-1").await;
    admin(&b, "operator")
        .await
        .sync_now(pb::SyncNowRequest::default())
        .await
        .expect("sync now");
    // well before the backoff would have let it retry
    let s = wait_live("B live on A after sync now", &b, &a).await;
    assert_eq!(count(&s, VDAB, "vacancy"), Some(1));
}

// ---------------------------------------------------------------- access

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_own_operator_may_call_admin() {
    let (a, b) = pair(false).await;
    let (a, b) = (a.start().await, b.start().await);
    for role in ["publisher", "analyst"] {
        let mut c = admin(&b, role).await;
        let e = c.status(pb::StatusRequest {}).await.expect_err(role);
        assert_eq!(e.code(), Code::PermissionDenied, "{role}: {e:?}");
        let e = c
            .sync_now(pb::SyncNowRequest::default())
            .await
            .expect_err(role);
        assert_eq!(e.code(), Code::PermissionDenied, "{role}");
        let e = c
            .block_peer(pb::PeerRequest {
                agency: VDAB.into(),
            })
            .await
            .expect_err(role);
        assert_eq!(e.code(), Code::PermissionDenied, "{role}");
    }
    // a partner's node may pull, not administer
    let e = AdminClient::new(as_node(&a, &b).await)
        .block_peer(pb::PeerRequest {
            agency: VDAB.into(),
        })
        .await
        .expect_err("partner node");
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut op = admin(&b, "operator").await;
    assert!(!status(&mut op)
        .await
        .peers
        .iter()
        .any(|p| p.state == "blocked"));

    // own agency and strangers cannot be blocked
    let e = op
        .block_peer(pb::PeerRequest {
            agency: ANPE.into(),
        })
        .await
        .expect_err("own agency");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = op
        .block_peer(pb::PeerRequest {
            agency: "ma.anapec".into(),
        })
        .await
        .expect_err("stranger");
    assert_eq!(e.code(), Code::NotFound);
    let e = op
        .unblock_peer(pb::PeerRequest {
            agency: "ma.anapec".into(),
        })
        .await
        .expect_err("stranger");
    assert_eq!(e.code(), Code::NotFound);
}

// ---------------------------------------------------------------- CLI

async fn cli(args: Vec<std::ffi::OsString>) -> Run {
    tokio::task::spawn_blocking(move || run_bin(args, Duration::from_secs(90)))
        .await
        .expect("run the binary")
}

fn args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    list.iter().map(|a| a.as_ref().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_block_unblock_and_sync() {
    let (a, b) = pair(false).await;
    let (a, b) = (a.start().await, b.start().await);
    put_vacancy(&a, "V-1").await;
    put_vacancy(&a, "V-2").await;
    wait_live("B live on A", &b, &a).await;
    let op = b.profile_path("operator");
    let profile: &dyn AsRef<std::ffi::OsStr> = &op;

    let run = cli(args(&[
        &"status",
        &"--profile",
        profile,
        &"--format",
        &"json",
    ]))
    .await;
    assert!(run.ok(), "{run:#?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("status JSON");
    assert_eq!(doc["agency"], ANPE);
    assert_eq!(doc["peers"][0]["agency"], VDAB);
    assert_eq!(doc["peers"][0]["state"], "live");
    assert_eq!(doc["peers"][0]["lag_records"], 0);
    assert!(doc["peers"][0]["state_since"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let vdab_vacancies = doc["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["origin"] == VDAB && c["kind"] == "vacancy")
        .map(|c| c["records"].clone());
    assert_eq!(vdab_vacancies, Some(serde_json::json!(2)));
    assert_eq!(doc["certificates"].as_array().map(Vec::len), Some(3));

    let run = cli(args(&[&"status", &"--profile", profile])).await;
    assert!(run.ok(), "{run:#?}");
    println!("{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("peer ")
            && l.contains("state")
            && l.contains("behind")
            && l.contains("last success")),
        "no peer table header:\n{}",
        run.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("be.vdab ") && l.contains(" live ")),
        "no live be.vdab row:\n{}",
        run.stdout
    );
    assert!(lines.iter().any(|l| l.starts_with("partner_ca ")));

    let run = cli(args(&[&"peer", &"block", &VDAB, &"--profile", profile])).await;
    assert!(run.ok() && run.stdout.contains("blocked"), "{run:#?}");
    let run = cli(args(&[
        &"status",
        &"--profile",
        profile,
        &"--format",
        &"json",
    ]))
    .await;
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("status JSON");
    assert_eq!(doc["peers"][0]["state"], "blocked");
    let run = cli(args(&[&"sync", &"--peer", &VDAB, &"--profile", profile])).await;
    assert_eq!(run.code, Some(1), "sync of a blocked peer: {run:#?}");
    assert!(run.stderr.contains("blocked"), "{run:#?}");
    let run = cli(args(&[&"peer", &"unblock", &VDAB, &"--profile", profile])).await;
    assert!(run.ok() && run.stdout.contains("unblocked"), "{run:#?}");

    // waits until live again, and says what the pull from 0 brought
    let run = cli(args(&[
        &"sync",
        &"--peer",
        &VDAB,
        &"--from-start",
        &"--timeout",
        &"60",
        &"--profile",
        profile,
    ]))
    .await;
    assert!(run.ok(), "{run:#?}");
    assert!(
        run.stdout.contains("be.vdab: live at sequence") && run.stdout.contains("2 ignored"),
        "{run:#?}"
    );

    // not for analysts
    let analyst = b.profile_path("analyst");
    let run = cli(args(&[&"status", &"--profile", &analyst])).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("PERMISSION_DENIED"), "{run:#?}");
}
