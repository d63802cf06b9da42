//! Peer loops: one per configured peer with an endpoint, pulling continuously (`follow`) with
//! bounded exponential backoff and jitter, and an explicit state that is logged on every change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use passerelle_model::AgencyId;
use passerelle_node::sync::Snapshot;
use passerelle_node::{Node, NodeConfig, PeerConfig};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tonic::codec::CompressionEncoding;
use tonic::Code;

use super::{signed_in, PROTOCOL_VERSION};
use crate::admin::PeerControls;
use crate::pb::v1 as pb;
use crate::pb::v1::federation_client::FederationClient;

/// Where a peer's sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Connected and catching up.
    Syncing,
    /// Connected and caught up with the peer's head; new changes arrive as they are committed.
    Live,
    /// The last attempt failed; waiting before the next one.
    BackingOff,
    /// An operator blocked the peer.
    Blocked,
    /// Several attempts in a row failed; still retrying at the backoff ceiling.
    Failing,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Syncing => "syncing",
            PeerState::Live => "live",
            PeerState::BackingOff => "backing_off",
            PeerState::Blocked => "blocked",
            PeerState::Failing => "failing",
        }
    }
}

/// What status shows about one peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub agency: String,
    pub endpoint: String,
    pub state: PeerState,
    pub last_error: Option<String>,
    pub state_since: SystemTime,
    pub cursor: u64,
    pub remote_head: u64,
    pub last_success: Option<SystemTime>,
    pub applied: u64,
    pub refused: u64,
    /// Records received that were not newer than the stored version.
    pub ignored: u64,
    /// When this node last held everything the peer had (its last caught-up batch).
    pub caught_up_at: Option<SystemTime>,
}

impl PeerStatus {
    /// Records the peer holds that this node has not pulled yet (as of the last batch).
    pub fn lag(&self) -> u64 {
        self.remote_head.saturating_sub(self.cursor)
    }
}

/// The states of every peer loop, shared with status and tests.
#[derive(Debug, Default)]
pub struct PeerStates {
    inner: Mutex<BTreeMap<AgencyId, PeerStatus>>,
}

impl PeerStates {
    fn with<R>(&self, agency: &AgencyId, f: impl FnOnce(&mut PeerStatus) -> R) -> Option<R> {
        self.inner.lock().expect("lock").get_mut(agency).map(f)
    }

    fn register(&self, agency: &AgencyId, endpoint: &str, cursor: u64) {
        self.inner.lock().expect("lock").insert(
            agency.clone(),
            PeerStatus {
                agency: agency.to_string(),
                endpoint: endpoint.to_owned(),
                state: PeerState::Syncing,
                last_error: None,
                state_since: SystemTime::now(),
                cursor,
                remote_head: 0,
                last_success: None,
                applied: 0,
                refused: 0,
                ignored: 0,
                caught_up_at: None,
            },
        );
    }

    fn set_state(&self, agency: &AgencyId, state: PeerState, error: Option<String>) {
        self.with(agency, |s| {
            let changed = s.state != state || (error.is_some() && s.last_error != error);
            if error.is_some() {
                s.last_error = error.clone();
            }
            if s.state != state {
                s.state = state;
                s.state_since = SystemTime::now();
            }
            if changed {
                match (&s.last_error, state) {
                    (Some(e), PeerState::BackingOff | PeerState::Failing) => {
                        tracing::warn!(peer = %agency, state = state.as_str(), error = %e, "peer state")
                    }
                    _ => tracing::info!(peer = %agency, state = state.as_str(), cursor = s.cursor, "peer state"),
                }
            }
        });
    }

    /// Starts over as syncing now (an operator's request or an unblock), whatever the state was.
    fn restart(&self, agency: &AgencyId, cursor: Option<u64>) {
        self.with(agency, |s| {
            s.state = PeerState::Syncing;
            s.state_since = SystemTime::now();
            if let Some(c) = cursor {
                s.cursor = c;
            }
            tracing::info!(peer = %agency, state = s.state.as_str(), cursor = s.cursor, "peer state");
        });
    }

    pub fn get(&self, agency: &AgencyId) -> Option<PeerStatus> {
        self.inner.lock().expect("lock").get(agency).cloned()
    }

    pub fn snapshot(&self) -> Vec<PeerStatus> {
        self.inner.lock().expect("lock").values().cloned().collect()
    }
}

/// Delay before retry `attempt` (1-based): doubling from `min`, capped at `max`, with ±25 % jitter.
pub fn backoff(attempt: u32, min: Duration, max: Duration, jitter_seed: u64) -> Duration {
    let exp = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = exp.min(max);
    // jitter spreads the retries of many offices reconnecting after one outage
    let frac = (jitter_seed % 1000) as f64 / 1000.0;
    base.mul_f64(0.75 + 0.5 * frac).min(max)
}

fn jitter_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() as u64).wrapping_mul(2_654_435_761)
}

/// What this node accepts from a peer it pulls from, how long it waits (`[limits]`), and how
/// it backs off after a failure (`[sync]`).
#[derive(Debug, Clone, Copy)]
struct SessionLimits {
    backoff_min: Duration,
    backoff_max: Duration,
    max_message_bytes: usize,
    max_batch_records: u32,
    call_timeout: Duration,
    idle_timeout: Duration,
}

impl SessionLimits {
    fn from_config(cfg: &NodeConfig) -> Self {
        let l = &cfg.limits;
        SessionLimits {
            backoff_min: Duration::from_millis(cfg.sync.backoff_min_ms),
            backoff_max: Duration::from_secs(cfg.sync.backoff_max_secs),
            max_message_bytes: l.max_message_bytes,
            max_batch_records: l.max_batch_records,
            call_timeout: Duration::from_secs(l.call_timeout_secs),
            idle_timeout: Duration::from_secs(l.pull_idle_timeout_secs),
        }
    }
}

enum SessionEnd {
    /// The peer closed the stream; reconnect at once.
    Closed,
    /// Our cursor is older than the peer's retention horizon: pull again from 0.
    Resync,
    /// An operator asked for a sync (or blocked the peer) between two batches.
    Interrupted,
}

/// Starts one loop per peer that has an endpoint; they stop when `shutdown` turns true.
pub fn spawn_peer_loops(
    node: Arc<Node>,
    cfg: &NodeConfig,
    tls: &Arc<crate::reload::Swap<crate::reload::PeerTls>>,
    states: Arc<PeerStates>,
    controls: Arc<PeerControls>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for peer in cfg.peers.iter().filter(|p| p.endpoint.is_some()) {
        let endpoint = peer.endpoint.clone().unwrap_or_default();
        let cursor = node
            .store()
            .cursor(peer.agency.as_str())
            .ok()
            .flatten()
            .unwrap_or(0);
        states.register(&peer.agency, &endpoint, cursor);
        if !tls.load().contains_key(&peer.agency) {
            continue;
        }
        handles.push(tokio::spawn(peer_loop(
            node.clone(),
            peer.clone(),
            SessionLimits::from_config(cfg),
            tls.clone(),
            states.clone(),
            controls.clone(),
            shutdown.clone(),
        )));
    }
    handles
}

async fn peer_loop(
    node: Arc<Node>,
    peer: PeerConfig,
    limits: SessionLimits,
    tls: Arc<crate::reload::Swap<crate::reload::PeerTls>>,
    states: Arc<PeerStates>,
    controls: Arc<PeerControls>,
    mut shutdown: watch::Receiver<bool>,
) {
    let endpoint = peer.endpoint.clone().unwrap_or_default();
    let (min, max) = (limits.backoff_min, limits.backoff_max);
    let mut failures = 0u32;
    // a snapshot outlives the session that started it: a cut, a reset, an idle timeout or an
    // operator's sync-now resumes it from its cursor, and its end still drops what the peer
    // purged (a restart loses it, and `Node::pull_start` then starts it over)
    let mut snapshot: Option<Snapshot> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match operator_decisions(&node, &peer.agency, &states, &controls, &mut shutdown).await {
            None => break,
            Some(true) => failures = 0,
            Some(false) => {}
        }
        // read at each connection, so that a reload applies from the next one on
        let Some(tls) = tls.load().get(&peer.agency).cloned() else {
            break;
        };
        let session_started = SystemTime::now();
        let result = tokio::select! {
            r = session(&node, &peer, &endpoint, &tls, limits, &states, &controls, &mut snapshot) => r,
            // a blocked peer is left at once (what was applied is durable with its cursor)
            _ = controls.until_blocked(&peer.agency) => continue,
            _ = shutdown.changed() => break,
        };
        let delay = match result {
            Ok(SessionEnd::Closed) => {
                failures = 0;
                Duration::from_millis(100)
            }
            Ok(SessionEnd::Resync) => {
                tracing::warn!(peer = %peer.agency, "cursor older than the peer's retention horizon: resyncing from a snapshot");
                let (n, a) = (node.clone(), peer.agency.clone());
                let reset = match tokio::task::spawn_blocking(move || n.restart_snapshot(&a)).await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("worker failed: {e}")),
                };
                match reset {
                    Ok(()) => Duration::ZERO,
                    Err(e) => {
                        // else the next pull is refused again at once, and again
                        failures += 1;
                        let state = if failures >= 3 {
                            PeerState::Failing
                        } else {
                            PeerState::BackingOff
                        };
                        let error = format!("cannot reset the cursor: {e}");
                        states.set_state(&peer.agency, state, Some(error));
                        backoff(failures, min, max, jitter_seed())
                    }
                }
            }
            Ok(SessionEnd::Interrupted) => Duration::ZERO,
            Err(e) => {
                // a session that applied batches before it broke was a success: count anew
                let progressed = states
                    .get(&peer.agency)
                    .and_then(|s| s.last_success)
                    .is_some_and(|t| t >= session_started);
                failures = if progressed { 1 } else { failures + 1 };
                let state = if failures >= 3 {
                    PeerState::Failing
                } else {
                    PeerState::BackingOff
                };
                states.set_state(&peer.agency, state, Some(e));
                backoff(failures, min, max, jitter_seed())
            }
        };
        let mut operator = controls.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // sync-now skips the backoff
            _ = controls.operator_event(&peer.agency, &mut operator) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Applies an operator's decisions before connecting: waits while the peer is blocked, and
/// takes a pending sync-now request (starting a snapshot over from 0 for one from the start; the
/// previous session has ended, so no batch in flight can move the cursor again). Returns whether the
/// loop starts afresh (failures forgotten), or None on shutdown.
async fn operator_decisions(
    node: &Arc<Node>,
    agency: &AgencyId,
    states: &PeerStates,
    controls: &PeerControls,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let mut fresh = false;
    if controls.is_blocked(agency) {
        states.set_state(agency, PeerState::Blocked, None);
        let mut changes = controls.subscribe();
        while controls.is_blocked(agency) {
            tokio::select! {
                _ = changes.changed() => {}
                _ = shutdown.changed() => return None,
            }
        }
        states.restart(agency, None);
        fresh = true;
    }
    if let Some(request) = controls.take_request(agency) {
        let mut cursor = None;
        if request.from_start {
            let (n, a) = (node.clone(), agency.clone());
            match tokio::task::spawn_blocking(move || n.restart_snapshot(&a)).await {
                Ok(Ok(())) => cursor = Some(0),
                Ok(Err(e)) => tracing::warn!(peer = %agency, error = %e, "cannot reset the cursor"),
                Err(e) => tracing::warn!(peer = %agency, error = %e, "cannot reset the cursor"),
            }
        }
        states.restart(agency, cursor);
        fresh = true;
    }
    Some(fresh)
}

/// One connection: Hello, then Pull with `follow`, applying batches as they arrive; `snapshot`
/// is the snapshot pull under way, if any, which this session starts, continues or finishes.
#[allow(clippy::too_many_arguments)]
async fn session(
    node: &Arc<Node>,
    peer: &PeerConfig,
    endpoint: &str,
    tls: &Arc<rustls::ClientConfig>,
    limits: SessionLimits,
    states: &PeerStates,
    controls: &PeerControls,
    snapshot: &mut Option<Snapshot>,
) -> Result<SessionEnd, String> {
    let mut operator = controls.subscribe();
    let deadline = limits.call_timeout;
    let late = |what: &str| format!("{what} timed out after {} s", deadline.as_secs_f64());
    let channel = tokio::time::timeout(deadline, crate::client::connect(endpoint, tls.clone()))
        .await
        .map_err(|_| late("connection"))?
        .map_err(|e| format!("{e:#}"))?;
    let mut client = FederationClient::new(channel)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(limits.max_message_bytes);
    let hello = client.hello(pb::HelloRequest {
        agency: node.agency().to_string(),
        node_version: crate::NODE_VERSION.into(),
        protocol_version: PROTOCOL_VERSION,
    });
    let hello = tokio::time::timeout(deadline, hello)
        .await
        .map_err(|_| late("hello"))?
        .map_err(|s| format!("hello refused: {}: {}", s.code(), s.message()))?
        .into_inner();
    if hello.agency != peer.agency.as_str() {
        return Err(format!(
            "peer answered as {}, expected {}",
            hello.agency, peer.agency
        ));
    }
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "peer speaks federation protocol {}, this node {PROTOCOL_VERSION}",
            hello.protocol_version
        ));
    }
    states.set_state(&peer.agency, PeerState::Syncing, None);
    // a pull from 0 is a snapshot: what it lacks of the peer's own records was purged there
    let (n, a, held) = (node.clone(), peer.agency.clone(), snapshot.is_some());
    let start = tokio::task::spawn_blocking(move || n.pull_start(&a, held))
        .await
        .map_err(|e| format!("worker failed: {e}"))?
        .map_err(|e| format!("cannot start the pull: {e}"))?;
    if start.new_snapshot {
        *snapshot = Some(Snapshot::default());
    }
    let since = start.since;
    // ask for batches this node accepts; a peer that sends more is refused below
    let pull = client.pull(pb::PullRequest {
        since,
        follow: true,
        max_records: limits.max_batch_records,
        max_bytes: u32::try_from(limits.max_message_bytes / 2).unwrap_or(u32::MAX),
    });
    let stream = tokio::time::timeout(deadline, pull)
        .await
        .map_err(|_| late("pull"))?;
    let mut stream = match stream {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == Code::FailedPrecondition => return Ok(SessionEnd::Resync),
        Err(s) => return Err(format!("pull refused: {}: {}", s.code(), s.message())),
    };
    // a reader task keeps several batches in flight while the previous one is applied
    let (tx, rx) = mpsc::channel::<Result<pb::PullBatch, tonic::Status>>(6);
    let idle = limits.idle_timeout;
    let reader = tokio::spawn(async move {
        loop {
            // the peer sends a heartbeat when idle: silence means a stalled peer or link
            let Ok(next) = tokio::time::timeout(idle, stream.message()).await else {
                let silent = tonic::Status::deadline_exceeded(format!(
                    "nothing received for {} s, not even a heartbeat",
                    idle.as_secs_f64()
                ));
                let _ = tx.send(Err(silent)).await;
                break;
            };
            match next {
                Ok(Some(b)) => {
                    if tx.send(Ok(b)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(s) => {
                    let _ = tx.send(Err(s)).await;
                    break;
                }
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    // a checker task verifies the next batch (signatures, validation: CPU over every core)
    // while the previous one is written and flushed below
    let (ctx, mut crx) = mpsc::channel::<Staged>(1);
    let checker = tokio::spawn(check_stage(
        node.clone(),
        peer.clone(),
        since,
        limits.max_batch_records,
        snapshot.is_some(),
        rx,
        ctx,
    ));
    let _abort_checker = AbortOnDrop(checker);
    loop {
        let item = tokio::select! {
            item = crx.recv() => item,
            _ = controls.operator_event(&peer.agency, &mut operator) => {
                return Ok(SessionEnd::Interrupted)
            }
        };
        let Some(item) = item else { break };
        let batch = match item {
            Staged::Batch(b) => b,
            Staged::Failed(s) if s.code() == Code::FailedPrecondition => {
                return Ok(SessionEnd::Resync)
            }
            Staged::Failed(s) => {
                return Err(format!("pull stream failed: {}: {}", s.code(), s.message()))
            }
            Staged::Oversize(sent) => {
                states.with(&peer.agency, |s| s.refused += sent as u64);
                tracing::warn!(peer = %peer.agency, records = sent, limit = limits.max_batch_records, "oversize batch refused");
                return Err(format!(
                    "the peer sent a batch of {sent} records, more than the {} this node accepts: nothing of it was applied",
                    limits.max_batch_records
                ));
            }
            Staged::CheckFailed(e) => return Err(e),
        };
        if let Some(s) = snapshot.as_mut() {
            s.note_keys(&peer.agency, batch.keys);
        }
        let report = match batch.checked {
            None => passerelle_node::ApplyReport::default(),
            Some(checked) => {
                let (n, agency, cursor) = (node.clone(), peer.agency.clone(), batch.cursor);
                tokio::task::spawn_blocking(move || n.commit_from_peer(&agency, checked, cursor))
                    .await
                    .map_err(|e| format!("worker failed: {e}"))?
                    .map_err(|e| format!("cannot apply batch: {e}"))?
            }
        };
        if report.refused_total() > 0 {
            tracing::warn!(
                peer = %peer.agency,
                refused = report.refused_total(),
                examples = ?report.examples,
                "records refused"
            );
        }
        let live = batch.cursor >= batch.head_seq;
        if live {
            // kept until it is finished: after a failure (or a block) the next session finishes it
            if let Some(s) = snapshot.clone() {
                let (n, origin) = (node.clone(), peer.agency.clone());
                let dropped = tokio::task::spawn_blocking(move || n.finish_snapshot(&origin, &s))
                    .await
                    .map_err(|e| format!("worker failed: {e}"))?
                    .map_err(|e| format!("cannot drop purged records: {e}"))?;
                *snapshot = None;
                if dropped > 0 {
                    tracing::info!(peer = %peer.agency, dropped, "snapshot complete: dropped records the origin purged");
                }
            }
        }
        states.with(&peer.agency, |s| {
            s.cursor = batch.cursor;
            s.remote_head = batch.head_seq;
            s.last_success = Some(SystemTime::now());
            s.applied += report.applied;
            s.refused += report.refused_total();
            s.ignored += report.ignored;
            if live {
                s.caught_up_at = s.last_success;
            }
        });
        states.set_state(
            &peer.agency,
            if live {
                PeerState::Live
            } else {
                PeerState::Syncing
            },
            None,
        );
    }
    Ok(SessionEnd::Closed)
}

/// A delivered batch on its way from the checker to the writer of a session.
enum Staged {
    Batch(StagedBatch),
    /// The stream failed (or went silent): what the reader received.
    Failed(tonic::Status),
    /// A batch of this many records, above the limit: refused unchecked.
    Oversize(usize),
    CheckFailed(String),
}

struct StagedBatch {
    cursor: u64,
    head_seq: u64,
    /// The delivered keys, while a snapshot is under way (to drop what it lacks at its end).
    keys: Vec<String>,
    /// None for a heartbeat, or an announcement that we are caught up: nothing to write.
    checked: Option<passerelle_node::CheckedBatch>,
}

/// The checker of a session: takes the received batches in order, checks each (off the async
/// threads) and hands it on; stops at the first failure, after handing it on.
async fn check_stage(
    node: Arc<Node>,
    peer: PeerConfig,
    since: u64,
    max_batch_records: u32,
    noting: bool,
    mut rx: mpsc::Receiver<Result<pb::PullBatch, tonic::Status>>,
    tx: mpsc::Sender<Staged>,
) {
    let mut last_cursor = since;
    while let Some(item) = rx.recv().await {
        let staged = match item {
            Err(s) => Staged::Failed(s),
            Ok(b) if b.records.len() > max_batch_records as usize => {
                Staged::Oversize(b.records.len())
            }
            Ok(b) => {
                let nothing = b.records.is_empty() && b.cursor == last_cursor;
                last_cursor = b.cursor;
                let records: Vec<_> = b.records.into_iter().map(signed_in).collect();
                let keys = if noting {
                    records.iter().map(|r| r.key.clone()).collect()
                } else {
                    Vec::new()
                };
                let checked = if nothing {
                    Ok(None)
                } else {
                    let (n, p) = (node.clone(), peer.clone());
                    tokio::task::spawn_blocking(move || {
                        Some(n.check_from_peer(&p.agency, &p.refuse_origins, records))
                    })
                    .await
                    .map_err(|e| format!("worker failed: {e}"))
                };
                match checked {
                    Ok(checked) => Staged::Batch(StagedBatch {
                        cursor: b.cursor,
                        head_seq: b.head_seq,
                        keys,
                        checked,
                    }),
                    Err(e) => Staged::CheckFailed(e),
                }
            }
        };
        let last = !matches!(staged, Staged::Batch(_));
        if tx.send(staged).await.is_err() || last {
            break;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_bounded() {
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(30));
        for seed in [0, 499, 999] {
            let d1 = backoff(1, min, max, seed);
            assert!(
                d1 >= Duration::from_millis(150) && d1 <= Duration::from_millis(250),
                "{d1:?}"
            );
            let d3 = backoff(3, min, max, seed);
            assert!(
                d3 >= Duration::from_millis(600) && d3 <= Duration::from_millis(1000),
                "{d3:?}"
            );
            assert!(backoff(40, min, max, seed) <= max);
        }
        assert_ne!(backoff(2, min, max, 0), backoff(2, min, max, 999));
    }
}
