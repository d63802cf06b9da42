//! The `Federation` service: Hello, and Pull streaming the sync log to a listed peer under its outbound policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use passerelle_model::AgencyId;
use passerelle_node::{Node, OutboundPolicy};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{signed_out, PROTOCOL_VERSION};
use crate::admin::PeerControls;
use crate::authz::PeerInfo;
use crate::limits::PeerLimits;
use crate::pb::v1 as pb;

pub struct FederationService {
    node: Arc<Node>,
    policies: Arc<HashMap<AgencyId, OutboundPolicy>>,
    max_records: u32,
    max_bytes: u32,
    stop: tokio::sync::watch::Receiver<bool>,
    controls: Arc<PeerControls>,
    limits: Arc<PeerLimits>,
    heartbeat: Duration,
}

impl FederationService {
    /// `stop` turning true ends every open `follow` stream (shutdown).
    pub fn new(
        node: Arc<Node>,
        cfg: &passerelle_node::NodeConfig,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let policies = cfg
            .peers
            .iter()
            .map(|p| (p.agency.clone(), OutboundPolicy::from(p)))
            .collect();
        FederationService {
            node,
            policies: Arc::new(policies),
            max_records: cfg.sync.batch_records,
            max_bytes: cfg.sync.batch_bytes,
            stop,
            controls: Arc::default(),
            limits: PeerLimits::from_config(&cfg.limits),
            heartbeat: Duration::from_secs(cfg.sync.heartbeat_secs),
        }
    }

    /// Counts open streams against these limits (shared with the router layer and metrics).
    pub fn with_limits(mut self, limits: Arc<PeerLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// Obeys these operator decisions: a blocked peer's open streams end at once.
    pub fn with_controls(mut self, controls: Arc<PeerControls>) -> Self {
        self.controls = controls;
        self
    }
}

fn caller<T>(req: &Request<T>) -> Result<AgencyId, Status> {
    req.extensions()
        .get::<PeerInfo>()
        .map(|p| p.identity.agency.clone())
        .ok_or_else(|| Status::unauthenticated("no client certificate identity"))
}

#[tonic::async_trait]
impl pb::federation_server::Federation for FederationService {
    async fn hello(
        &self,
        req: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let peer = caller(&req)?;
        let hello = req.into_inner();
        if hello.agency != peer.as_str() {
            return Err(Status::permission_denied(format!(
                "hello names {} but the certificate is {peer}'s",
                hello.agency
            )));
        }
        tracing::debug!(%peer, version = hello.node_version, "hello");
        Ok(Response::new(pb::HelloResponse {
            agency: self.node.agency().to_string(),
            node_version: crate::NODE_VERSION.into(),
            protocol_version: PROTOCOL_VERSION,
            head_seq: self.node.durable_head(),
        }))
    }

    type PullStream = ReceiverStream<Result<pb::PullBatch, Status>>;

    async fn pull(
        &self,
        req: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let peer = caller(&req)?;
        let policy = self.policies.get(&peer).cloned().ok_or_else(|| {
            Status::permission_denied(format!("{peer} is not a peer of this node"))
        })?;
        let r = req.into_inner();
        // held by the stream task until the stream ends
        let permit = self.limits.open_stream(&peer).inspect_err(|_| {
            tracing::warn!(%peer, "pull refused: too many open streams");
        })?;
        let heartbeat = self.heartbeat;
        let purged = self.node.store().purged_through_seq();
        if r.since > 0 && r.since < purged {
            return Err(Status::failed_precondition(format!(
                "cursor {} is older than the retention horizon (tombstones purged through {purged}): resync from 0",
                r.since
            )));
        }
        let max_records = if r.max_records == 0 {
            self.max_records
        } else {
            r.max_records.min(self.max_records)
        } as usize;
        let max_bytes = if r.max_bytes == 0 {
            self.max_bytes
        } else {
            r.max_bytes.min(self.max_bytes)
        } as usize;
        let node = self.node.clone();
        let mut stop = self.stop.clone();
        let (tx, rx) = mpsc::channel(4);
        tracing::info!(%peer, since = r.since, follow = r.follow, "pull started");
        let (controls, blocked, blocked_tx) = (self.controls.clone(), peer.clone(), tx.clone());
        let stream = async move {
            let mut cursor = r.since;
            // a purge while the stream runs may remove tombstones ahead of the cursor
            let purged_at_start = node.store().purged_through_seq();
            let mut head = node.subscribe();
            let mut announced = false;
            loop {
                head.borrow_and_update();
                let n = node.clone();
                let p = policy.clone();
                let purged = node.store().purged_through_seq();
                if purged > purged_at_start && cursor < purged {
                    let _ = tx
                        .send(Err(Status::failed_precondition(format!(
                            "tombstones were purged through {purged} ahead of cursor {cursor}: resync from 0"
                        ))))
                        .await;
                    break;
                }
                let batch = tokio::task::spawn_blocking(move || {
                    n.pull_batch(cursor, max_records, max_bytes, &p)
                })
                .await;
                let batch = match batch {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(crate::error::from_node(e))).await;
                        break;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("worker failed: {e}"))))
                            .await;
                        break;
                    }
                };
                let caught_up = batch.cursor >= batch.head_seq;
                if batch.cursor > cursor || !batch.records.is_empty() || (caught_up && !announced) {
                    let msg = pb::PullBatch {
                        records: batch.records.into_iter().map(signed_out).collect(),
                        cursor: batch.cursor,
                        head_seq: batch.head_seq,
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        break;
                    }
                }
                cursor = batch.cursor;
                if caught_up {
                    announced = true;
                    if !r.follow {
                        break;
                    }
                    let quiet = tokio::select! {
                        changed = head.changed() => if changed.is_err() { break } else { false },
                        _ = tx.closed() => break,
                        _ = stop.wait_for(|s| *s) => break,
                        _ = tokio::time::sleep(heartbeat) => true,
                    };
                    if quiet {
                        // nothing new: an empty batch tells the peer the stream is alive
                        let beat = pb::PullBatch {
                            records: Vec::new(),
                            cursor,
                            head_seq: node.durable_head().max(cursor),
                        };
                        if tx.send(Ok(beat)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            tracing::info!(%peer, cursor, "pull ended");
        };
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = stream => {}
                () = controls.until_blocked(&blocked) => {
                    tracing::info!(peer = %blocked, "pull ended: peer blocked");
                    let refused =
                        Status::permission_denied(format!("{blocked} is blocked on this node"));
                    // a client that stopped reading must not keep the stream open
                    let sent = blocked_tx.send(Err(refused));
                    let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
