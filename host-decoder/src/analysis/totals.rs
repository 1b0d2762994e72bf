//! Totals: calls and bytes, as decoded.

/// Counts over the merged stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// alloc + alloc_zeroed calls, failed ones included.
    pub allocations: u64,
    /// dealloc calls.
    pub deallocations: u64,
    /// realloc calls, failed ones included.
    pub reallocations: u64,
    /// alloc calls that returned null.
    pub failed_allocs: u64,
    /// realloc calls that returned null.
    pub failed_reallocs: u64,
    /// alloc_zeroed calls.
    pub zeroed: u64,
    /// Bytes of successful allocs plus the growth of reallocs.
    pub bytes_allocated: u64,
    /// Bytes of frees plus the shrinkage of reallocs.
    pub bytes_freed: u64,
    /// Frees whose timestamp was read for them (the others carry a lower bound).
    pub exact_free_ts: u64,
}
