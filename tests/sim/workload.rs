//! The simulated agencies' own writes: puts (new, updated, no-op, with expected revision),
//! withdrawals and expiry sweeps, each checked against what the origin acknowledged before.

use passerelle_model::{Kind, Record, RecordKey, VacancyStatus};
use passerelle_node::{decode, NodeError};

use super::{err, Acked, Res, World, SHORTAGE_IDS, SUPPLY_IDS, VACANCY_IDS};
use crate::records::{self, CLOSES_PAST};

impl World<'_> {
    pub(super) fn workload(&mut self) -> Res {
        if !self.rng.chance(550) {
            return Ok(());
        }
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.up(i)).collect();
        if up.is_empty() {
            return Ok(());
        }
        let i = *self.rng.pick(&up);
        match self.rng.below(100) {
            0..=54 => self.op_put(i),
            55..=66 => self.op_withdraw(i),
            67..=78 => self.op_noop(i),
            79..=86 => self.op_expire(i),
            _ => self.op_expected(i),
        }
    }

    pub(super) fn own_key(&mut self, i: usize) -> Res<RecordKey> {
        let (kind, id) = match self.rng.below(10) {
            0..=5 => (Kind::Vacancy, format!("V-{}", self.rng.below(VACANCY_IDS))),
            6..=7 => (
                Kind::Shortage,
                format!("S-{}", self.rng.below(SHORTAGE_IDS)),
            ),
            _ => (Kind::Supply, format!("P-{}", self.rng.below(SUPPLY_IDS))),
        };
        RecordKey::new(self.nodes[i].agency.clone(), kind, id).map_err(err("key"))
    }

    pub(super) fn content(&mut self, key: &RecordKey) -> Record {
        let agency = key.origin.as_str();
        // few variants, so that a put sometimes repeats the stored content
        let variant = self.rng.below(24);
        match key.kind {
            Kind::Vacancy => {
                let status = match self.rng.below(100) {
                    0..=6 => VacancyStatus::Filled,
                    7..=12 => VacancyStatus::Withdrawn,
                    _ => VacancyStatus::Open,
                };
                let expiring = self.rng.chance(250);
                records::vacancy(agency, &key.id, variant, status, expiring)
            }
            Kind::Shortage => records::shortage(agency, &key.id, variant),
            Kind::Supply => records::supply(agency, &key.id, variant),
        }
    }

    pub(super) fn op_put(&mut self, i: usize) -> Res {
        let key = self.own_key(i)?;
        if self.retired.contains(&key) {
            return Ok(());
        }
        let record = self.content(&key);
        self.put(i, key, record, None).map(|_| ())
    }

    pub(super) fn op_expected(&mut self, i: usize) -> Res {
        let key = self.own_key(i)?;
        let Some(a) = self.acked.get(&key).copied() else {
            return Ok(());
        };
        if self.retired.contains(&key) {
            return Ok(());
        }
        let record = self.content(&key);
        let expected = if self.rng.chance(500) {
            a.revision
        } else {
            a.revision + self.rng.range(1, 3)
        };
        self.put(i, key, record, Some(expected)).map(|_| ())
    }

    pub(super) fn op_noop(&mut self, i: usize) -> Res {
        let mine: Vec<RecordKey> = self
            .acked
            .iter()
            .filter(|(k, a)| {
                // purged at the origin: nothing stored to send again
                a.origin == i
                    && !self.retired.contains(*k)
                    && !self.nodes[i].purged.contains_key(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let key = self.rng.pick(&mine).clone();
        // the nightly re-import: the stored content, sent again
        let record = self.node(i).get(&key).map_err(err(&key))?;
        let changed = self.put(i, key.clone(), record, None)?;
        if changed {
            bail!("putting {key} again with its stored content wrote a new version");
        }
        Ok(())
    }

    /// A put through `Node::put`, checked against the model; returns whether it wrote.
    pub(super) fn put(
        &mut self,
        i: usize,
        key: RecordKey,
        record: Record,
        expected: Option<u64>,
    ) -> Res<bool> {
        let prev = self.acked.get(&key).map_or(0, |a| a.revision);
        let stored = self.stored(i, &key)?.map_or(0, |s| s.revision);
        let node = self.node(i);
        let head = node.store().head_seq();
        let result = node.put(record, expected);
        let head_after = node.store().head_seq();
        match result {
            Ok(r) if r.changed => {
                if r.revision != prev + 1 {
                    bail!(
                        "put of {key} acknowledged revision {} after acknowledged revision {prev}: revisions must strictly increase per key",
                        r.revision
                    );
                }
                if head_after != head + 1 {
                    bail!("put of {key} moved the head from {head} to {head_after}");
                }
                self.stats.puts += 1;
                self.ev(format!("{key} put: revision {}", r.revision));
                self.ack(i, &key, r.revision)?;
                Ok(true)
            }
            Ok(r) => {
                if r.revision != prev || head_after != head {
                    bail!(
                        "no-op put of {key} answered revision {} (acknowledged {prev}) and moved the head {head} -> {head_after}",
                        r.revision
                    );
                }
                self.stats.noops += 1;
                self.ev(format!("{key} put: no-op at revision {}", r.revision));
                Ok(false)
            }
            Err(NodeError::RevisionMismatch { .. }) if expected != Some(stored) => {
                if head_after != head {
                    bail!("refused put of {key} moved the head");
                }
                self.stats.mismatches += 1;
                self.ev(format!(
                    "{key} put expecting {expected:?}: ABORTED (stored {stored})"
                ));
                Ok(false)
            }
            Err(e) => bail!("put of {key} (expected {expected:?}, stored {stored}) failed: {e}"),
        }
    }

    /// Takes note of an acknowledged write: what the origin stores now.
    pub(super) fn ack(&mut self, i: usize, key: &RecordKey, revision: u64) -> Res {
        let Some(s) = self.stored(i, key)? else {
            bail!("acknowledged write of {key} missing at its origin");
        };
        if s.revision != revision {
            bail!(
                "{key} acknowledged at revision {revision}, stored at {}",
                s.revision
            );
        }
        let (tombstone, expiring) = match decode(&s).map_err(err(key))? {
            Record::Vacancy(v) => (
                v.status.is_tombstone(),
                v.status == VacancyStatus::Open && v.closes_on == CLOSES_PAST,
            ),
            _ => (false, false),
        };
        self.acked.insert(
            key.clone(),
            Acked {
                origin: i,
                revision,
                tombstone,
                expiring,
            },
        );
        self.note_stored(i, key)
    }

    pub(super) fn op_withdraw(&mut self, i: usize) -> Res {
        let id = format!("V-{}", self.rng.below(VACANCY_IDS));
        let key = RecordKey::new(self.nodes[i].agency.clone(), Kind::Vacancy, id.clone())
            .map_err(err("key"))?;
        let prev = self.acked.get(&key).copied();
        let present = self.stored(i, &key)?.is_some();
        let node = self.node(i);
        let head = node.store().head_seq();
        match (node.withdraw(&id, None), prev) {
            (Ok(r), Some(a)) if r.changed => {
                if a.tombstone || r.revision != a.revision + 1 {
                    bail!("withdraw of {key} ({a:?}) wrote revision {}", r.revision);
                }
                self.stats.withdrawals += 1;
                self.ev(format!("{key} withdrawn: revision {}", r.revision));
                self.ack(i, &key, r.revision)
            }
            (Ok(r), Some(a)) => {
                if !a.tombstone || r.revision != a.revision || node.store().head_seq() != head {
                    bail!(
                        "withdraw of {key} ({a:?}) was a no-op at revision {}",
                        r.revision
                    );
                }
                Ok(())
            }
            (Err(NodeError::NotFound(_)), _) if !present => Ok(()),
            (other, _) => bail!("withdraw of {key} (acknowledged {prev:?}): {other:?}"),
        }
    }

    pub(super) fn op_expire(&mut self, i: usize) -> Res {
        let due: Vec<(RecordKey, u64)> = self
            .acked
            .iter()
            .filter(|(_, a)| a.origin == i && a.expiring)
            .map(|(k, a)| (k.clone(), a.revision))
            .collect();
        let n = self
            .node(i)
            .expire_due(records::sweep_day())
            .map_err(err("expire_due"))?;
        if n != due.len() as u64 {
            bail!(
                "{} expired {n} vacancies, {} were due",
                self.name(i),
                due.len()
            );
        }
        for (key, rev) in due {
            self.ack(i, &key, rev + 1)?;
            if !self.acked[&key].tombstone {
                bail!("{key} not a tombstone after expiry");
            }
        }
        self.stats.expired += n;
        if n > 0 {
            let name = self.name(i).to_owned();
            self.ev(format!("{name} expiry sweep: {n} expired"));
        }
        Ok(())
    }
}
