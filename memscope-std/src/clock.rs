//! Timestamps: cheap, monotonic across threads, and read as rarely as the
//! ordering rule allows.
//!
//! # The scheme
//!
//! The rule a trace must keep: per address, a free is never ordered after the
//! allocation that reused the address. memscope keeps it with one clock read
//! per allocation and none per free:
//!
//! - An allocation (or realloc) reads the clock **after** the inner allocator
//!   returned: an upper bound of the moment the block came to exist.
//! - A free carries its thread's **previous** timestamp, read at that thread's
//!   last allocation: a lower bound of the moment of the free. (The wire
//!   format writes no timestamp for it at all; the reader reuses the base.)
//! - If thread A frees block X and thread B's allocator then hands X out, the
//!   free happened before B's inner call returned, so
//!   `ts(free) <= real time of free < real time of B's return <= ts(alloc)`.
//!   With equal ticks readers order frees first.
//!
//! That halves the clock reads of a churn workload and makes a free's record
//! one byte shorter. The price: a free's time is only known to lie between
//! its thread's previous event and its next.
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
