//! What the link did so far, as atomics readable while it runs, and plain snapshots of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one link; every field only grows except `live`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes written to the target, from the client side.
    pub client_to_target: AtomicU64,
    /// Bytes written to the client, from the target side.
    pub target_to_client: AtomicU64,
    /// Connections accepted and forwarded (refused ones not included).
    pub accepted: AtomicU64,
    /// Connections accepted then reset at once because the link refused them.
    pub refused: AtomicU64,
    /// Connections closed because the target could not be reached.
    pub connect_failures: AtomicU64,
    /// Cuts performed (scheduled or asked for), each closing every live connection.
    pub cuts: AtomicU64,
    /// Connections a cut closed.
    pub cut_connections: AtomicU64,
    /// Connections reset after their random byte budget.
    pub resets: AtomicU64,
    /// Connections open right now.
    pub live: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub client_to_target: u64,
    pub target_to_client: u64,
    pub accepted: u64,
    pub refused: u64,
    pub connect_failures: u64,
    pub cuts: u64,
    pub cut_connections: u64,
    pub resets: u64,
    pub live: u64,
}

impl Stats {
    /// Bytes forwarded both ways.
    pub fn bytes(&self) -> u64 {
        self.client_to_target + self.target_to_client
    }
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            client_to_target: get(&self.client_to_target),
            target_to_client: get(&self.target_to_client),
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            connect_failures: get(&self.connect_failures),
            cuts: get(&self.cuts),
            cut_connections: get(&self.cut_connections),
            resets: get(&self.resets),
            live: get(&self.live),
        }
    }

    pub(crate) fn bump(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts one live connection for as long as it is held, even when its task is aborted.
pub(crate) struct LiveGuard<'a>(pub &'a Counters);

impl<'a> LiveGuard<'a> {
    pub fn new(c: &'a Counters) -> Self {
        c.live.fetch_add(1, Ordering::Relaxed);
        LiveGuard(c)
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_copies_and_live_follows_the_guards() {
        let c = Counters::default();
        Counters::bump(&c.client_to_target, 5);
        Counters::bump(&c.target_to_client, 7);
        {
            let _a = LiveGuard::new(&c);
            let _b = LiveGuard::new(&c);
            assert_eq!(c.snapshot().live, 2);
        }
        let s = c.snapshot();
        assert_eq!((s.bytes(), s.live), (12, 0));
    }
}
