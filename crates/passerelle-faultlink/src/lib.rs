//! A fault-injecting TCP proxy for tests and benchmarks.
//!
//! [`FaultLink::start`] listens on `127.0.0.1:0` and forwards every connection to a target
//! address through a simulated link ([`LinkConfig`]): a one-way delay in each direction (a
//! delay line that keeps order and several chunks in flight), a bandwidth cap per direction
//! (token bucket), slicing of the data into small writes of random size, connection cuts on a
//! schedule (or on demand) with an optional window during which new connections are refused,
//! random resets after a random number of forwarded bytes, and silent stalls (nothing passes,
//! nothing is closed) that only the endpoints' timeouts notice. Every random choice comes from
//! one seed. [`Counters`] can be read while the link runs; the settings can be changed at any
//! time; [`FaultLink::stop`] closes everything.
//!
//! The proxy knows nothing about what it forwards (TLS passes through untouched), so a client
//! verifying the server's certificate against `127.0.0.1` still succeeds through it.
//!
//! ```no_run
//! # async fn demo(target: std::net::SocketAddr) -> std::io::Result<()> {
//! use std::time::Duration;
//! use passerelle_faultlink::{FaultLink, LinkConfig};
//! let link = FaultLink::start(
//!     target,
//!     LinkConfig::new()
//!         .with_rtt(Duration::from_millis(300))
//!         .with_mbit(2.0)
//!         .with_cuts(Duration::from_secs(5), Duration::from_millis(500))
//!         .with_seed(7),
//! )
//! .await?;
//! // connect clients to link.addr() instead of target
//! link.cut(Duration::from_secs(10)); // a long outage, now
//! println!("{:?}", link.stats());
//! link.stop().await;
//! # Ok(()) }
//! ```

mod bucket;
mod config;
mod conn;
mod counters;
mod rng;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub use config::LinkConfig;
pub use counters::{Counters, Stats};
pub use rng::Rng;

/// State shared by the accept loop, the cut schedule and every connection.
pub(crate) struct Shared {
    target: SocketAddr,
    config: watch::Sender<LinkConfig>,
    /// Bumped by every cut; each connection ends when it changes.
    cuts: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    refuse_until: Mutex<Option<Instant>>,
    counters: Counters,
}

impl Shared {
    /// A copy of the settings now (never hold the watch lock across an await).
    pub(crate) fn cfg(&self) -> LinkConfig {
        *self.config.borrow()
    }

    fn refuse_for(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let until = Instant::now() + d;
        let mut r = self.refuse_until.lock().expect("lock");
        *r = Some(r.map_or(until, |t| t.max(until)));
    }

    fn refusing(&self) -> bool {
        self.refuse_until
            .lock()
            .expect("lock")
            .is_some_and(|t| Instant::now() < t)
    }

    fn cut(&self, refuse_for: Duration) {
        // refuse first, so that a client reconnecting at once after the cut is refused too
        self.refuse_for(refuse_for);
        Counters::bump(&self.counters.cuts, 1);
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// A running link: a listening proxy and the handle to change, cut and stop it.
pub struct FaultLink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultLink {
    /// Listens on a fresh `127.0.0.1` port and forwards to `target` through `config`.
    pub async fn start(target: SocketAddr, config: LinkConfig) -> std::io::Result<FaultLink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        FaultLink::start_on(listener, target, config)
    }

    /// Forwards what `listener` accepts to `target` through `config`.
    pub fn start_on(
        listener: TcpListener,
        target: SocketAddr,
        config: LinkConfig,
    ) -> std::io::Result<FaultLink> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            config: watch::Sender::new(config),
            cuts: watch::Sender::new(0),
            stop: watch::Sender::new(false),
            refuse_until: Mutex::new(None),
            counters: Counters::default(),
        });
        let tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone())),
            tokio::spawn(cut_schedule(shared.clone())),
        ];
        Ok(FaultLink {
            addr,
            shared,
            tasks: Mutex::new(tasks),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    pub fn config(&self) -> LinkConfig {
        self.shared.cfg()
    }

    /// Replaces the settings (see [`LinkConfig`] for when each applies).
    pub fn set_config(&self, config: LinkConfig) {
        self.shared.config.send_replace(config);
    }

    /// Changes some settings.
    pub fn update(&self, f: impl FnOnce(&mut LinkConfig)) {
        self.shared.config.send_modify(f);
    }

    /// Closes every live connection now (RST both ways) and refuses new connections for
    /// `refuse_for` (zero: accepts again at once). Counted in `cuts`.
    pub fn cut(&self, refuse_for: Duration) {
        self.shared.cut(refuse_for);
    }

    /// Refuses new connections for `d` from now, leaving live ones alone.
    pub fn refuse_for(&self, d: Duration) {
        self.shared.refuse_for(d);
    }

    /// Ends a refusal window early.
    pub fn accept_again(&self) {
        *self.shared.refuse_until.lock().expect("lock") = None;
    }

    /// The live counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Stops listening and closes every connection; returns once all of it is done.
    /// Calling it again does nothing.
    pub async fn stop(&self) {
        self.shared.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("lock"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for FaultLink {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        // aborting the accept loop drops its set of connections, which aborts them
        for t in self.tasks.get_mut().expect("lock").drain(..) {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut conns = JoinSet::new();
    // connection ids count forwarded connections in accept order: with one client connecting
    // at a time, the same seed gives each connection the same choices
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        while conns.try_join_next().is_some() {}
        let sock = match accepted {
            Ok((sock, _)) => sock,
            Err(_) => {
                // out of descriptors and the like: do not spin
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.refusing() {
            Counters::bump(&shared.counters.refused, 1);
            let _ = sock.set_zero_linger();
            drop(sock);
            continue;
        }
        Counters::bump(&shared.counters.accepted, 1);
        conns.spawn(conn::serve(sock, next_id, shared.clone()));
        next_id += 1;
    }
    drop(listener);
    // connections saw the stop too and are closing; whatever still runs is aborted
    conns.shutdown().await;
}

async fn cut_schedule(shared: Arc<Shared>) {
    let mut cfg = shared.config.subscribe();
    let mut stop = shared.stop.subscribe();
    let mut every = cfg.borrow_and_update().cut_every;
    let mut next = every.map(|d| Instant::now() + d);
    loop {
        let due = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {
                shared.cut(shared.cfg().refuse_for);
                next = every.map(|d| Instant::now() + d);
            }
            changed = cfg.changed() => {
                if changed.is_err() {
                    break;
                }
                // only a new period restarts the schedule; other settings leave it alone
                let e = cfg.borrow_and_update().cut_every;
                if e != every {
                    every = e;
                    next = every.map(|d| Instant::now() + d);
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
