//! Timestamp sources.
//!
//! A recorder reads its clock once per allocation, after the inner allocator
//! returned, and not at all for a free (a free carries the stream's previous
//! timestamp, a lower bound). Readers order events by timestamp and, within a
//! stream, by position; so with a clock that is monotonic across producers a
//! free is never ordered after the allocation that reused its address.

/// Where timestamps come from.
pub trait Clock {
    /// Now, in ticks. Must never go backwards (across threads, on a host).
    fn now(&self) -> u64;
    /// Ticks per second, or 0 when ticks only order events.
    fn ticks_per_second(&self) -> u64;
}

/// No clock: every timestamp is 0 and the position in the stream is the order.
/// What a Cortex-M0 without a cycle counter uses; costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClock;

impl Clock for NoClock {
    #[inline]
    fn now(&self) -> u64 {
        0
    }
    fn ticks_per_second(&self) -> u64 {
        0
    }
}
