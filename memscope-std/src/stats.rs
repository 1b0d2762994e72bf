//! `stats()`: the process's live statistics, summed over per-thread counters.
//!
//! Each thread counts its own events in its own slot with plain stores, so the
//! allocation path writes no shared cache line: two counters an alloc or free
//! (the live bytes and blocks are derived from them when read, see
//! `slot::ThreadStats`). Reading sums every slot plus
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
    match ev {
        Event::Alloc { ptr, size, .. } => count_alloc(s, size, ptr.is_null()),
        Event::Dealloc { size, .. } => count_dealloc(s, size),
        Event::Realloc {
            old_size,
            new,
            new_size,
            ..
        } => count_realloc(s, old_size, new_size, new.is_null()),
    }
}

/// An alloc or alloc_zeroed of `size` bytes (`failed`: it returned null).
#[inline(always)]
pub(crate) fn count_alloc(s: &ThreadStats, size: usize, failed: bool) {
    s.allocs.add(1);
    if failed {
        count_failed_alloc(s);
    } else {
        s.allocated_bytes.add(size as u64);
    }
}

#[cold]
#[inline(never)]
fn count_failed_alloc(s: &ThreadStats) {
    s.failed.add(1);
    s.failed_allocs.add(1);
}

/// An alloc of `size` bytes counted before the inner call, as if it
/// succeeds (a `local::Path::Count` call); [`uncount_alloc`] takes it back.
#[inline(always)]
pub(crate) fn count_alloc_ahead(s: &ThreadStats, size: usize) {
    s.allocs.add(1);
    s.allocated_bytes.add(size as u64);
}

/// The alloc [`count_alloc_ahead`] counted returned null.
pub(crate) fn uncount_alloc(s: &ThreadStats, size: usize) {
    s.allocated_bytes.sub(size as u64);
    count_failed_alloc(s);
}

/// A dealloc of `size` bytes.
#[inline(always)]
pub(crate) fn count_dealloc(s: &ThreadStats, size: usize) {
    s.deallocs.add(1);
    s.freed_bytes.add(size as u64);
}

/// A realloc from `old_size` to `new_size` bytes (`failed`: it returned
/// null and the old block stays).
#[inline(always)]
pub(crate) fn count_realloc(s: &ThreadStats, old_size: usize, new_size: usize, failed: bool) {
    s.reallocs.add(1);
    if failed {
        s.failed.add(1);
    } else if new_size >= old_size {
        s.allocated_bytes.add((new_size - old_size) as u64);
    } else {
        s.freed_bytes.add((old_size - new_size) as u64);
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
    let allocs = t.allocs.take();
    let deallocs = t.deallocs.take();
    let failed_allocs = t.failed_allocs.take();
    let allocated = t.allocated_bytes.take();
    let freed = t.freed_bytes.take();
    o.allocs.fetch_add(allocs, Relaxed);
    o.deallocs.fetch_add(deallocs, Relaxed);
    o.reallocs.fetch_add(t.reallocs.take(), Relaxed);
    o.failed.fetch_add(t.failed.take(), Relaxed);
    o.allocated_bytes.fetch_add(allocated, Relaxed);
    o.freed_bytes.fetch_add(freed, Relaxed);
    o.current_bytes
        .fetch_add(allocated.wrapping_sub(freed), Relaxed);
    o.current_blocks.fetch_add(
        allocs.wrapping_sub(failed_allocs).wrapping_sub(deallocs),
        Relaxed,
    );
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
        // Each counter loaded once, so a slot's derived live figures agree
        // with the totals read with them.
        let allocs = t.allocs.get();
        let deallocs = t.deallocs.get();
        let allocated = t.allocated_bytes.get();
        let freed = t.freed_bytes.get();
        for (acc, c) in v.iter_mut().zip([
            allocs,
            deallocs,
            t.reallocs.get(),
            t.failed.get(),
            s.counts.lost.get(),
            allocated,
            freed,
            allocated.wrapping_sub(freed),
            allocs
                .wrapping_sub(t.failed_allocs.get())
                .wrapping_sub(deallocs),
        ]) {
            *acc = acc.wrapping_add(c);
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
