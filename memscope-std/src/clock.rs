//! Timestamps: cheap, monotonic across threads, and read as rarely as the
//! ordering rule allows.
//!
//! # The scheme
//!
//! The rule a trace must keep: per address, a free is never ordered after the
//! allocation that reused the address, and never before the allocation of the
//! block it frees. Timestamps come from one clock that is monotonic across
//! threads, read on the thread making the call:
//!
//! - An allocation (or realloc) reads the clock **after** the inner allocator
//!   returned: an upper bound of the moment the block came to exist.
//! - A free reads the clock **before** the inner free: a lower bound of the
//!   moment the block went away.
//! - If thread A frees block X and thread B's allocator then hands X out:
//!   `ts(free) <= A's inner free < B's inner alloc returns <= ts(alloc)`.
//!   If thread A allocates X and thread B frees it (X crossed threads through
//!   some synchronisation): `ts(alloc)` was read before A published X and
//!   `ts(free)` after B received it, so the alloc sorts first. With equal
//!   ticks readers put frees first. `lfence` before `rdtsc` keeps the read
//!   from executing before the inner call's loads (rdtsc alone may run ahead
//!   of a cache miss, exactly the cross-core case).
//! - A realloc has one timestamp (after the call). Readers order the release
//!   of its old block at the thread's previous timestamp (memscope-core's
//!   wire rule). If that old block was allocated on another thread after this
//!   thread's previous event, the release sorts before the allocation; a
//!   reader resolves it by taking the realloc as the later event (nothing can
//!   realloc a block before it exists).
//!
//! Cost: one clock read per event: `lfence; rdtsc` for an allocation (10-35
//! ns on the VMs measured here), a plain `rdtsc` for a free (its reading must
//! only be a lower bound, and an unfenced read is one, see
//! [`now_lower_bound`]). The cheaper scheme the wire format allows — a free carrying
//! its thread's previous timestamp, no read — keeps the reuse order but not
//! the other one: a block freed on another thread than it was allocated on
//! can sort before its own allocation (seen in the desktop example's channel
//! hand-offs), unless a reader treats each such free as the interval up to
//! the thread's next event. memscope-std pays for the read.
//!
//! # The clock
//!
//! On x86_64 with an invariant TSC (`constant_tsc` and `nonstop_tsc` in
//! /proc/cpuinfo, true on current CPUs and VMs) a tick is the TSC shifted right
//! by [`TSC_SHIFT`] (about 6 ns at 2.5 GHz), read with `lfence; rdtsc` so the
//! read cannot move before the inner allocator's loads. The invariant TSC is
//! synchronised across cores, so timestamps of different threads compare.
//! The frequency goes into the trace header: the writer measures it against
//! `Instant` over its first 10 ms before writing the header (frames are held
//! back until then). The shift keeps the deltas between neighbouring events
//! of one thread under 128 ticks, so most fit in one varint byte.
//! (At 6 ns a tick, a trace wraps after 3 500 years.)
//! Everywhere else (and without an invariant TSC) a tick is 16 ns of
//! `Instant` (CLOCK_MONOTONIC) since the recording started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// TSC ticks are divided by `1 << TSC_SHIFT`.
pub const TSC_SHIFT: u32 = 4;
/// `Instant` nanoseconds are divided by `1 << INSTANT_SHIFT`.
pub const INSTANT_SHIFT: u32 = 4;

static USE_TSC: AtomicBool = AtomicBool::new(false);
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
    Calibration {
        instant,
        ticks: now(),
    }
}

/// Now, in ticks.
#[inline(always)]
pub(crate) fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // Relaxed: set once before recording starts.
        if USE_TSC.load(Ordering::Relaxed) {
            // SAFETY: lfence and rdtsc exist on every x86_64 CPU.
            return unsafe {
                core::arch::x86_64::_mm_lfence();
                core::arch::x86_64::_rdtsc()
            } >> TSC_SHIFT;
        }
    }
    instant_ticks()
}

/// Now, in ticks, as a *lower bound* of the moment the caller's next
/// instructions take effect: what a free reads before its inner call.
///
/// No `lfence` here: `rdtsc` alone may execute early (before earlier loads
/// complete), which only makes the reading smaller — still a lower bound. It
/// cannot read late: it executes before it retires, and the inner free's
/// stores (the ones that let another thread reuse the block) become visible
/// only after they retire, in program order, after `rdtsc`. Saves the fence's
/// pipeline drain on every free.
#[inline(always)]
pub(crate) fn now_lower_bound() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // Relaxed: set once before recording starts.
        if USE_TSC.load(Ordering::Relaxed) {
            // SAFETY: rdtsc exists on every x86_64 CPU.
            return unsafe { core::arch::x86_64::_rdtsc() } >> TSC_SHIFT;
        }
    }
    instant_ticks()
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
