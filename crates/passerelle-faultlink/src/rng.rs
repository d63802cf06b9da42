//! A tiny seeded pseudo-random generator (xorshift64*), so that every choice the link makes is
//! reproducible from one seed without pulling in a random-number crate.

/// Mixes `x` into a well-spread 64-bit value (splitmix64 finaliser); used to derive seeds.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*: fast, small state, good enough to pick slice sizes and reset points.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift has a fixed point at 0
        Rng(mix(seed).max(1))
    }

    /// The generator for one sub-stream (a connection, a direction) of the run seeded `seed`.
    pub fn derive(seed: u64, stream: u64) -> Rng {
        Rng::new(mix(seed) ^ mix(stream.wrapping_add(0x5851_F42D_4C95_7F2D)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi` (`hi` below `lo` is read as `lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let hi = hi.max(lo);
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        // the modulo bias is irrelevant at the spans a link uses
        lo + self.next_u64() % (span + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a: Vec<u64> = (0..16)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..16)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..16)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut d0 = Rng::derive(7, 0);
        let mut d1 = Rng::derive(7, 1);
        assert_ne!(d0.next_u64(), d1.next_u64());
    }

    #[test]
    fn range_stays_inside_its_bounds_and_reaches_both_ends() {
        let mut r = Rng::new(0);
        let mut seen = [false; 5];
        for _ in 0..10_000 {
            let v = r.range(3, 7);
            assert!((3..=7).contains(&v), "{v}");
            seen[(v - 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(r.range(5, 5), 5);
        assert_eq!(r.range(9, 2), 9);
        let _ = r.range(0, u64::MAX);
    }
}
