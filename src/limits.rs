//! Limits on what one partner agency may ask of this node: calls per second and open pull
//! streams, with a count of every refusal (served as metrics).
//!
//! Limits apply to partner identities only: a node's own publishers and operators are trusted
//! with its capacity (an import is many calls on purpose).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use passerelle_model::AgencyId;
use tonic::Status;

/// Why a partner's call was refused by a limit; the label is used in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limited {
    /// More calls per second than `limits.peer_calls_per_second`.
    Rate,
    /// More open pull streams than `limits.max_streams_per_peer`.
    Streams,
    /// A call that ran past `limits.call_timeout_secs`.
    Deadline,
}

impl Limited {
    pub fn label(self) -> &'static str {
        match self {
            Limited::Rate => "rate",
            Limited::Streams => "streams",
            Limited::Deadline => "deadline",
        }
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<AgencyId, Bucket>,
    streams: HashMap<AgencyId, u32>,
    refused: BTreeMap<(AgencyId, Limited), u64>,
}

/// The limits in force and what they refused; shared by the router layer and the services.
#[derive(Debug)]
pub struct PeerLimits {
    rate: f64,
    burst: f64,
    max_streams: u32,
    state: Mutex<State>,
}

impl PeerLimits {
    pub fn new(calls_per_second: u32, max_streams: u32) -> Arc<PeerLimits> {
        let rate = f64::from(calls_per_second.max(1));
        Arc::new(PeerLimits {
            rate,
            burst: rate * 2.0,
            max_streams: max_streams.max(1),
            state: Mutex::default(),
        })
    }

    pub fn from_config(cfg: &passerelle_node::config::LimitsConfig) -> Arc<PeerLimits> {
        Self::new(cfg.peer_calls_per_second, cfg.max_streams_per_peer)
    }

    /// Takes one call from `agency`'s allowance, or says why not.
    pub fn admit_call(&self, agency: &AgencyId) -> Result<(), Status> {
        self.admit_call_at(agency, Instant::now())
    }

    fn admit_call_at(&self, agency: &AgencyId, now: Instant) -> Result<(), Status> {
        let mut state = self.state.lock().expect("lock");
        let bucket = state.buckets.entry(agency.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        *state
            .refused
            .entry((agency.clone(), Limited::Rate))
            .or_default() += 1;
        Err(Status::resource_exhausted(format!(
            "{agency} exceeds {} calls per second on this node: slow down",
            self.rate
        )))
    }

    /// Opens one pull stream for `agency`; the stream holds the permit until it ends.
    pub fn open_stream(self: &Arc<Self>, agency: &AgencyId) -> Result<StreamPermit, Status> {
        let mut state = self.state.lock().expect("lock");
        let open = state.streams.entry(agency.clone()).or_default();
        if *open >= self.max_streams {
            let max = self.max_streams;
            *state
                .refused
                .entry((agency.clone(), Limited::Streams))
                .or_default() += 1;
            return Err(Status::resource_exhausted(format!(
                "{agency} already holds {max} open pull streams on this node"
            )));
        }
        *open += 1;
        Ok(StreamPermit {
            limits: self.clone(),
            agency: agency.clone(),
        })
    }

    /// Counts a refusal decided elsewhere (a deadline).
    pub fn count(&self, agency: &AgencyId, why: Limited) {
        *self
            .state
            .lock()
            .expect("lock")
            .refused
            .entry((agency.clone(), why))
            .or_default() += 1;
    }

    /// Open pull streams per agency, now.
    pub fn open_streams(&self) -> BTreeMap<AgencyId, u32> {
        let state = self.state.lock().expect("lock");
        state
            .streams
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(a, n)| (a.clone(), *n))
            .collect()
    }

    /// Refusals so far, per agency and reason.
    pub fn refused(&self) -> BTreeMap<(AgencyId, Limited), u64> {
        self.state.lock().expect("lock").refused.clone()
    }
}

/// One open pull stream; dropping it gives the slot back.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<PeerLimits>,
    agency: AgencyId,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().expect("lock");
        if let Some(n) = state.streams.get_mut(&self.agency) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn agency(s: &str) -> AgencyId {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_passes_then_calls_are_refused_until_tokens_return() {
        let limits = PeerLimits::new(10, 4);
        let (a, b) = (agency("be.vdab"), agency("tg.anpe"));
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                limits.admit_call_at(&a, t0).is_ok(),
                "call {i} of the burst"
            );
        }
        let refused = limits.admit_call_at(&a, t0).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("be.vdab"),
            "{}",
            refused.message()
        );
        // another agency has its own allowance
        assert!(limits.admit_call_at(&b, t0).is_ok());
        // a tenth of a second gives one call back
        assert!(limits
            .admit_call_at(&a, t0 + Duration::from_millis(110))
            .is_ok());
        assert!(limits
            .admit_call_at(&a, t0 + Duration::from_millis(110))
            .is_err());
        assert_eq!(limits.refused()[&(a, Limited::Rate)], 2);
    }

    #[test]
    fn streams_are_counted_per_agency_and_given_back_on_drop() {
        let limits = PeerLimits::new(10, 2);
        let a = agency("be.vdab");
        let p1 = limits.open_stream(&a).unwrap();
        let _p2 = limits.open_stream(&a).unwrap();
        let refused = limits.open_stream(&a).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(limits.open_streams()[&a], 2);
        drop(p1);
        assert_eq!(limits.open_streams()[&a], 1);
        assert!(limits.open_stream(&a).is_ok());
        assert_eq!(limits.refused()[&(a, Limited::Streams)], 1);
    }
}
