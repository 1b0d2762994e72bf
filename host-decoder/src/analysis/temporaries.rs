//! Temporaries, two ways:
//!
//! - heaptrack's: a block freed with no other allocation in between on its
//!   thread (the allocation was only needed for a moment; often a clone or a
//!   `format!` that could be avoided);
//! - short-lived: freed within a threshold of time. A free's timestamp is a
//!   lower bound of its moment unless the producer read the clock for it (the
//!   trace says which), and an allocation's is an upper bound, so a measured
//!   lifetime is a lower bound: the count says which it is.

/// Counts. (The generation of each thread's latest allocation, which tells
/// a temporary, is kept with the thread's other counters:
/// [`ThreadStats::last_alloc`](super::attribution::ThreadStats::last_alloc).)
#[derive(Default)]
pub struct Temporaries {
    /// Freed right after their allocation.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Short-lived threshold in ticks, when the trace has a clock.
    pub threshold_ticks: Option<u64>,
    /// The threshold as configured, in nanoseconds.
    pub threshold_ns: u64,
    /// Blocks freed within the threshold.
    pub short_lived: u64,
    /// Of those, how many had an exact free timestamp.
    pub short_lived_exact: u64,
}
