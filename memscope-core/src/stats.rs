//! Live statistics, readable on the target itself with no host attached.
//!
//! Counters are `usize` atomics (portable-atomic: native where the core has
//! them, a critical section on thumbv6m). They are independent statistics, so
//! every access is `Relaxed`: a reader that is not the writer sees each counter
//! as it was a moment ago, not a snapshot of all of them at one instant. Inside
//! the critical section of [`Stream`](crate::Stream) the counters do form a
//! consistent snapshot.

use critical_section::CriticalSection;
use portable_atomic::{AtomicUsize, Ordering::Relaxed};

/// Counters for one producer (a microcontroller, or one host thread).
#[derive(Debug, Default)]
pub struct Stats {
    allocs: AtomicUsize,
    deallocs: AtomicUsize,
    reallocs: AtomicUsize,
    failed: AtomicUsize,
    lost: AtomicUsize,
    allocated_bytes: AtomicUsize,
    freed_bytes: AtomicUsize,
    current_bytes: AtomicUsize,
    current_blocks: AtomicUsize,
    peak_bytes: AtomicUsize,
}

/// A copy of the counters, plain values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// `alloc` + `alloc_zeroed` calls, failed ones included.
    pub allocs: usize,
    /// `dealloc` calls.
    pub deallocs: usize,
    /// `realloc` calls, failed ones included.
    pub reallocs: usize,
    /// Calls that returned null.
    pub failed: usize,
    /// Events that could not be recorded (ring or channel full).
    pub lost: usize,
    /// Bytes handed out in total (a realloc counts its growth).
    pub allocated_bytes: usize,
    /// Bytes given back in total (a realloc counts its shrinkage).
    pub freed_bytes: usize,
    /// Bytes live now.
    pub current_bytes: usize,
    /// Blocks live now.
    pub current_blocks: usize,
    /// Most bytes live at once.
    pub peak_bytes: usize,
}

impl Stats {
    /// All zero.
    pub const fn new() -> Self {
        Stats {
            allocs: AtomicUsize::new(0),
            deallocs: AtomicUsize::new(0),
            reallocs: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
            allocated_bytes: AtomicUsize::new(0),
            freed_bytes: AtomicUsize::new(0),
            current_bytes: AtomicUsize::new(0),
            current_blocks: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
        }
    }

    /// An `alloc`/`alloc_zeroed` that returned `ok` (non-null) for `size` bytes.
    #[inline]
    pub fn on_alloc(&self, size: usize, ok: bool) {
        self.allocs.fetch_add(1, Relaxed);
        if ok {
            self.grow(size);
            self.current_blocks.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    /// A `dealloc` of `size` bytes.
    #[inline]
    pub fn on_dealloc(&self, size: usize) {
        self.deallocs.fetch_add(1, Relaxed);
        self.freed_bytes.fetch_add(size, Relaxed);
        self.current_bytes.fetch_sub(size, Relaxed);
        self.current_blocks.fetch_sub(1, Relaxed);
    }

    /// A `realloc` from `old` to `new` bytes that succeeded or not.
    #[inline]
    pub fn on_realloc(&self, old: usize, new: usize, ok: bool) {
        self.reallocs.fetch_add(1, Relaxed);
        if !ok {
            self.failed.fetch_add(1, Relaxed);
        } else if new >= old {
            self.grow(new - old);
        } else {
            self.freed_bytes.fetch_add(old - new, Relaxed);
            self.current_bytes.fetch_sub(old - new, Relaxed);
        }
    }

    /// An event that could not be recorded.
    #[inline]
    pub fn on_lost(&self) {
        self.lost.fetch_add(1, Relaxed);
    }

    #[inline]
    fn grow(&self, by: usize) {
        self.allocated_bytes.fetch_add(by, Relaxed);
        // Wrapping: on a host a block may be freed by another thread's
        // counters, so one producer's `current` can dip below zero; the sum
        // over producers is right.
        let now = self.current_bytes.fetch_add(by, Relaxed).wrapping_add(by);
        if (now as isize) > 0 {
            self.peak_bytes.fetch_max(now, Relaxed);
        }
    }

    /// One heap event, counted by a writer that holds a critical section
    /// every writer of these counters takes (memscope-core's `Stream`).
    ///
    /// One out-of-line function for the three kinds, each counter added in
    /// one place (flash), only the counters that change (time). On a core
    /// without compare-and-swap (thumbv6m) each add is then a plain load and
    /// store instead of a critical section of portable-atomic's own (see
    /// `add_locked`).
    ///
    /// `call` says which counter of calls moves; the bytes live go from `old`
    /// to `new` when `ok` (an allocation: 0 to its size; a free: its size to
    /// 0), and the call counts as failed when not.
    #[inline(never)]
    pub fn on_call_locked(
        &self,
        _cs: CriticalSection<'_>,
        call: CallKind,
        ok: bool,
        old: usize,
        new: usize,
    ) {
        let (calls, blocks) = match call {
            CallKind::Alloc => (&self.allocs, 1),
            CallKind::Dealloc => (&self.deallocs, usize::MAX),
            CallKind::Realloc => (&self.reallocs, 0),
        };
        add_locked(calls, 1);
        if !ok {
            add_locked(&self.failed, 1);
            return;
        }
        if blocks != 0 {
            add_locked(&self.current_blocks, blocks);
        }
        if new < old {
            add_locked(&self.freed_bytes, old - new);
            add_locked(&self.current_bytes, new.wrapping_sub(old));
        } else if new > old {
            add_locked(&self.allocated_bytes, new - old);
            add_locked(&self.current_bytes, new - old);
            // The peak can only move when bytes were added: a single
            // writer's `current` never exceeds it otherwise.
            self.raise_peak_locked(self.current_bytes.load(Relaxed));
        }
    }

    /// [`on_lost`](Self::on_lost) under a critical section, as
    /// [`on_call_locked`](Self::on_call_locked).
    #[inline]
    pub fn on_lost_locked(&self, _cs: CriticalSection<'_>) {
        add_locked(&self.lost, 1);
    }

    /// Raises the peak to `now` under a critical section (see `add_locked`).
    #[inline(always)]
    fn raise_peak_locked(&self, now: usize) {
        if (now as isize) > 0 {
            if cfg!(target_has_atomic = "ptr") {
                self.peak_bytes.fetch_max(now, Relaxed);
            } else if now > self.peak_bytes.load(Relaxed) {
                self.peak_bytes.store(now, Relaxed);
            }
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            allocs: self.allocs.load(Relaxed),
            deallocs: self.deallocs.load(Relaxed),
            reallocs: self.reallocs.load(Relaxed),
            failed: self.failed.load(Relaxed),
            lost: self.lost.load(Relaxed),
            allocated_bytes: self.allocated_bytes.load(Relaxed),
            freed_bytes: self.freed_bytes.load(Relaxed),
            current_bytes: self.current_bytes.load(Relaxed),
            current_blocks: self.current_blocks.load(Relaxed),
            peak_bytes: self.peak_bytes.load(Relaxed),
        }
    }
}

/// Adds `by` (wrapping) to `c` for a caller that holds a critical section
/// every writer of the counter takes.
///
/// On a core without compare-and-swap a load and a store are then as atomic
/// as portable-atomic's emulated `fetch_add`, which is itself a critical
/// section (neither masks an NMI). Cores with CAS keep `fetch_add`: it costs
/// them no more, and it stays exact against an NMI handler that allocates.
#[inline(never)]
fn add_locked(c: &AtomicUsize, by: usize) {
    if cfg!(target_has_atomic = "ptr") {
        c.fetch_add(by, Relaxed);
    } else {
        c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
    }
}

/// Which kind of call [`Stats::on_call_locked`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// `alloc` or `alloc_zeroed`.
    Alloc,
    /// `dealloc`.
    Dealloc,
    /// `realloc`.
    Realloc,
}

impl StatsSnapshot {
    /// Adds another producer's counters (host threads). `peak_bytes` becomes the
    /// larger of the two: the true process-wide peak is in the trace, not here.
    pub fn merge(&mut self, o: &StatsSnapshot) {
        self.allocs = self.allocs.wrapping_add(o.allocs);
        self.deallocs = self.deallocs.wrapping_add(o.deallocs);
        self.reallocs = self.reallocs.wrapping_add(o.reallocs);
        self.failed = self.failed.wrapping_add(o.failed);
        self.lost = self.lost.wrapping_add(o.lost);
        self.allocated_bytes = self.allocated_bytes.wrapping_add(o.allocated_bytes);
        self.freed_bytes = self.freed_bytes.wrapping_add(o.freed_bytes);
        self.current_bytes = self.current_bytes.wrapping_add(o.current_bytes);
        self.current_blocks = self.current_blocks.wrapping_add(o.current_blocks);
        self.peak_bytes = self.peak_bytes.max(o.peak_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_peak() {
        let s = Stats::new();
        s.on_alloc(100, true);
        s.on_alloc(50, true);
        s.on_alloc(8, false);
        s.on_dealloc(100);
        s.on_realloc(50, 400, true);
        s.on_realloc(400, 10, true);
        s.on_realloc(10, 1 << 40, false);
        s.on_lost();
        let v = s.snapshot();
        assert_eq!(
            (v.allocs, v.deallocs, v.reallocs, v.failed, v.lost),
            (3, 1, 3, 2, 1)
        );
        assert_eq!(v.current_bytes, 10);
        assert_eq!(v.current_blocks, 1);
        assert_eq!(v.peak_bytes, 400);
        assert_eq!(v.allocated_bytes, 150 + 350);
        assert_eq!(v.freed_bytes, 100 + 390);
    }

    proptest::proptest! {
        /// `Stream`'s one function for all calls counts exactly what the
        /// per-kind methods count.
        #[test]
        fn counting_under_a_critical_section_counts_the_same(
            calls in proptest::collection::vec((0u8..3, proptest::bool::ANY, 0usize..5000, 0usize..5000), 0..200)
        ) {
            let (each, locked) = (Stats::new(), Stats::new());
            for (kind, ok, a, b) in calls {
                critical_section::with(|cs| match kind {
                    0 => {
                        each.on_alloc(a, ok);
                        locked.on_call_locked(cs, CallKind::Alloc, ok, 0, a);
                    }
                    1 => {
                        each.on_dealloc(a);
                        locked.on_call_locked(cs, CallKind::Dealloc, true, a, 0);
                    }
                    _ => {
                        each.on_realloc(a, b, ok);
                        locked.on_call_locked(cs, CallKind::Realloc, ok, a, b);
                    }
                });
                if !ok {
                    each.on_lost();
                    critical_section::with(|cs| locked.on_lost_locked(cs));
                }
            }
            proptest::prop_assert_eq!(each.snapshot(), locked.snapshot());
        }
    }
}
