//! One proxied connection: two pumps (client → target, target → client), each a token bucket
//! followed by a delay line and a slicing writer that holds its data while the link is
//! stalled, under the connection's reset budget; it ends when both sides have closed, on a
//! cut, a reset, an I/O error or the link's stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::bucket::{chunk_limit, TokenBucket, MAX_CHUNK};
use crate::counters::{Counters, LiveGuard};
use crate::rng::Rng;
use crate::{LinkConfig, Shared};

/// Chunks a delay line holds at most: enough for an unlimited link with a long delay, and the
/// bound that makes a slow reader push back on the sender.
const LINE_CHUNKS: usize = 256;

/// How long a connection to the target may take before the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both sides closed their half.
    Closed,
    /// A cut closed it.
    Cut,
    /// Its byte budget ran out.
    Reset,
    /// The link stopped.
    Stopped,
    /// Reading or writing one side failed (the other side is reset, like a broken path).
    Failed,
}

/// One chunk in a delay line: `None` is the end of the stream (passed on as a half-close).
struct Chunk {
    due: Instant,
    data: Option<Vec<u8>>,
}

/// Forwards between `client` and the link's target until the connection ends.
pub(crate) async fn serve(mut client: TcpStream, id: u64, shared: Arc<Shared>) {
    let counters = &shared.counters;
    let _live = LiveGuard::new(counters);
    // subscribing marks the current values as seen: only cuts from now on end this connection
    let mut cuts = shared.cuts.subscribe();
    let mut stop = shared.stop.subscribe();
    let cfg = shared.cfg();
    let mut rng = Rng::derive(cfg.seed, id);
    let budget = cfg
        .reset_after
        .map(|(lo, hi)| AtomicU64::new(rng.range(lo, hi)));
    let (up_rng, down_rng) = (
        Rng::derive(rng.next_u64(), 1),
        Rng::derive(rng.next_u64(), 2),
    );

    let connected = tokio::select! {
        t = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.target)) => t,
        _ = cuts.changed() => {
            reset(&client);
            return;
        }
        _ = stop.wait_for(|s| *s) => return,
    };
    let mut target = match connected {
        Ok(Ok(t)) => t,
        _ => {
            Counters::bump(&counters.connect_failures, 1);
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);

    let end = {
        let (cr, cw) = client.split();
        let (tr, tw) = target.split();
        let budget = budget.as_ref();
        let up = pump(cr, tw, &shared, up_rng, budget, &counters.client_to_target);
        let down = pump(
            tr,
            cw,
            &shared,
            down_rng,
            budget,
            &counters.target_to_client,
        );
        tokio::select! {
            r = async { tokio::try_join!(up, down) } => match r {
                Ok(_) => End::Closed,
                Err(e) => e,
            },
            _ = cuts.changed() => End::Cut,
            _ = stop.wait_for(|s| *s) => End::Stopped,
        }
    };
    match end {
        End::Closed | End::Stopped => {}
        End::Cut => {
            Counters::bump(&counters.cut_connections, 1);
            reset(&client);
            reset(&target);
        }
        End::Reset => {
            Counters::bump(&counters.resets, 1);
            reset(&client);
            reset(&target);
        }
        End::Failed => {
            reset(&client);
            reset(&target);
        }
    }
}

/// Makes the close that follows (the drop) an RST rather than a FIN.
fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// Takes up to `n` bytes from the connection's budget: how many may be written, and whether
/// the budget is spent after them (then the connection is reset).
fn take_budget(budget: Option<&AtomicU64>, n: u64) -> (u64, bool) {
    let Some(b) = budget else {
        return (n, false);
    };
    let before = b
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            Some(left.saturating_sub(n))
        })
        .unwrap_or(0);
    (before.min(n), before <= n)
}

/// Returns once the link is not stalled (at once if it is not).
async fn unstalled(settings: &mut watch::Receiver<LinkConfig>) {
    // the link owns the sender, and outlives its connections: an error cannot stall forever
    let _ = settings.wait_for(|c| !c.stall).await;
}

/// One direction: read, pace, delay, write in slices.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    mut rng: Rng,
    budget: Option<&AtomicU64>,
    forwarded: &AtomicU64,
) -> Result<(), End> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(LINE_CHUNKS);
    let read = async move {
        let mut bucket = TokenBucket::new();
        let mut buf = vec![0u8; MAX_CHUNK];
        loop {
            let limit = chunk_limit(shared.cfg().bandwidth);
            let n = from
                .read(&mut buf[..limit])
                .await
                .map_err(|_| End::Failed)?;
            let data = if n == 0 {
                None
            } else {
                // the bottleneck first, then the path: a chunk leaves once the cap lets it
                let rate = shared.cfg().bandwidth;
                bucket.take(n, rate).await;
                Some(buf[..n].to_vec())
            };
            let eof = data.is_none();
            let due = Instant::now() + shared.cfg().latency;
            if tx.send(Chunk { due, data }).await.is_err() || eof {
                return Ok::<(), End>(());
            }
        }
    };
    let mut settings = shared.config.subscribe();
    let write = async move {
        while let Some(Chunk { due, data }) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            unstalled(&mut settings).await;
            let Some(data) = data else {
                let _ = to.shutdown().await;
                return Ok(());
            };
            let mut off = 0;
            while off < data.len() {
                let left = data.len() - off;
                let n = match shared.cfg().slice {
                    Some((lo, hi)) => (rng.range(lo as u64, hi as u64) as usize).clamp(1, left),
                    None => left,
                };
                if off > 0 {
                    unstalled(&mut settings).await;
                }
                let (allowed, spent) = take_budget(budget, n as u64);
                let part = &data[off..off + allowed as usize];
                if !part.is_empty() {
                    to.write_all(part).await.map_err(|_| End::Failed)?;
                    Counters::bump(forwarded, part.len() as u64);
                }
                if spent {
                    return Err(End::Reset);
                }
                off += n;
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_lets_exactly_its_bytes_through_then_is_spent() {
        assert_eq!(take_budget(None, 10), (10, false));
        let b = AtomicU64::new(25);
        assert_eq!(take_budget(Some(&b), 10), (10, false));
        assert_eq!(take_budget(Some(&b), 10), (10, false));
        assert_eq!(take_budget(Some(&b), 10), (5, true));
        assert_eq!(take_budget(Some(&b), 10), (0, true));
        let exact = AtomicU64::new(10);
        assert_eq!(take_budget(Some(&exact), 10), (10, true));
    }
}
