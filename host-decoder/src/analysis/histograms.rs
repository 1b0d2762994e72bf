//! Size and lifetime histograms in power-of-two buckets.

/// Bucket `k` holds values in `[2^(k-1), 2^k)`; bucket 0 holds 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Histogram {
    /// Counts per bucket.
    pub buckets: [u64; 65],
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram { buckets: [0; 65] }
    }
}

impl Log2Histogram {
    /// Counts `v`.
    #[inline]
    pub fn add(&mut self, v: u64) {
        self.buckets[(64 - v.leading_zeros()) as usize] += 1;
    }

    /// `(low, high_exclusive, count)` of the non-empty buckets.
    pub fn ranges(&self) -> Vec<(u64, u64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(k, &c)| {
                let lo = if k == 0 { 0 } else { 1u64 << (k - 1) };
                let hi = if k == 0 {
                    1
                } else {
                    (1u64 << (k - 1)).saturating_mul(2)
                };
                (lo, hi, c)
            })
            .collect()
    }
}
