//! The per-thread state the writer thread can see, and the registry of it.
//!
//! Every thread that allocates owns one [`Slot`]. Slots are allocated from the
//! *inner* allocator (never the global one, which is us), linked into a
//! push-only list, and never freed: when a thread exits its slot is drained,
//! closed and handed to the next new thread. So the registry needs no lock and
//! no memory reclamation, and a thread's allocation path writes only to its own
//! slot (its own cache lines).
//!
//! # Who writes what
//!
//! - The owning thread writes the counters, the ring's producer side, the
//!   encoder and the stack table, and `seq` around each record.
//! - The writer thread (or the final flush, which holds the writer's lock)
//!   reads the counters, is the ring's consumer, and after the owner left
//!   (state [`EXITED`]) resets the slot and frees it.

pub(crate) mod full_ring;

use crate::stacks::StackTable;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use memscope_core::{Ring, StreamEncoder};

/// Bytes of each thread's ring: at five to seven bytes an event, about 350 000
/// events, or 15-30 ms of a thread that does nothing but allocate. The owner
/// wakes the writer when the ring is a quarter full; the ring absorbs the
/// writer thread being descheduled on a busy machine meanwhile (512 KiB lost
/// 5 % of the events of a 2-thread churn on 2 loaded cores: a scheduler time
/// slice is several milliseconds). Allocated zeroed from the inner allocator
/// when a thread first records (plus 48 KiB for its stack table), so only the
/// pages a thread's events reach become resident; kept for the next thread
/// when it exits.
pub const RING_BYTES: usize = 2 * 1024 * 1024;

/// The writer cuts a thread's bytes into frames of at most this many payload
/// bytes (at a record boundary), so a damaged frame costs little and readers
/// need a frame buffer of only about `FRAME_PAYLOAD_MAX + 0.5 %`.
pub const FRAME_PAYLOAD_MAX: usize = 32 * 1024;

/// Granularity of the record-boundary marks (see [`Slot::marks`]).
pub(crate) const MARK_CHUNK: usize = 8 * 1024;
const MARKS: usize = RING_BYTES / MARK_CHUNK;

/// Not owned by any thread.
pub(crate) const FREE: u8 = 0;
/// Owned by a running thread.
pub(crate) const LIVE: u8 = 1;
/// Its thread exited: the writer drains it, writes its end record, frees it.
pub(crate) const EXITED: u8 = 2;

/// A counter written by one thread only: a plain load and store instead of a
/// locked read-modify-write. Readers on other threads see a recent value.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Only the slot's single writer may call this.
    #[inline(always)]
    pub(crate) fn add(&self, by: u64) {
        // Relaxed: single writer, and readers want a recent value, not an
        // ordering (the seqlock in `Slot::seq` orders what must be consistent).
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    #[inline(always)]
    pub(crate) fn sub(&self, by: u64) {
        // Relaxed: as in `add`.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(by),
            Ordering::Relaxed,
        );
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> u64 {
        // Relaxed: see `add`.
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn take(&self) -> u64 {
        // Relaxed: called on a slot no thread owns.
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Live statistics of one thread (everything it allocated, recorded or not).
///
/// Only what an event must change is kept: two counters an alloc or free
/// (the allocation path's cost is a few plain stores). The live figures are
/// derived when read (`stats()`): `current_bytes = allocated_bytes -
/// freed_bytes` (a realloc's growth and shrinkage are in those two) and
/// `current_blocks = allocs - failed_allocs - deallocs`. A thread's live
/// figures may wrap below zero (a block freed by another thread than the one
/// that allocated it); the sum over threads is right.
#[derive(Default)]
pub(crate) struct ThreadStats {
    pub allocs: Counter,
    pub deallocs: Counter,
    pub reallocs: Counter,
    /// Allocs and reallocs that returned null.
    pub failed: Counter,
    /// Allocs (not reallocs) that returned null: they made no block.
    pub failed_allocs: Counter,
    pub allocated_bytes: Counter,
    pub freed_bytes: Counter,
}

impl ThreadStats {
    pub(crate) const fn new() -> Self {
        ThreadStats {
            allocs: Counter::new(),
            deallocs: Counter::new(),
            reallocs: Counter::new(),
            failed: Counter::new(),
            failed_allocs: Counter::new(),
            allocated_bytes: Counter::new(),
            freed_bytes: Counter::new(),
        }
    }
}

/// What a thread's stream attempted since its `Thread` record: the totals its
/// `End` record states. Changed only inside the `seq` window, together with
/// the ring, so a reader can take a consistent cut.
#[derive(Default)]
pub(crate) struct StreamCounts {
    pub allocs: Counter,
    pub deallocs: Counter,
    pub reallocs: Counter,
    pub failed: Counter,
    pub lost: Counter,
}

impl StreamCounts {
    pub(crate) const fn new() -> Self {
        StreamCounts {
            allocs: Counter::new(),
            deallocs: Counter::new(),
            reallocs: Counter::new(),
            failed: Counter::new(),
            lost: Counter::new(),
        }
    }
}

/// The big per-thread buffers, allocated only once a thread records.
pub(crate) struct Buffers {
    pub ring: Ring<RING_BYTES>,
    /// Owner only.
    pub stacks: UnsafeCell<StackTable>,
    /// Owner only: where a record is encoded (kept here rather than on the
    /// stack, where it would be zero-filled on every call).
    pub scratch: UnsafeCell<Scratch>,
}

/// Encoding space for one event: a new stack's record, the event (with the
/// lost and sync records before it), and the captured return addresses.
pub(crate) struct Scratch {
    pub bytes: [u8; crate::record::ENTRY_MAX],
    pub frames: [u64; crate::stacks::MAX_DEPTH],
}

/// One thread's shared state. 128-byte aligned so that no two threads' hot
/// fields ever share a cache line (or an adjacent-line prefetch pair).
#[repr(C, align(128))]
pub(crate) struct Slot {
    /// Next slot of the registry; set before the slot is published, then fixed.
    next: *const Slot,
    pub state: AtomicU8,
    /// Writer asked to wake (the ring passed a quarter full); the writer clears it.
    pub wake: AtomicBool,
    /// Stream id of the current owner's stream, 0 while it has none.
    pub stream: AtomicU32,
    /// Seqlock: odd while the owner is inside a record (ring + counters).
    pub seq: AtomicUsize,
    /// The timestamp of the owner's latest record, stored as soon as it is
    /// taken: a lower bound of every event the owner has not committed
    /// yet (its timestamps never decrease), for the writer's watermark
    /// while the owner is stuck in a record (see `writer::allows`).
    pub pending_ts: AtomicU64,
    /// Odd while the owner waits for room in its ring outside the seqlock
    /// window, holding an event whose timestamp it already read (see
    /// `record::retry_when_room`): the writer then holds its watermark
    /// down (see `writer::allows`).
    pub retrying: AtomicUsize,
    /// Reallocs the owner is inside, from before the inner call until their
    /// record is committed (see [`realloc_begin`]).
    pub reallocating: AtomicUsize,
    pub buffers: AtomicPtr<Buffers>,
    pub counts: StreamCounts,
    pub stats: ThreadStats,
    /// Owner only: the last ring position at which a record may be written
    /// in place without any check but this one (see
    /// `record::refresh_fast_until`); one behind the ring's head when none
    /// may.
    pub fast_until: UnsafeCell<usize>,
    /// Owner only: the ring position from which the next record carries a
    /// sync (see `record::SYNC_BYTES`).
    pub sync_at: UnsafeCell<usize>,
    /// Consumer side: bytes ever released from the ring (mirrors its tail).
    pub drained: UnsafeCell<usize>,
    /// Consumer side: the watermark this thread allowed at the writer's
    /// last drain (see `writer::allows`).
    pub horizon: UnsafeCell<u64>,
    /// For each `MARK_CHUNK` of ring positions, the first record boundary in
    /// it, so the writer can cut frames at record boundaries without parsing.
    pub marks: [AtomicUsize; MARKS],
    /// Owner only (the writer once the owner is gone).
    pub enc: UnsafeCell<StreamEncoder>,
    /// What the owner does when its ring is full (see [`full_ring`]).
    pub waiter: full_ring::Waiter,
}

// SAFETY: the `UnsafeCell` fields follow the ownership rules of the module
// docs (one owner thread at a time, handed over through `state` with
// Release/Acquire); everything else is atomic.
unsafe impl Sync for Slot {}

/// Before a recorded realloc's inner call: the block it releases may be
/// handed to another thread before the realloc's record is written, while
/// the decoder orders that release at the thread's previous timestamp, so
/// the writer's watermark must not pass that timestamp meanwhile (see
/// `writer::settled`). A count, not a flag: an inner allocator may realloc
/// through the global one. (A thread's very first allocator call has no
/// slot to count in yet: a realloc there is not covered.)
#[inline(always)]
pub(crate) fn realloc_begin(s: &Slot) {
    // Relaxed: only the owner writes it; the fence below orders it.
    let n = s.reallocating.load(Ordering::Relaxed);
    s.reallocating.store(n.wrapping_add(1), Ordering::Relaxed);
    // Release fence: the count is written before anything of the inner
    // call (as `record::enter` does for the seqlock).
    fence(Ordering::Release);
}

/// After a recorded realloc's record (see [`realloc_begin`]).
#[inline(always)]
pub(crate) fn realloc_end(s: &Slot) {
    // Relaxed: only the owner writes it.
    let n = s.reallocating.load(Ordering::Relaxed);
    // Release: a writer that Acquire-loads the lower count sees the record
    // committed.
    s.reallocating.store(n.wrapping_sub(1), Ordering::Release);
}

static HEAD: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

impl Slot {
    const fn new() -> Self {
        Slot {
            next: ptr::null(),
            state: AtomicU8::new(LIVE),
            wake: AtomicBool::new(false),
            stream: AtomicU32::new(0),
            seq: AtomicUsize::new(0),
            pending_ts: AtomicU64::new(0),
            retrying: AtomicUsize::new(0),
            reallocating: AtomicUsize::new(0),
            buffers: AtomicPtr::new(ptr::null_mut()),
            counts: StreamCounts::new(),
            stats: ThreadStats::new(),
            // One behind the empty ring's head 0: no in-place write yet.
            fast_until: UnsafeCell::new(usize::MAX),
            sync_at: UnsafeCell::new(0),
            drained: UnsafeCell::new(0),
            horizon: UnsafeCell::new(0),
            marks: [const { AtomicUsize::new(usize::MAX) }; MARKS],
            enc: UnsafeCell::new(StreamEncoder::new()),
            waiter: full_ring::Waiter::new(),
        }
    }

    /// A free slot, now owned by the caller, or a new one from `inner`.
    /// Null when `inner` has no memory. Lock-free: a CAS per free slot tried,
    /// and a CAS loop to publish a new one (threads starting at once retry).
    pub(crate) fn claim(inner: &dyn GlobalAlloc) -> *const Slot {
        for s in iter() {
            // Acquire: pairs with the Release that freed it, so the reset done
            // by the writer happens before our use.
            if s.state
                .compare_exchange(FREE, LIVE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return s;
            }
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { inner.alloc(Layout::new::<Slot>()) }.cast::<Slot>();
        if p.is_null() {
            return p;
        }
        // SAFETY: `p` is a fresh, suitably aligned block for one `Slot`.
        unsafe { p.write(Slot::new()) };
        // Relaxed: the CAS below re-reads it.
        let mut head = HEAD.load(Ordering::Relaxed);
        loop {
            // SAFETY: not yet published, so still exclusively ours.
            unsafe { (*p).next = head };
            // Release: publishes the slot's initialisation to readers that
            // Acquire-load HEAD.
            match HEAD.compare_exchange_weak(head, p, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return p,
                Err(h) => head = h,
            }
        }
    }

    /// The buffers, allocating them zeroed from `inner` the first time.
    /// Owner only.
    pub(crate) fn buffers_or_alloc(&self, inner: &dyn GlobalAlloc) -> Option<&Buffers> {
        // Relaxed: only the owner stores it, and the owner is us.
        let mut b = self.buffers.load(Ordering::Relaxed);
        if b.is_null() {
            // SAFETY: non-zero size. All-zero bytes are a valid empty `Ring`
            // (head, tail and every byte zero) and an empty `StackTable`
            // (every key zero means empty), both plain integers.
            b = unsafe { inner.alloc_zeroed(Layout::new::<Buffers>()) }.cast::<Buffers>();
            if b.is_null() {
                return None;
            }
            // Release: the writer Acquire-loads the pointer before reading the ring.
            self.buffers.store(b, Ordering::Release);
        }
        // SAFETY: set once, never freed; the ring is shared by design and the
        // stack table is only touched by the owner.
        Some(unsafe { &*b })
    }

    /// The buffers if allocated (writer side).
    pub(crate) fn buffers(&self) -> Option<&Buffers> {
        // Acquire: pairs with the Release in `buffers_or_alloc`.
        let b = self.buffers.load(Ordering::Acquire);
        // SAFETY: as in `buffers_or_alloc`.
        (!b.is_null()).then(|| unsafe { &*b })
    }

    /// Records that a record starts at ring position `at` (owner, before the
    /// push that publishes it).
    #[inline(always)]
    pub(crate) fn mark(&self, at: usize, end: usize) {
        if at / MARK_CHUNK != end / MARK_CHUNK {
            // The record after this one is the first to start in a new chunk
            // (records are far shorter than a chunk): remember where.
            let m = &self.marks[(end / MARK_CHUNK) % MARKS];
            // Relaxed: published by the ring's Release store of its head.
            m.store(end, Ordering::Relaxed);
        }
    }

    /// Undoes [`mark`](Self::mark) for a record that did not fit.
    #[inline(always)]
    pub(crate) fn unmark(&self, at: usize, end: usize) {
        if at / MARK_CHUNK != end / MARK_CHUNK {
            // Relaxed: as in `mark`; the ring's head never passed `end`, so
            // the writer ignores the mark until it is overwritten anyway.
            self.marks[(end / MARK_CHUNK) % MARKS].store(usize::MAX, Ordering::Relaxed);
        }
    }

    /// The first record boundary in chunk `chunk`, if known. Writer side,
    /// after an Acquire load of the ring's head.
    pub(crate) fn boundary_in(&self, chunk: usize) -> Option<usize> {
        // Relaxed: see `mark`.
        let m = self.marks[chunk % MARKS].load(Ordering::Relaxed);
        (m != usize::MAX && m / MARK_CHUNK == chunk).then_some(m)
    }
}

/// Every slot ever created, newest first.
pub(crate) fn iter() -> impl Iterator<Item = &'static Slot> {
    // Acquire: pairs with the Release that published each slot.
    let mut p = HEAD.load(Ordering::Acquire).cast_const();
    core::iter::from_fn(move || {
        // SAFETY: slots are never freed, and `next` is fixed before publication.
        let s = unsafe { p.as_ref()? };
        p = s.next;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn claimed_slots_are_registered_reused_and_zeroed_buffers_are_empty() {
        let a = Slot::claim(&System);
        // SAFETY: slots are never freed.
        let a = unsafe { &*a };
        assert!(iter().any(|s| core::ptr::eq(s, a)));
        let b = a.buffers_or_alloc(&System).expect("memory");
        assert!(b.ring.is_empty());
        assert_eq!(b.ring.capacity(), RING_BYTES);
        // SAFETY: single-threaded test: we are producer and consumer.
        unsafe {
            assert!(b.ring.push(&[b"abc"]));
            let mut got = Vec::new();
            b.ring.read(|x, y| {
                got.extend_from_slice(x);
                got.extend_from_slice(y);
                x.len() + y.len()
            });
            assert_eq!(got, b"abc");
        }
        crate::local::release_slot(a);
        // Other tests may claim concurrently; a free slot is found or a new one made.
        let c = Slot::claim(&System);
        assert!(!c.is_null());
    }

    #[test]
    fn marks_find_record_boundaries_and_ignore_stale_ones() {
        let s = Slot::new();
        assert_eq!(s.boundary_in(1), None);
        // A record from 8190 to 8200 crosses into chunk 1: 8200 is its first boundary.
        s.mark(8190, 8200);
        assert_eq!(s.boundary_in(1), Some(8200));
        // A lap later the same mark is stale for chunk 1 + MARKS.
        assert_eq!(s.boundary_in(1 + MARKS), None);
        s.unmark(8190, 8200);
        assert_eq!(s.boundary_in(1), None);
        s.mark(100, 200); // inside chunk 0: no mark
        assert_eq!(s.boundary_in(0), None);
    }
}
