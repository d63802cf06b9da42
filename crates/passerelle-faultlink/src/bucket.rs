//! Token bucket that paces one direction of the link to a byte rate, read at every use so that
//! a rate changed at run time applies from the next chunk on.

use std::time::Duration;
use tokio::time::Instant;

/// Largest chunk a pump reads at once, whatever the rate.
pub const MAX_CHUNK: usize = 16 * 1024;

/// Burst allowed at `rate` bytes/s: 50 ms worth, between 1 KiB and 64 KiB.
pub fn burst(rate: u64) -> u64 {
    (rate / 20).clamp(1024, 64 * 1024)
}

/// Largest chunk to read at once: a chunk never exceeds the burst, so pacing stays smooth.
pub fn chunk_limit(rate: Option<u64>) -> usize {
    match rate {
        Some(r) => (burst(r.max(1)) as usize).min(MAX_CHUNK),
        None => MAX_CHUNK,
    }
}

#[derive(Debug)]
pub struct TokenBucket {
    /// May go negative: a debt the next take waits off.
    tokens: f64,
    last: Instant,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket::new()
    }
}

impl TokenBucket {
    pub fn new() -> TokenBucket {
        TokenBucket {
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// Waits until `n` bytes may pass at `rate` bytes/s (None: at once).
    pub async fn take(&mut self, n: usize, rate: Option<u64>) {
        let now = Instant::now();
        let Some(rate) = rate.map(|r| r.max(1)) else {
            self.tokens = 0.0;
            self.last = now;
            return;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst(rate) as f64);
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate as f64)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_capped_bucket_takes_at_least_bytes_over_rate() {
        let mut b = TokenBucket::new();
        let start = Instant::now();
        // 100 000 bytes at 10 000 bytes/s, in chunks of the allowed size
        let chunk = chunk_limit(Some(10_000));
        let mut sent = 0;
        while sent < 100_000 {
            b.take(chunk, Some(10_000)).await;
            sent += chunk;
        }
        let took = start.elapsed();
        // the bucket starts empty, so no burst: exactly sent / rate with a paused clock
        assert!(took >= Duration::from_millis(9_900), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_only_up_to_its_burst() {
        let mut b = TokenBucket::new();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        // 60 s idle would be 600 000 bytes of credit without the burst cap
        b.take(1024, Some(10_000)).await;
        b.take(10_000, Some(10_000)).await;
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_bucket_never_waits() {
        let mut b = TokenBucket::new();
        let start = Instant::now();
        for _ in 0..1000 {
            b.take(MAX_CHUNK, None).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn chunks_follow_the_rate() {
        assert_eq!(chunk_limit(None), MAX_CHUNK);
        assert_eq!(chunk_limit(Some(250_000)), 12_500);
        assert_eq!(chunk_limit(Some(1)), 1024);
        assert_eq!(chunk_limit(Some(u64::MAX)), MAX_CHUNK);
    }
}
