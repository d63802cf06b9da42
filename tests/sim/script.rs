//! Scripted scenarios on the same node core, for orders of events too precise to wait for a
//! seed: one Pull session at a time, run to its end the way src/federation runs it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use passerelle_model::AgencyId;
use passerelle_node::sync::Snapshot;
use passerelle_node::{Node, OutboundPolicy};
use passerelle_store::{AnyEngine, MemEngine};

use crate::pki::Federation;
use crate::world::Res;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Caught up with the server's head (and, after a snapshot, stale copies dropped).
    Live,
    /// FAILED_PRECONDITION: the puller's cursor was reset to 0.
    Resync,
    /// Cut off (a reconnect) after the batches it was allowed.
    Interrupted,
    /// The server loop found nothing after the cursor, yet the cursor is below its head:
    /// the real loop goes round again at once, for as long as the log does not grow.
    Spinning { cursor: u64, head: u64 },
}

/// Nodes of a federation, each on its own memory engine.
pub struct Nodes<'f> {
    fed: &'f Federation,
    pub nodes: Vec<Node>,
    engines: Vec<MemEngine>,
    /// The snapshot under way of each (puller, server) peer loop, kept across its sessions.
    snapshots: RefCell<BTreeMap<(usize, usize), Snapshot>>,
}

impl<'f> Nodes<'f> {
    pub fn open(fed: &'f Federation) -> Nodes<'f> {
        let engines: Vec<MemEngine> = fed.configs.iter().map(|_| MemEngine::new()).collect();
        let nodes = fed
            .configs
            .iter()
            .zip(&engines)
            .map(|(c, e)| Node::open_on(c, AnyEngine::Mem(e.clone())).expect("open node"))
            .collect();
        Nodes {
            fed,
            nodes,
            engines,
            snapshots: RefCell::default(),
        }
    }

    /// Stops node `i` and opens it again on the same engine: its peer loops start afresh, with
    /// nothing in memory.
    pub fn restart(&mut self, i: usize) {
        let node = Node::open_on(
            &self.fed.configs[i],
            AnyEngine::Mem(self.engines[i].clone()),
        )
        .expect("reopen node");
        self.nodes[i] = node;
        self.snapshots.borrow_mut().retain(|(p, _), _| *p != i);
    }

    /// `server`'s outbound policy for `puller`, from its node.toml.
    pub fn policy(&self, server: usize, puller: usize) -> OutboundPolicy {
        let p = self.fed.agency(puller);
        let entry = self.fed.configs[server]
            .peers
            .iter()
            .find(|e| e.agency == p)
            .expect("peer entry");
        OutboundPolicy::from(entry)
    }

    pub fn agency(&self, i: usize) -> AgencyId {
        self.fed.agency(i)
    }

    /// One Pull session of `puller` from `server` until it is caught up, delivering at most
    /// `max_batches` batches of at most `max_records` records.
    pub fn session(
        &self,
        puller: usize,
        server: usize,
        max_records: usize,
        max_batches: usize,
    ) -> Res<End> {
        let (p, s) = (&self.nodes[puller], &self.nodes[server]);
        let peer = self.agency(server);
        let policy = self.policy(server, puller);
        let mut snapshots = self.snapshots.borrow_mut();
        let link = (puller, server);
        let start = p
            .pull_start(&peer, snapshots.contains_key(&link))
            .map_err(|e| e.to_string())?;
        if start.new_snapshot {
            snapshots.insert(link, Snapshot::default());
        }
        let since = start.since;
        if since > 0 && since < s.store().purged_through_seq() {
            p.restart_snapshot(&peer).map_err(|e| e.to_string())?;
            return Ok(End::Resync);
        }
        let (mut cursor, mut delivered) = (since, 0);
        loop {
            let batch = s
                .pull_batch(cursor, max_records, 1 << 20, &policy)
                .map_err(|e| e.to_string())?;
            let caught_up = batch.cursor >= batch.head_seq;
            // the first caught-up batch is always sent (announced), and the session ends there
            let send = batch.cursor > cursor || !batch.records.is_empty() || caught_up;
            if !send && !caught_up {
                return Ok(End::Spinning {
                    cursor,
                    head: batch.head_seq,
                });
            }
            cursor = batch.cursor;
            if send {
                if delivered == max_batches {
                    return Ok(End::Interrupted);
                }
                delivered += 1;
                if let Some(snapshot) = snapshots.get_mut(&link) {
                    snapshot.note(&peer, &batch.records);
                }
                p.apply_from_peer(&peer, &[], batch.records, batch.cursor)
                    .map_err(|e| e.to_string())?;
                if caught_up {
                    if let Some(snapshot) = snapshots.remove(&link) {
                        p.finish_snapshot(&peer, &snapshot)
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            if caught_up {
                return Ok(End::Live);
            }
        }
    }

    /// Sessions until one ends live, at most `rounds` of them; the ends, in order.
    pub fn sync(
        &self,
        puller: usize,
        server: usize,
        max_records: usize,
        rounds: usize,
    ) -> Res<Vec<End>> {
        let mut ends = Vec::new();
        for _ in 0..rounds {
            let end = self.session(puller, server, max_records, usize::MAX)?;
            ends.push(end.clone());
            if end == End::Live {
                break;
            }
        }
        Ok(ends)
    }
}
