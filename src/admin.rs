//! The `Admin` service (own operators only): node status, sync-now, and blocking peers, with the
//! shared peer controls that the authorisation layer, the Pull streams and the peer loops obey.
//!
//! A block takes effect at once everywhere: the authorisation layer refuses the agency's next
//! call, its open Pull streams end with PERMISSION_DENIED, and this node stops pulling from it.
//! Blocks are written to the store's metadata map (`blocked/<agency>`) and flushed before the
//! call is answered, so they survive a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use passerelle_model::{AgencyId, Kind};
use passerelle_node::{Node, NodeConfig};
use passerelle_store::{AnyEngine, RecordStore, StoreError};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::authz::PeerInfo;
use crate::federation::peer::{PeerStates, PeerStatus};
use crate::pb::v1 as pb;
use crate::reload::Certificates;

/// Name prefix of blocked peers in the store's metadata map.
const BLOCKED_PREFIX: &str = "blocked/";
/// Format byte of a block entry: then the block time, microseconds since 1970, big-endian.
const BLOCK_FORMAT_V1: u8 = 1;

fn blocked_name(agency: &AgencyId) -> String {
    format!("{BLOCKED_PREFIX}{agency}")
}

fn encode_block(since: SystemTime) -> Vec<u8> {
    let micros = since
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut v = vec![BLOCK_FORMAT_V1];
    v.extend_from_slice(&micros.to_be_bytes());
    v
}

/// The block time of an entry; an entry this release cannot read still blocks (fail closed).
fn decode_block(value: &[u8]) -> SystemTime {
    match value {
        [BLOCK_FORMAT_V1, rest @ ..] if rest.len() == 8 => {
            let micros = u64::from_be_bytes(rest.try_into().expect("8 bytes"));
            UNIX_EPOCH + Duration::from_micros(micros)
        }
        _ => UNIX_EPOCH,
    }
}

/// What an operator asked of one peer's pull, until its loop takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Pull again from sequence 0.
    pub from_start: bool,
}

/// Operator decisions about peers: blocked agencies and pending sync-now requests.
#[derive(Debug)]
pub struct PeerControls {
    blocked: RwLock<BTreeMap<AgencyId, SystemTime>>,
    /// Held while a block or unblock is written, so the store and the map agree.
    writing: Mutex<()>,
    requests: Mutex<BTreeMap<AgencyId, SyncRequest>>,
    /// Bumped on every change, to wake streams and loops that wait on a decision.
    changed: watch::Sender<u64>,
}

impl Default for PeerControls {
    fn default() -> Self {
        PeerControls {
            blocked: RwLock::default(),
            writing: Mutex::default(),
            requests: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl PeerControls {
    /// The blocks persisted in `store`.
    pub fn load(store: &RecordStore<AnyEngine>) -> Result<PeerControls, StoreError> {
        let controls = PeerControls::default();
        {
            let mut blocked = controls.blocked.write().expect("lock");
            for (name, value) in store.meta_list(BLOCKED_PREFIX)? {
                let raw = name.strip_prefix(BLOCKED_PREFIX).unwrap_or(&name);
                match raw.parse::<AgencyId>() {
                    Ok(agency) => {
                        tracing::info!(peer = %agency, "peer blocked by an operator");
                        blocked.insert(agency, decode_block(&value));
                    }
                    Err(e) => tracing::warn!(name, error = %e, "ignoring a malformed block entry"),
                }
            }
        }
        Ok(controls)
    }

    pub fn is_blocked(&self, agency: &AgencyId) -> bool {
        self.blocked.read().expect("lock").contains_key(agency)
    }

    /// Since when `agency` is blocked, if it is.
    pub fn blocked_since(&self, agency: &AgencyId) -> Option<SystemTime> {
        self.blocked.read().expect("lock").get(agency).copied()
    }

    pub fn blocked(&self) -> Vec<(AgencyId, SystemTime)> {
        let b = self.blocked.read().expect("lock");
        b.iter().map(|(a, t)| (a.clone(), *t)).collect()
    }

    /// Blocks `agency`, durably, then everywhere at once; false when it already was.
    pub fn block(
        &self,
        store: &RecordStore<AnyEngine>,
        agency: &AgencyId,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().expect("lock");
        if self.is_blocked(agency) {
            return Ok(false);
        }
        let now = SystemTime::now();
        store.meta_put(&blocked_name(agency), &encode_block(now))?;
        store.flush()?;
        self.blocked
            .write()
            .expect("lock")
            .insert(agency.clone(), now);
        self.bump();
        Ok(true)
    }

    /// Lifts the block on `agency`, durably; false when it was not blocked.
    pub fn unblock(
        &self,
        store: &RecordStore<AnyEngine>,
        agency: &AgencyId,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().expect("lock");
        if !self.is_blocked(agency) {
            return Ok(false);
        }
        store.meta_delete(&blocked_name(agency))?;
        store.flush()?;
        self.blocked.write().expect("lock").remove(agency);
        self.bump();
        Ok(true)
    }

    /// Asks the pull loops of `peers` to reconnect at once (and to start from 0).
    pub fn request_sync(&self, peers: &[AgencyId], from_start: bool) {
        {
            let mut r = self.requests.lock().expect("lock");
            for p in peers {
                r.entry(p.clone()).or_default().from_start |= from_start;
            }
        }
        self.bump();
    }

    /// The pending request for `agency`'s pull, which is then no longer pending.
    pub fn take_request(&self, agency: &AgencyId) -> Option<SyncRequest> {
        self.requests.lock().expect("lock").remove(agency)
    }

    fn has_request(&self, agency: &AgencyId) -> bool {
        self.requests.lock().expect("lock").contains_key(agency)
    }

    /// Wakes on every decision; see [`PeerControls::operator_event`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Resolves once `agency` is blocked or has a sync request pending. `rx` must come from
    /// [`PeerControls::subscribe`] before the caller last looked, so no decision is missed.
    pub async fn operator_event(&self, agency: &AgencyId, rx: &mut watch::Receiver<u64>) {
        loop {
            if self.is_blocked(agency) || self.has_request(agency) {
                return;
            }
            if rx.changed().await.is_err() {
                // the sender lives as long as self: unreachable, but never spin
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once `agency` is blocked.
    pub async fn until_blocked(&self, agency: &AgencyId) {
        let mut rx = self.subscribe();
        loop {
            if self.is_blocked(agency) {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Why an Admin call failed; mapped to a gRPC status in one place.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {why}")]
    BadAgency { field: &'static str, why: String },
    #[error("{0} is this node's own agency")]
    OwnAgency(AgencyId),
    #[error("{0} is neither a peer nor a trusted agency of this node")]
    Unknown(AgencyId),
    #[error("{0} is not a peer of this node")]
    NotPeer(AgencyId),
    #[error("this node does not pull from {0}: its [[peers]] entry has no endpoint")]
    NotPulled(AgencyId),
    #[error("{0} is blocked: unblock it first")]
    Blocked(AgencyId),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("worker failed: {0}")]
    Worker(String),
}

impl From<AdminError> for Status {
    fn from(e: AdminError) -> Status {
        match e {
            AdminError::BadAgency { field, why } => crate::error::invalid_field(field, why),
            AdminError::OwnAgency(_) => crate::error::invalid_field("agency", e.to_string()),
            AdminError::Unknown(_) | AdminError::NotPeer(_) => Status::not_found(e.to_string()),
            AdminError::NotPulled(_) | AdminError::Blocked(_) => {
                Status::failed_precondition(e.to_string())
            }
            AdminError::Store(ref s) => {
                tracing::error!(error = %s, "store error");
                Status::unavailable(e.to_string())
            }
            AdminError::Worker(_) => {
                tracing::error!(error = %e, "admin worker failed");
                Status::internal(e.to_string())
            }
        }
    }
}

fn parse_agency(field: &'static str, s: &str) -> Result<AgencyId, AdminError> {
    s.parse()
        .map_err(|e: passerelle_model::IdError| AdminError::BadAgency {
            field,
            why: e.to_string(),
        })
}

fn caller<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<PeerInfo>()
        .map(|p| p.identity.uri())
        .unwrap_or_default()
}

pub struct AdminService {
    node: Arc<Node>,
    peers: Arc<PeerStates>,
    controls: Arc<PeerControls>,
    /// Configured peers and their endpoints (None: this node only serves them).
    configured: BTreeMap<AgencyId, Option<String>>,
    certs: Arc<Certificates>,
    started: Instant,
}

impl AdminService {
    pub fn new(
        node: Arc<Node>,
        cfg: &NodeConfig,
        peers: Arc<PeerStates>,
        controls: Arc<PeerControls>,
        certs: Arc<Certificates>,
    ) -> Self {
        AdminService {
            node,
            peers,
            controls,
            configured: cfg
                .peers
                .iter()
                .map(|p| (p.agency.clone(), p.endpoint.clone()))
                .collect(),
            certs,
            started: Instant::now(),
        }
    }

    fn known(&self, agency: &AgencyId) -> bool {
        self.configured.contains_key(agency) || self.node.trust().get(agency).is_some()
    }

    /// Own node certificate, own CA and partners' CAs, as the last (re)load found them.
    fn certificates(&self, now: SystemTime) -> Vec<pb::CertificateStatus> {
        let own = self.node.agency().to_string();
        let mut certs = self.certs.snapshot();
        // own certificates first, then partners by agency
        certs.sort_by_key(|c| (c.kind != "node", c.kind != "ca", c.subject.clone()));
        certs
            .into_iter()
            .map(|c| pb::CertificateStatus {
                days_left: c.days_left(now),
                not_after: Some(c.not_after.into()),
                agency: if c.kind == "partner_ca" {
                    c.subject.clone()
                } else {
                    own.clone()
                },
                kind: c.kind.into(),
                subject: c.subject,
            })
            .collect()
    }

    fn peer_status(
        &self,
        s: Option<PeerStatus>,
        agency: &AgencyId,
        now: SystemTime,
    ) -> pb::PeerStatus {
        let blocked_since = self.controls.blocked_since(agency);
        let Some(s) = s else {
            // a partner this node only serves: no pull of ours to describe
            return pb::PeerStatus {
                agency: agency.to_string(),
                state: if blocked_since.is_some() {
                    "blocked"
                } else {
                    "serve_only"
                }
                .into(),
                state_since: blocked_since.map(Into::into),
                ..Default::default()
            };
        };
        // the loop notices a block within moments; status says it at once
        let (state, since) = match blocked_since {
            Some(t) => ("blocked", t),
            None => (s.state.as_str(), s.state_since),
        };
        let lag_seconds = if state == "live" {
            Some(0)
        } else {
            s.caught_up_at
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs())
        };
        pb::PeerStatus {
            agency: s.agency.clone(),
            endpoint: s.endpoint.clone(),
            state: state.into(),
            last_error: s.last_error.clone().unwrap_or_default(),
            state_since: Some(since.into()),
            cursor: s.cursor,
            lag_records: s.lag(),
            last_success: s.last_success.map(Into::into),
            remote_head: s.remote_head,
            lag_seconds,
            pulls: true,
            applied: s.applied,
            ignored: s.ignored,
            refused: s.refused,
        }
    }
}

/// Record counts by origin and kind: own agency always, others when they hold records;
/// records of origins no longer trusted are counted under `other`.
fn counts(node: &Node, origins: &BTreeSet<AgencyId>) -> Result<Vec<pb::KindCount>, StoreError> {
    let store = node.store();
    let mut out = Vec::new();
    for kind in [Kind::Vacancy, Kind::Shortage, Kind::Supply] {
        let total = store.count(kind)?;
        let mut seen = 0;
        for origin in origins {
            let n = store.count_origin(kind, origin)?;
            seen += n;
            if n > 0 || origin == node.agency() {
                out.push(pb::KindCount {
                    origin: origin.to_string(),
                    kind: kind.to_string(),
                    records: n,
                });
            }
        }
        if total > seen {
            out.push(pb::KindCount {
                origin: "other".into(),
                kind: kind.to_string(),
                records: total - seen,
            });
        }
    }
    out.sort_by(|a, b| {
        let own = |c: &pb::KindCount| c.origin != node.agency().as_str();
        (own(a), &a.origin).cmp(&(own(b), &b.origin))
    });
    Ok(out)
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let now = SystemTime::now();
        let mut origins: BTreeSet<AgencyId> = self.node.trust().agencies().cloned().collect();
        origins.extend(self.configured.keys().cloned());
        let node = self.node.clone();
        let (counts, store_bytes) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((counts(&node, &origins)?, node.store().size_on_disk()?))
        })
        .await
        .map_err(|e| AdminError::Worker(e.to_string()))?
        .map_err(AdminError::from)?;

        let mut pulled: BTreeMap<String, PeerStatus> = self
            .peers
            .snapshot()
            .into_iter()
            .map(|s| (s.agency.clone(), s))
            .collect();
        let mut agencies: BTreeSet<AgencyId> = self.configured.keys().cloned().collect();
        // blocked agencies that are no peer (a partner's analysts, say) are listed too
        agencies.extend(self.controls.blocked().into_iter().map(|(a, _)| a));
        let peers = agencies
            .iter()
            .map(|a| self.peer_status(pulled.remove(a.as_str()), a, now))
            .collect();

        let c = &self.node.counters;
        Ok(Response::new(pb::StatusResponse {
            agency: self.node.agency().to_string(),
            node_version: crate::NODE_VERSION.into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            head_seq: self.node.store().head_seq(),
            counts,
            peers,
            certificates: self.certificates(now),
            store_bytes,
            applied: c.applied.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
            refused: c.refused().values().sum(),
            server_time: Some(now.into()),
            store_write_failure: self.node.write_failure().unwrap_or_default(),
        }))
    }

    async fn sync_now(
        &self,
        req: Request<pb::SyncNowRequest>,
    ) -> Result<Response<pb::SyncNowResponse>, Status> {
        let by = caller(&req);
        let r = req.into_inner();
        let requested_at = SystemTime::now();
        let targets: Vec<AgencyId> = if r.peer.is_empty() {
            self.configured
                .iter()
                .filter(|(_, endpoint)| endpoint.is_some())
                .map(|(a, _)| a.clone())
                .collect()
        } else {
            let agency = parse_agency("peer", &r.peer)?;
            match self.configured.get(&agency) {
                None => return Err(AdminError::NotPeer(agency).into()),
                Some(None) => return Err(AdminError::NotPulled(agency).into()),
                Some(Some(_)) if self.controls.is_blocked(&agency) => {
                    return Err(AdminError::Blocked(agency).into())
                }
                Some(Some(_)) => vec![agency],
            }
        };
        let (blocked, woken): (Vec<AgencyId>, Vec<AgencyId>) = targets
            .into_iter()
            .partition(|a| self.controls.is_blocked(a));
        self.controls.request_sync(&woken, r.from_start);
        for a in &woken {
            tracing::info!(peer = %a, from_start = r.from_start, by, "sync requested");
        }
        Ok(Response::new(pb::SyncNowResponse {
            peers: woken.iter().map(ToString::to_string).collect(),
            blocked: blocked.iter().map(ToString::to_string).collect(),
            requested_at: Some(requested_at.into()),
        }))
    }

    async fn block_peer(
        &self,
        req: Request<pb::PeerRequest>,
    ) -> Result<Response<pb::PeerResponse>, Status> {
        let by = caller(&req);
        let agency = parse_agency("agency", &req.into_inner().agency)?;
        if &agency == self.node.agency() {
            return Err(AdminError::OwnAgency(agency).into());
        }
        if !self.known(&agency) && !self.controls.is_blocked(&agency) {
            return Err(AdminError::Unknown(agency).into());
        }
        let (node, controls, a) = (self.node.clone(), self.controls.clone(), agency.clone());
        let changed = tokio::task::spawn_blocking(move || controls.block(node.store(), &a))
            .await
            .map_err(|e| AdminError::Worker(e.to_string()))?
            .map_err(AdminError::from)?;
        if changed {
            tracing::warn!(peer = %agency, by, "peer blocked");
        }
        Ok(Response::new(pb::PeerResponse { changed }))
    }

    async fn unblock_peer(
        &self,
        req: Request<pb::PeerRequest>,
    ) -> Result<Response<pb::PeerResponse>, Status> {
        let by = caller(&req);
        let agency = parse_agency("agency", &req.into_inner().agency)?;
        if !self.known(&agency) && !self.controls.is_blocked(&agency) {
            return Err(AdminError::Unknown(agency).into());
        }
        let (node, controls, a) = (self.node.clone(), self.controls.clone(), agency.clone());
        let changed = tokio::task::spawn_blocking(move || controls.unblock(node.store(), &a))
            .await
            .map_err(|e| AdminError::Worker(e.to_string()))?
            .map_err(AdminError::from)?;
        if changed {
            tracing::warn!(peer = %agency, by, "peer unblocked");
        }
        Ok(Response::new(pb::PeerResponse { changed }))
    }

    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(
        &self,
        _req: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        Ok(Response::new(crate::backup::backup_stream(
            self.node.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_store::MemEngine;

    fn store() -> RecordStore<AnyEngine> {
        RecordStore::open(AnyEngine::from(MemEngine::new())).unwrap()
    }

    #[test]
    fn blocks_persist_and_lift() {
        let s = store();
        let vdab: AgencyId = "be.vdab".parse().unwrap();
        let ft: AgencyId = "fr.francetravail".parse().unwrap();
        let c = PeerControls::load(&s).unwrap();
        assert!(!c.is_blocked(&vdab));
        assert!(c.block(&s, &vdab).unwrap());
        assert!(!c.block(&s, &vdab).unwrap(), "already blocked");
        assert!(c.block(&s, &ft).unwrap());
        let since = c.blocked_since(&vdab).unwrap();

        let again = PeerControls::load(&s).unwrap();
        assert!(again.is_blocked(&vdab) && again.is_blocked(&ft));
        // microsecond precision survives the round trip
        let back = again.blocked_since(&vdab).unwrap();
        let diff = since.duration_since(back).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_micros(1), "{diff:?}");

        assert!(again.unblock(&s, &vdab).unwrap());
        assert!(!again.unblock(&s, &vdab).unwrap());
        let third = PeerControls::load(&s).unwrap();
        assert!(!third.is_blocked(&vdab) && third.is_blocked(&ft));
    }

    #[test]
    fn an_unreadable_block_entry_still_blocks() {
        let s = store();
        s.meta_put("blocked/be.vdab", &[99, 1, 2]).unwrap();
        s.meta_put("blocked/NOT AN AGENCY", &encode_block(SystemTime::now()))
            .unwrap();
        let c = PeerControls::load(&s).unwrap();
        assert!(c.is_blocked(&"be.vdab".parse().unwrap()));
        assert_eq!(c.blocked().len(), 1);
    }

    #[tokio::test]
    async fn waiters_wake_on_block_and_requests() {
        let s = store();
        let c = Arc::new(PeerControls::default());
        let vdab: AgencyId = "be.vdab".parse().unwrap();
        let ft: AgencyId = "fr.francetravail".parse().unwrap();
        let mut rx = c.subscribe();
        // a request for another peer does not wake this one
        c.request_sync(std::slice::from_ref(&ft), false);
        let woke =
            tokio::time::timeout(Duration::from_millis(50), c.operator_event(&vdab, &mut rx)).await;
        assert!(woke.is_err());
        let waiter = tokio::spawn({
            let (c, v) = (c.clone(), vdab.clone());
            async move { c.until_blocked(&v).await }
        });
        c.request_sync(std::slice::from_ref(&vdab), true);
        c.operator_event(&vdab, &mut rx).await;
        assert_eq!(
            c.take_request(&vdab),
            Some(SyncRequest { from_start: true })
        );
        assert_eq!(c.take_request(&vdab), None);
        assert!(!waiter.is_finished());
        c.block(&s, &vdab).unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the block")
            .unwrap();
    }
}
