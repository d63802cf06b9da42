//! What the simulated link does to the traffic: one-way latency, a bandwidth cap, slicing into
//! small writes, scheduled cuts and random resets, all seeded. A [`LinkConfig`] can be replaced
//! while the link runs; each setting says when a change takes effect.

use std::time::Duration;

/// Settings of a [`crate::FaultLink`]. The default is a transparent link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkConfig {
    /// Delay added to every chunk in each direction (half the round-trip time). A delay line:
    /// chunks keep their order and several are in flight, so it does not cut throughput.
    /// A change applies to chunks read from then on.
    pub latency: Duration,
    /// Cap of each direction, bytes per second (`None`: unlimited). Applied before the
    /// latency, like a slow access link followed by a long path. Applies from the next chunk.
    pub bandwidth: Option<u64>,
    /// Forward each chunk in writes of a random size in `min..=max` bytes, so that the
    /// receiver sees messages split at arbitrary points. Applies from the next write.
    pub slice: Option<(usize, usize)>,
    /// Close every live connection this often, counted from the start of the link (or from
    /// the last change of this setting).
    pub cut_every: Option<Duration>,
    /// After each scheduled cut, refuse new connections this long (accepted, then reset).
    pub refuse_for: Duration,
    /// Reset each connection (RST) once it has forwarded a random number of bytes, both
    /// directions together, drawn in `min..=max` when it is accepted. Applies to new
    /// connections.
    pub reset_after: Option<(u64, u64)>,
    /// A silent outage: nothing passes either way, yet no connection is closed (a cable
    /// pulled, a NAT entry gone). Data is held and delivered once the stall ends, as TCP would
    /// retransmit it over a healed path; new connections are accepted but get nothing through.
    /// Only timeouts and keepalives of the endpoints notice it. Applies at once.
    pub stall: bool,
    /// Seed of every random choice: connection `k` (in accept order) of two links with the
    /// same seed and settings gets the same reset point and the same sequence of slice sizes
    /// (a slice is cut short at the end of a chunk, and chunk ends depend on timing).
    pub seed: u64,
}

impl LinkConfig {
    /// A transparent link: no delay, no cap, no faults.
    pub fn new() -> LinkConfig {
        LinkConfig::default()
    }

    /// Sets the round-trip time: half of it is added in each direction.
    pub fn with_rtt(mut self, rtt: Duration) -> LinkConfig {
        self.latency = rtt / 2;
        self
    }

    /// Caps each direction at `bytes_per_sec`.
    pub fn with_bandwidth(mut self, bytes_per_sec: u64) -> LinkConfig {
        self.bandwidth = Some(bytes_per_sec);
        self
    }

    /// Caps each direction at `mbit` megabits per second (10^6 bits).
    pub fn with_mbit(self, mbit: f64) -> LinkConfig {
        self.with_bandwidth((mbit * 1_000_000.0 / 8.0).round().max(1.0) as u64)
    }

    /// Forwards data in writes of `min..=max` bytes.
    pub fn with_slices(mut self, min: usize, max: usize) -> LinkConfig {
        self.slice = Some((min.max(1), max.max(min).max(1)));
        self
    }

    /// Closes every connection each `every`, then refuses new ones for `refuse_for`.
    pub fn with_cuts(mut self, every: Duration, refuse_for: Duration) -> LinkConfig {
        self.cut_every = Some(every);
        self.refuse_for = refuse_for;
        self
    }

    /// Resets each connection after `min..=max` forwarded bytes.
    pub fn with_resets(mut self, min: u64, max: u64) -> LinkConfig {
        self.reset_after = Some((min, max.max(min)));
        self
    }

    /// Starts stalled (see [`LinkConfig::stall`]).
    pub fn stalled(mut self) -> LinkConfig {
        self.stall = true;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> LinkConfig {
        self.seed = seed;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_fields() {
        let c = LinkConfig::new()
            .with_rtt(Duration::from_millis(300))
            .with_mbit(2.0)
            .with_slices(10, 5)
            .with_cuts(Duration::from_secs(4), Duration::from_millis(500))
            .with_resets(100, 50)
            .with_seed(42)
            .stalled();
        assert!(c.stall);
        assert_eq!(c.latency, Duration::from_millis(150));
        assert_eq!(c.bandwidth, Some(250_000));
        assert_eq!(c.slice, Some((10, 10)));
        assert_eq!(c.cut_every, Some(Duration::from_secs(4)));
        assert_eq!(c.refuse_for, Duration::from_millis(500));
        assert_eq!(c.reset_after, Some((100, 100)));
        assert_eq!(c.seed, 42);
        assert_eq!(LinkConfig::new(), LinkConfig::default());
        assert_eq!(LinkConfig::new().with_slices(0, 0).slice, Some((1, 1)));
    }
}
