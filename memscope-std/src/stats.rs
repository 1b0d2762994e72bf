//! `stats()`: the process's live statistics, summed over per-thread counters.
//!
//! Each thread counts its own events in its own slot with plain stores, so the
//! allocation path writes no shared cache line. Reading sums every slot plus
//! the totals of exited threads; a reader sees each counter as it was a moment
//! ago (a thread retiring its slot at that instant may be counted twice or not
//! at all for one call).
//!
//! **`peak_bytes` is a lower bound.** Per-thread counters cannot give the exact
//! process-wide peak without a shared counter on the allocation path (a block
//! freed by another thread moves two threads' counters). `peak_bytes` is the
//! largest process-wide `current_bytes` that any call of [`stats`] (and, while
//! recording, the writer thread, every few milliseconds) has observed. The
//! trace has every event, and `memscope-decode` reports the exact peak. For
//! an exact peak of one thread's work, use [`testing::count`](crate::testing::count).

use crate::event::Event;
use crate::slot::{self, Slot, ThreadStats};
use memscope_core::StatsSnapshot;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of exited threads and of events no slot took: shared, but only
/// written when a thread exits or in rare paths (a thread's last destructors).
struct Shared {
    allocs: AtomicU64,
    deallocs: AtomicU64,
    reallocs: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    allocated_bytes: AtomicU64,
    freed_bytes: AtomicU64,
    current_bytes: AtomicU64,
    current_blocks: AtomicU64,
}

impl Shared {
    const fn new() -> Self {
        Shared {
            allocs: AtomicU64::new(0),
            deallocs: AtomicU64::new(0),
            reallocs: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            allocated_bytes: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
            current_bytes: AtomicU64::new(0),
            current_blocks: AtomicU64::new(0),
        }
    }
}

// Relaxed everywhere below: independent statistics, no ordering with anything.
static OTHERS: Shared = Shared::new();
static PEAK_SEEN: AtomicU64 = AtomicU64::new(0);

/// Counts `ev` in the calling thread's own counters.
#[inline(always)]
pub(crate) fn count(s: &ThreadStats, ev: Event) {
    let failed = ev.failed();
    match ev {
        Event::Alloc { size, .. } => {
            s.allocs.add(1);
            if failed {
                s.failed.add(1);
            } else {
                s.allocated_bytes.add(size as u64);
                s.current_bytes.add(size as u64);
                s.current_blocks.add(1);
            }
        }
        Event::Dealloc { size, .. } => {
            s.deallocs.add(1);
            s.freed_bytes.add(size as u64);
            s.current_bytes.sub(size as u64);
            s.current_blocks.sub(1);
        }
        Event::Realloc {
            old_size, new_size, ..
        } => {
            s.reallocs.add(1);
            if failed {
                s.failed.add(1);
            } else if new_size >= old_size {
                s.allocated_bytes.add((new_size - old_size) as u64);
                s.current_bytes.add((new_size - old_size) as u64);
            } else {
                s.freed_bytes.add((old_size - new_size) as u64);
                s.current_bytes.sub((old_size - new_size) as u64);
            }
        }
    }
}

/// Counts `ev` of a thread that has no slot (its destructors ran, or the
/// inner allocator had no memory for one).
pub(crate) fn count_orphan(ev: Event) {
    let o = &OTHERS;
    let failed = ev.failed();
    let (bytes, blocks) = ev.net();
    match ev {
        Event::Alloc { .. } => o.allocs.fetch_add(1, Relaxed),
        Event::Dealloc { .. } => o.deallocs.fetch_add(1, Relaxed),
        Event::Realloc { .. } => o.reallocs.fetch_add(1, Relaxed),
    };
    if failed {
        o.failed.fetch_add(1, Relaxed);
    }
    if bytes >= 0 {
        o.allocated_bytes.fetch_add(bytes as u64, Relaxed);
    } else {
        o.freed_bytes.fetch_add(bytes.unsigned_abs(), Relaxed);
    }
    o.current_bytes.fetch_add(bytes as u64, Relaxed);
    o.current_blocks.fetch_add(blocks as u64, Relaxed);
}

/// Moves a freed slot's counters into the shared totals and zeroes them.
pub(crate) fn retire(s: &Slot) {
    let t = &s.stats;
    let o = &OTHERS;
    o.allocs.fetch_add(t.allocs.take(), Relaxed);
    o.deallocs.fetch_add(t.deallocs.take(), Relaxed);
    o.reallocs.fetch_add(t.reallocs.take(), Relaxed);
    o.failed.fetch_add(t.failed.take(), Relaxed);
    o.allocated_bytes
        .fetch_add(t.allocated_bytes.take(), Relaxed);
    o.freed_bytes.fetch_add(t.freed_bytes.take(), Relaxed);
    o.current_bytes.fetch_add(t.current_bytes.take(), Relaxed);
    o.current_blocks.fetch_add(t.current_blocks.take(), Relaxed);
    o.lost.fetch_add(s.counts.lost.take(), Relaxed);
}

/// The live statistics of the whole process, summed over threads' own
/// counters (each thread counts its events with plain stores, so nothing is
/// shared on the allocation path). A counter is as it was a moment ago.
///
/// **`peak_bytes` is a lower bound**: the largest process-wide
/// `current_bytes` any call of `stats()` (and, while recording, the writer
/// thread, every few milliseconds) observed. Per-thread counters cannot give
/// the exact process-wide peak without a shared counter on the allocation
/// path. The trace has every event and `memscope-decode` reports the exact
/// peak; [`testing::count`](crate::testing::count) gives the exact peak of
/// one thread's work.
///
/// ```
/// // Without `MemScope` as the global allocator everything stays zero.
/// let s = memscope_std::stats();
/// assert!(s.current_bytes <= s.allocated_bytes || s.allocated_bytes == 0);
/// ```
pub fn stats() -> StatsSnapshot {
    let o = &OTHERS;
    let mut v = [
        o.allocs.load(Relaxed),
        o.deallocs.load(Relaxed),
        o.reallocs.load(Relaxed),
        o.failed.load(Relaxed),
        o.lost.load(Relaxed),
        o.allocated_bytes.load(Relaxed),
        o.freed_bytes.load(Relaxed),
        o.current_bytes.load(Relaxed),
        o.current_blocks.load(Relaxed),
    ];
    for s in slot::iter() {
        let t = &s.stats;
        for (acc, c) in v.iter_mut().zip([
            &t.allocs,
            &t.deallocs,
            &t.reallocs,
            &t.failed,
            &s.counts.lost,
            &t.allocated_bytes,
            &t.freed_bytes,
            &t.current_bytes,
            &t.current_blocks,
        ]) {
            *acc = acc.wrapping_add(c.get());
        }
    }
    let current = v[7];
    // A moment's sum can be "negative" (a free counted before its alloc).
    let peak = if (current as i64) > 0 {
        PEAK_SEEN.fetch_max(current, Relaxed).max(current)
    } else {
        PEAK_SEEN.load(Relaxed)
    };
    let u = |x: u64| x as usize;
    StatsSnapshot {
        allocs: u(v[0]),
        deallocs: u(v[1]),
        reallocs: u(v[2]),
        failed: u(v[3]),
        lost: u(v[4]),
        allocated_bytes: u(v[5]),
        freed_bytes: u(v[6]),
        current_bytes: u(current),
        current_blocks: u(v[8]),
        peak_bytes: u(peak),
    }
}
