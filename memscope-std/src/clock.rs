//! Timestamps: cheap, monotonic across threads, and read as rarely as the
//! ordering rule allows.
//!
//! # The scheme
//!
//! The rule a trace must keep: per address, a free is never ordered after the
//! allocation that reused the address, and never before the allocation of the
//! block it frees. Timestamps come from one clock that is monotonic across
//! threads; each thread's stream is in that thread's order, and the decoder
//! merges the streams.
//!
//! - An allocation (or realloc) reads the clock **after** the inner allocator
//!   returned, with a plain `rdtsc`: an upper bound of the moment the block
//!   came to exist, give or take how early the unfenced read executed (at
//!   most the latency of the inner call's slowest load still in flight; far
//!   below a microsecond). A stream's timestamps never decrease: a reading
//!   below the stream's previous one is raised to it.
//! - A free reads **no clock**: it carries the stream's previous timestamp
//!   (`ts_exact = false` on the wire, and no bytes for it), a lower bound of
//!   its moment, since that reading was taken before the free began. Its upper
//!   bound is the stream's next timestamp.
//! - A realloc's release of its old block is ordered at the stream's previous
//!   timestamp (memscope-core's wire rule), its new block at its own.
//!
//! Readers get what the rule needs from these bounds: if thread A frees X and
//! B's allocator then returns X, `ts(free) <= A's previous reading < B's
//! reading`, up to how early B's read executed. If A allocates X and hands it
//! to B, which frees it, B's free carries B's previous timestamp, which may be
//! earlier than A's allocation; B's *next* timestamp is not. memscope-decode's
//! merge holds such an event (a free of a block not yet allocated in the
//! merged order, an allocation over a block not yet freed) until the other
//! stream delivers the matching event or passes the event's bound plus a
//! slack of 4 us. docs/ARCHITECTURE.md has the whole argument and the
//! measurements behind it.
//!
//! Cost: one unfenced `rdtsc` per allocation or realloc, none per free. On
//! the VM measured here `rdtsc` costs about 12 ns and `lfence; rdtsc` 23 ns,
//! against about 14 ns for a whole System alloc/free pair of 64 bytes.
//!
//! # The clock
//!
//! On x86_64 with an invariant TSC (`constant_tsc` and `nonstop_tsc` in
//! /proc/cpuinfo, true on current CPUs and VMs) a tick is the TSC shifted right
//! by [`TSC_SHIFT`] (about 6 ns at 2.5 GHz). The invariant TSC is
//! synchronised across cores, so timestamps of different threads compare.
//! The frequency goes into the trace header: the writer measures it against
//! `Instant` over its first 10 ms before writing the header (frames are held
//! back until then). The shift keeps the deltas between neighbouring events
//! of one thread under 128 ticks, so most fit in one varint byte.
//! (At 6 ns a tick, a trace wraps after 3 500 years.)
//! Everywhere else (and without an invariant TSC) a tick is 16 ns of
//! `Instant` (CLOCK_MONOTONIC) since the recording started.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// TSC ticks are divided by `1 << TSC_SHIFT`.
pub const TSC_SHIFT: u32 = 4;
/// `Instant` nanoseconds are divided by `1 << INSTANT_SHIFT`.
pub const INSTANT_SHIFT: u32 = 4;

static USE_TSC: AtomicBool = AtomicBool::new(false);
/// A reading the writer thread takes every cycle (a few ms): see [`recent`].
static RECENT: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A pair of readings to measure the tick rate against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Calibration {
    instant: Instant,
    ticks: u64,
}

/// Chooses the clock and takes the first calibration reading. Called once
/// when recording starts, before any event is recorded.
pub(crate) fn init() -> Calibration {
    let instant = *EPOCH.get_or_init(Instant::now);
    // Relaxed: read-mostly flag; the recording start that follows publishes
    // it with a Release store of the mode.
    USE_TSC.store(tsc_is_invariant(), Ordering::Relaxed);
    publish_recent();
    Calibration {
        instant,
        ticks: now(),
    }
}

/// Now, in ticks. Unfenced: the read may execute before earlier loads
/// complete (see the module docs for why that is enough).
#[inline(always)]
pub(crate) fn now() -> u64 {
    now_with(uses_tsc())
}

/// Whether ticks come from the TSC: chosen once by [`init`], before the
/// recording starts (a thread's record path keeps a copy).
#[inline(always)]
pub(crate) fn uses_tsc() -> bool {
    // Relaxed: set once before recording starts, published with it.
    USE_TSC.load(Ordering::Relaxed)
}

/// [`now`] with the clock choice of [`uses_tsc`] passed in.
#[inline(always)]
pub(crate) fn now_with(tsc: bool) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if tsc {
            // SAFETY: rdtsc exists on every x86_64 CPU.
            return unsafe { core::arch::x86_64::_rdtsc() } >> TSC_SHIFT;
        }
    }
    let _ = tsc;
    instant_ticks()
}

/// Takes a reading for [`recent`] (the writer thread, every cycle).
pub(crate) fn publish_recent() {
    // Relaxed: whoever loads this value loads it after the store, so after
    // the reading was taken; no other ordering is needed (see `recent`).
    RECENT.fetch_max(now(), Ordering::Relaxed);
}

/// A reading another thread took a few milliseconds ago at most (while the
/// writer keeps up): a lower bound of *now* that costs a load instead of a
/// clock read. It is a lower bound whatever the memory ordering: a load
/// returns a value only after the store that wrote it, and that store came
/// after the reading it stores. A free uses it so that a thread that was
/// idle for long does not carry its stale previous timestamp.
#[inline(always)]
pub(crate) fn recent() -> u64 {
    // Relaxed: see above.
    RECENT.load(Ordering::Relaxed)
}

#[inline]
fn instant_ticks() -> u64 {
    match EPOCH.get() {
        Some(e) => (e.elapsed().as_nanos() >> INSTANT_SHIFT) as u64,
        None => 0,
    }
}

/// Ticks per second, measured from `cal` to now.
pub(crate) fn ticks_per_second(cal: &Calibration) -> u64 {
    // Relaxed: see `init`.
    if !USE_TSC.load(Ordering::Relaxed) {
        return 1_000_000_000 >> INSTANT_SHIFT;
    }
    let ticks = now().wrapping_sub(cal.ticks) as u128;
    let nanos = cal.instant.elapsed().as_nanos().max(1);
    (ticks * 1_000_000_000 / nanos) as u64
}

/// How long ago the calibration started.
pub(crate) fn since(cal: &Calibration) -> std::time::Duration {
    cal.instant.elapsed()
}

fn tsc_is_invariant() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(s) => s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
            let mut f = l.split_whitespace();
            let has = |name: &str| l.split_whitespace().any(|w| w == name);
            f.next();
            has("constant_tsc") && has("nonstop_tsc")
        }),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_do_not_go_backwards_and_rate_is_plausible() {
        let cal = init();
        let mut prev = now();
        for _ in 0..10_000 {
            let t = now();
            assert!(t >= prev);
            prev = t;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tps = ticks_per_second(&cal);
        // Between 1 MHz and 1 GHz of ticks: a shifted TSC or Instant/16.
        assert!((1_000_000..1_000_000_000).contains(&tps), "{tps}");
    }
}
