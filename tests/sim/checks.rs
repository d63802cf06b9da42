//! The invariants of PRODUCT.md section 4 that need a whole node or the whole federation:
//! store consistency, signatures, acknowledged writes at their origin, cursors never ahead
//! of durable state, lag back to zero, convergence record by record and by digest.

use std::fmt::Write as _;

use passerelle_model::envelope::{encode_payload, Seal};
use passerelle_model::{AgencyId, RecordKey};
use passerelle_node::{Node, OutboundPolicy};
use passerelle_store::StoredRecord;

use super::{err, is_open_vacancy, Res, World};

/// Whether `policy` (of `server`) lets a record with this key through; the simulation
/// uses no content filters, so the key decides.
fn policy_allows(policy: &OutboundPolicy, server: &AgencyId, key: &RecordKey) -> bool {
    policy.kinds.contains(&key.kind) && (policy.relay || &key.origin == server)
}

/// Verifies a stored version's seal against its origin's key in the node's trust store.
fn verify(node: &Node, s: &StoredRecord) -> Res {
    let seal = Seal::decode(&s.seal).map_err(err(format!("{}: seal", s.key)))?;
    let Some(public) = node.trust().signing_key(&s.key.origin, &seal.key_id) else {
        bail!(
            "{} holds {} signed with key {} unknown to its trust store",
            node.agency(),
            s.key,
            seal.key_id
        );
    };
    let payload = encode_payload(&s.key, s.revision, s.updated_at_micros, &s.content);
    if !passerelle_pki::verify_signature(&public, &payload, &seal.signature) {
        bail!(
            "{} holds {} revision {} whose signature does not verify",
            node.agency(),
            s.key,
            s.revision
        );
    }
    Ok(())
}

impl World<'_> {
    /// Consistency of the store and signatures of everything it holds.
    pub(super) fn check_node(&self, i: usize) -> Res {
        let node = self.node(i);
        let report = node
            .store()
            .check_consistency()
            .map_err(err("check_consistency"))?;
        if !report.is_ok() {
            bail!("{}: store inconsistent: {report}", self.name(i));
        }
        for s in node.store().iter(None) {
            verify(node, &s.map_err(err("iter"))?)?;
        }
        Ok(())
    }

    /// Every acknowledged write of origin `i` is at its origin, at the acknowledged revision.
    pub(super) fn check_origin_acks(&self, i: usize) -> Res {
        for (key, a) in self.acked.iter().filter(|(_, a)| a.origin == i) {
            let held = self.stored(i, key)?.map(|s| s.revision);
            let purged = self.nodes[i].purged.get(key) == Some(&a.revision) && a.tombstone;
            if held != Some(a.revision) && !(held.is_none() && purged) {
                bail!(
                    "lost acknowledged write: {key} acknowledged at revision {}, its origin holds {held:?}",
                    a.revision
                );
            }
        }
        Ok(())
    }

    /// Cursor never ahead of durable state: for each server `p` pulls from, every version the
    /// server's log holds at or below `p`'s persisted cursor that the policy lets through is
    /// at `p` at that revision or later (or purged there at that revision or later).
    pub(super) fn check_cursors(&self, p: usize) -> Res {
        for link in self.links.iter().filter(|l| l.puller == p) {
            let s = link.server;
            let server = &self.nodes[s].agency;
            let Some(c) =
                self.with_store(p, |st| st.cursor(server.as_str()).map_err(err("cursor")))?
            else {
                continue;
            };
            let entries = self.with_store(s, |st| {
                let mut out = Vec::new();
                for e in st.log_since(0, usize::MAX).map_err(err("log"))? {
                    if e.seq > c {
                        break;
                    }
                    out.push(e);
                }
                Ok(out)
            })?;
            for e in entries {
                if !policy_allows(&link.policy, server, &e.key) {
                    continue;
                }
                let held = self.stored(p, &e.key)?.map_or(0, |x| x.revision);
                let purged = self.nodes[p].purged.get(&e.key).copied().unwrap_or(0);
                if held.max(purged) < e.revision {
                    bail!(
                        "cursor ahead of durable state: {} holds cursor {c} for {server}, whose log has {} revision {} at seq {}, but holds revision {held}",
                        self.name(p),
                        e.key,
                        e.revision,
                        e.seq
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn quiescent(&self) -> Res<bool> {
        for l in &self.links {
            let Some(sess) = &l.session else {
                return Ok(false);
            };
            let head = self.node(l.server).store().head_seq();
            if !sess.inflight.is_empty() || sess.waiting_on != Some(head) {
                return Ok(false);
            }
            let server = self.nodes[l.server].agency.as_str();
            let c = self
                .node(l.puller)
                .store()
                .cursor(server)
                .map_err(err("cursor"))?;
            if c != Some(head) {
                bail!(
                    "{}: the session is caught up but the persisted cursor is {c:?}, the head {head}",
                    self.name(l.puller)
                );
            }
        }
        Ok(true)
    }

    pub(super) fn link_report(&self) -> Res<String> {
        let mut out = String::new();
        for (i, l) in self.links.iter().enumerate() {
            let server = self.nodes[l.server].agency.as_str();
            let head = self.node(l.server).store().head_seq();
            let purged = self.node(l.server).store().purged_through_seq();
            let c = self
                .node(l.puller)
                .store()
                .cursor(server)
                .map_err(err("cursor"))?;
            let state = match &l.session {
                None => format!("no session (next attempt at {})", l.next_attempt),
                Some(s) => format!(
                    "session {} server cursor {} in flight {} waiting {:?}{}",
                    s.id,
                    s.cursor,
                    s.inflight.len(),
                    s.waiting_on,
                    if s.spinning { " SPINNING" } else { "" }
                ),
            };
            let _ = writeln!(
                out,
                "  {}: cursor {c:?}, server head {head}, purged through {purged}; {state}",
                self.link_name(i)
            );
        }
        Ok(out)
    }

    pub(super) fn final_checks(&mut self) -> Res {
        for i in 0..self.nodes.len() {
            self.check_node(i)?;
            self.check_cursors(i)?;
            self.check_origin_acks(i)?;
            self.check_counter(i)?;
        }
        for l in 0..self.links.len() {
            let (p, server) = (
                self.links[l].puller,
                &self.nodes[self.links[l].server].agency,
            );
            let marked = self
                .node(p)
                .snapshot_pending(server)
                .map_err(err("snapshot_pending"))?;
            if marked || self.links[l].snapshot.is_some() {
                bail!(
                    "{}: caught up, yet a snapshot is still under way (marked: {marked})",
                    self.link_name(l)
                );
            }
        }
        self.check_convergence()?;
        let groups = self.digest_groups();
        if !self.any_purge {
            self.check_digests(&groups, "")?;
        }
        // the retention horizon passes everywhere: what is left must still be equal
        for i in 0..self.nodes.len() {
            self.node(i)
                .purge_tombstones(0, i64::MAX)
                .map_err(err("final purge"))?;
            let report = self
                .node(i)
                .store()
                .check_consistency()
                .map_err(err("check"))?;
            if !report.is_ok() {
                bail!("{}: store inconsistent after purge: {report}", self.name(i));
            }
        }
        self.check_digests(&groups, " once every tombstone is purged")
    }

    /// Nodes allowed the same records, which must end with equal digests.
    pub(super) fn digest_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..self.nodes.len() {
            match groups
                .iter_mut()
                .find(|g| self.nodes[g[0]].allowed == self.nodes[i].allowed)
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

    pub(super) fn check_digests(&self, groups: &[Vec<usize>], when: &str) -> Res {
        for g in groups {
            let first = self.node(g[0]).store().digest().map_err(err("digest"))?;
            for &i in &g[1..] {
                let d = self.node(i).store().digest().map_err(err("digest"))?;
                if d != first {
                    bail!(
                        "no convergence{when}: digest of {} is {d} ({} records), of {} {first} ({} records)",
                        self.name(i),
                        d.records,
                        self.name(g[0]),
                        first.records
                    );
                }
            }
        }
        Ok(())
    }

    /// Record by record: every node holds exactly what its origin holds of every key it is
    /// allowed to receive (or purged its tombstone), nothing it is not allowed, nothing
    /// nobody wrote, and no OPEN copy of a withdrawn vacancy.
    pub(super) fn check_convergence(&self) -> Res {
        for x in 0..self.nodes.len() {
            for s in self.node(x).store().iter(None) {
                let s = s.map_err(err("iter"))?;
                if !self.acked.contains_key(&s.key) {
                    bail!(
                        "{} holds {}, which no acknowledged write produced",
                        self.name(x),
                        s.key
                    );
                }
            }
        }
        for (key, a) in &self.acked {
            let reference = self.stored(a.origin, key)?;
            for x in 0..self.nodes.len() {
                let allowed = self.nodes[x]
                    .allowed
                    .contains(&(key.origin.clone(), key.kind));
                let held = self.stored(x, key)?;
                let who = self.name(x);
                if let Some(h) = &held {
                    if a.tombstone && is_open_vacancy(h)? == Some(true) {
                        bail!("{who} shows {key} OPEN (revision {}) but its origin withdrew it at revision {}", h.revision, a.revision);
                    }
                }
                match (&held, &reference) {
                    (Some(_), _) if !allowed => {
                        bail!("{who} holds {key}, which the policies do not let reach it")
                    }
                    (None, _) if !allowed => {}
                    (Some(h), Some(r)) => {
                        if h.revision != r.revision || h.content != r.content || h.seal != r.seal {
                            bail!(
                                "no convergence on {key}: {who} holds revision {}, its origin revision {}",
                                h.revision,
                                r.revision
                            );
                        }
                    }
                    (Some(h), None) => {
                        // a purge before delivery may leave an older tombstone behind
                        let older_tomb = self.params.quirks.purge_undelivered
                            && is_open_vacancy(h)? == Some(false);
                        if !(a.tombstone && (h.revision == a.revision || older_tomb)) {
                            bail!(
                                "{who} holds {key} revision {}, whose origin purged revision {}",
                                h.revision,
                                a.revision
                            );
                        }
                    }
                    (None, _) => {
                        let purged = self.nodes[x].purged.get(key) == Some(&a.revision)
                            || self.params.quirks.purge_undelivered;
                        if !(a.tombstone && purged) {
                            bail!(
                                "lost acknowledged write: {who} lacks {key} revision {}",
                                a.revision
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
