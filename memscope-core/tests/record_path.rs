//! The record path never allocates and never re-enters the allocator.
//!
//! The global allocator of this test binary is a guard: it forwards to
//! `System`, and counts a violation whenever it is called while a
//! `TrackingAllocator` under test is running on the same thread outside its
//! inner allocator. Had that tracking allocator been the global allocator,
//! such a call would have re-entered it; here it is caught instead. The inner
//! allocator of every tracking allocator under test counts its calls, can be
//! told to fail (return null), and flags being entered twice at once.
//!
//! Each test then decodes what the recorder wrote and checks it against what
//! was done: every call recorded, failures included; a full ring counts
//! events lost and the next record says exactly how many; `Stream::finish`
//! writes totals that match.

use core::alloc::{GlobalAlloc, Layout};
use memscope_core::frame::{Deframer, FrameEvent};
use memscope_core::wire::{Alloc, Dealloc, End, Realloc, Record, StreamBase};
use memscope_core::{
    Clock, NoClock, Recorder, RingSink, StatsOnly, Stream, StreamInfo, TrackingAllocator,
};
use std::alloc::System;
use std::cell::Cell;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

thread_local! {
    /// A tracking allocator under test is running (and not its inner allocator).
    static IN_RECORD_PATH: Cell<bool> = const { Cell::new(false) };
    /// The inner allocator is running.
    static IN_INNER: Cell<bool> = const { Cell::new(false) };
    /// Global allocations made from the record path, and inner re-entries.
    static VIOLATIONS: Cell<usize> = const { Cell::new(0) };
}

fn violation() {
    let _ = VIOLATIONS.try_with(|v| v.set(v.get() + 1));
}

fn in_record_path() -> bool {
    IN_RECORD_PATH.try_with(Cell::get).unwrap_or(false)
}

/// The global allocator: `System`, plus the check.
struct Guard;

// SAFETY: forwards every call to `System` unchanged.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_record_path() {
            violation();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if in_record_path() {
            violation();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_record_path() {
            violation();
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_record_path() {
            violation();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

/// Runs `f` (a call of a tracking allocator under test) as the record path.
fn tracked<T>(f: impl FnOnce() -> T) -> T {
    IN_RECORD_PATH.with(|c| c.set(true));
    let t = f();
    IN_RECORD_PATH.with(|c| c.set(false));
    t
}

/// The inner allocator: `System`, counted, able to fail.
struct Counting {
    allocs: AtomicUsize,
    zeroed: AtomicUsize,
    deallocs: AtomicUsize,
    reallocs: AtomicUsize,
    fail: AtomicBool,
}

impl Counting {
    const fn new() -> Self {
        Counting {
            allocs: AtomicUsize::new(0),
            zeroed: AtomicUsize::new(0),
            deallocs: AtomicUsize::new(0),
            reallocs: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        }
    }

    /// Runs the inner allocator's work outside the record path (its own use
    /// of `System` is legitimate), flagging a call that nests in another.
    fn inner<T>(&self, counter: &AtomicUsize, f: impl FnOnce() -> T) -> T {
        counter.fetch_add(1, Relaxed);
        if IN_INNER.with(|c| c.replace(true)) {
            violation();
        }
        let outer = IN_RECORD_PATH.with(|c| c.replace(false));
        let t = f();
        IN_RECORD_PATH.with(|c| c.set(outer));
        IN_INNER.with(|c| c.set(false));
        t
    }

    fn failing(&self) -> bool {
        self.fail.load(Relaxed)
    }
}

// SAFETY: forwards to `System`, or returns null (allowed for alloc and realloc).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.inner(&self.allocs, || {
            if self.failing() {
                null_mut()
            } else {
                // SAFETY: the caller's contract, passed on.
                unsafe { System.alloc(layout) }
            }
        })
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.inner(&self.zeroed, || {
            if self.failing() {
                null_mut()
            } else {
                // SAFETY: as above.
                unsafe { System.alloc_zeroed(layout) }
            }
        })
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        self.inner(&self.deallocs, || unsafe { System.dealloc(ptr, layout) })
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.inner(&self.reallocs, || {
            if self.failing() {
                null_mut()
            } else {
                // SAFETY: as above.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        })
    }
}

/// A clock that ticks once per reading, so each timestamp says which reading it was.
struct Ticks(AtomicU64);

impl Clock for Ticks {
    fn now(&self) -> u64 {
        self.0.fetch_add(1, Relaxed) + 1
    }
    fn ticks_per_second(&self) -> u64 {
        1_000_000
    }
}

/// Drains a ring sink and decodes everything in it. Every record must resolve.
fn decode<const N: usize>(sink: &RingSink<N>, base: &mut StreamBase) -> Vec<Record<'static>> {
    let mut bytes = Vec::new();
    sink.drain(|a, b| {
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        a.len() + b.len()
    });
    let mut buf = vec![0u8; 4096];
    let mut deframer = Deframer::new(&mut buf);
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (n, ev) = deframer.push(rest);
        rest = &rest[n..];
        match ev {
            Some(FrameEvent::Frame {
                stream, records, ..
            }) => {
                assert_eq!(stream, 0);
                for r in base.records(records) {
                    let (rec, resolved) = r.expect("a recorder writes only valid records");
                    assert!(resolved, "{rec:?} unresolved in an undamaged stream");
                    out.push(own(rec));
                }
            }
            Some(FrameEvent::Damaged {
                offset,
                len,
                reason,
            }) => panic!("damage at {offset}+{len}: {reason}"),
            None => {}
        }
    }
    assert!(
        deframer.finish().is_none(),
        "the sink holds whole frames only"
    );
    out
}

/// The records these tests compare carry no borrowed data, except the header's
/// strings, which come from `'static` `StreamInfo` here: keep only what is compared.
fn own(rec: Record<'_>) -> Record<'static> {
    match rec {
        Record::Header(h) => {
            assert_eq!(h.program, "record-path-test");
            Record::Mark { name: "header" }
        }
        Record::Alloc(a) => Record::Alloc(a),
        Record::Dealloc(d) => Record::Dealloc(d),
        Record::Realloc(r) => Record::Realloc(r),
        Record::Sync(d) => Record::Sync(d),
        Record::Lost { count } => Record::Lost { count },
        Record::End(e) => Record::End(e),
        other => panic!("unexpected {other:?}"),
    }
}

fn violations() -> usize {
    VIOLATIONS.with(Cell::get)
}

#[test]
fn the_guard_catches_a_recorder_that_allocates() {
    struct Leaky;
    // SAFETY: calls `inner` once and returns its result; allocating is the
    // very bug this test wants the guard to catch.
    unsafe impl Recorder for Leaky {
        fn alloc(&self, _: Layout, _: bool, inner: impl FnOnce() -> *mut u8) -> *mut u8 {
            let p = inner();
            drop(Box::new(p as usize));
            p
        }
        fn dealloc(&self, _: *mut u8, _: Layout, inner: impl FnOnce()) {
            inner()
        }
        fn realloc(
            &self,
            _: *mut u8,
            _: Layout,
            _: usize,
            inner: impl FnOnce() -> *mut u8,
        ) -> *mut u8 {
            inner()
        }
        fn stats(&self) -> memscope_core::StatsSnapshot {
            Default::default()
        }
    }
    let heap = TrackingAllocator::new(Counting::new(), Leaky);
    let before = violations();
    let l = Layout::from_size_align(8, 8).unwrap();
    // SAFETY: `l` is non-zero-sized; the block goes back with the same layout.
    let p = tracked(|| unsafe { heap.alloc(l) });
    assert_eq!(violations(), before + 2, "the Box's alloc and dealloc");
    // SAFETY: as above.
    tracked(|| unsafe { heap.dealloc(p, l) });
    assert_eq!(violations(), before + 2);
}

static STREAM_HEAP: TrackingAllocator<Counting, Stream<RingSink<8192>, Ticks>> =
    TrackingAllocator::new(
        Counting::new(),
        Stream::new(
            RingSink::new(),
            Ticks(AtomicU64::new(0)),
            StreamInfo::new("record-path-test"),
        ),
    );

#[test]
fn stream_records_every_call_without_allocating() {
    let heap = &STREAM_HEAP;
    let inner = heap.inner();
    let before = violations();
    let l24 = Layout::from_size_align(24, 8).unwrap();
    let l100 = Layout::from_size_align(100, 16).unwrap();
    let l4000 = Layout::from_size_align(4000, 8).unwrap();
    let big_align = Layout::from_size_align(64, 4096).unwrap();
    let l32 = Layout::from_size_align(32, 8).unwrap();

    // SAFETY: every layout is non-zero-sized; every block is freed once with
    // the layout it has; a failed realloc leaves the old block valid.
    let (p1, p2, p3, p4) = tracked(|| unsafe {
        let p1 = heap.alloc(l24);
        let p2 = heap.alloc_zeroed(l100);
        assert!(std::slice::from_raw_parts(p2, 100).iter().all(|&b| b == 0));
        let p3 = heap.realloc(p1, l24, 4000);
        let p4 = heap.alloc(big_align);
        heap.dealloc(p2, l100);
        inner.fail.store(true, Relaxed);
        assert!(heap.alloc(l32).is_null());
        assert!(heap.realloc(p3, l4000, 8000).is_null());
        inner.fail.store(false, Relaxed);
        heap.dealloc(p3, l4000);
        heap.dealloc(p4, big_align);
        (p1, p2, p3, p4)
    });
    assert!(tracked(|| heap.recorder().finish()));
    assert_eq!(
        violations(),
        before,
        "the record path allocated or re-entered"
    );

    // One inner call per call: realloc stays a realloc.
    assert_eq!(
        [
            &inner.allocs,
            &inner.zeroed,
            &inner.deallocs,
            &inner.reallocs
        ]
        .map(|c| c.load(Relaxed)),
        [3, 1, 3, 2]
    );
    let s = heap.stats();
    assert_eq!(
        (s.allocs, s.deallocs, s.reallocs, s.failed, s.lost),
        (4, 3, 2, 2, 0)
    );
    assert_eq!(
        (s.current_bytes, s.current_blocks, s.peak_bytes),
        (0, 0, 100 + 4000 + 64)
    );

    let a = |p: *mut u8| Some(p as u64);
    let mut base = StreamBase::new();
    let got = decode(heap.recorder().sink(), &mut base);
    let want = [
        Record::Mark { name: "header" },
        Record::Sync(Default::default()),
        Record::Alloc(Alloc {
            ts: 1,
            addr: a(p1),
            size: 24,
            align: 8,
            zeroed: false,
            stack: None,
        }),
        Record::Alloc(Alloc {
            ts: 2,
            addr: a(p2),
            size: 100,
            align: 16,
            zeroed: true,
            stack: None,
        }),
        Record::Realloc(Realloc {
            ts: 3,
            old_addr: p1 as u64,
            old_size: 24,
            new_addr: a(p3),
            new_size: 4000,
            align: 8,
            stack: None,
        }),
        Record::Alloc(Alloc {
            ts: 4,
            addr: a(p4),
            size: 64,
            align: 4096,
            zeroed: false,
            stack: None,
        }),
        // A free carries the stream's previous timestamp: a lower bound.
        Record::Dealloc(Dealloc {
            ts: 4,
            ts_exact: false,
            addr: p2 as u64,
            size: 100,
            align: 16,
            stack: None,
        }),
        Record::Alloc(Alloc {
            ts: 5,
            addr: None,
            size: 32,
            align: 8,
            zeroed: false,
            stack: None,
        }),
        Record::Realloc(Realloc {
            ts: 6,
            old_addr: p3 as u64,
            old_size: 4000,
            new_addr: None,
            new_size: 8000,
            align: 8,
            stack: None,
        }),
        Record::Dealloc(Dealloc {
            ts: 6,
            ts_exact: false,
            addr: p3 as u64,
            size: 4000,
            align: 8,
            stack: None,
        }),
        Record::Dealloc(Dealloc {
            ts: 6,
            ts_exact: false,
            addr: p4 as u64,
            size: 64,
            align: 4096,
            stack: None,
        }),
        Record::End(End {
            allocs: 4,
            deallocs: 3,
            reallocs: 2,
            failed: 2,
            lost: 0,
            streams: 1,
        }),
    ];
    assert_eq!(got, want);
}

static SMALL_HEAP: TrackingAllocator<Counting, Stream<RingSink<256>, NoClock>> =
    TrackingAllocator::new(
        Counting::new(),
        Stream::new(
            RingSink::new(),
            NoClock,
            StreamInfo::new("record-path-test"),
        ),
    );

#[test]
fn a_full_ring_counts_what_it_drops_and_says_so() {
    let heap = &SMALL_HEAP;
    let before = violations();
    let l = Layout::from_size_align(48, 8).unwrap();
    let performed = if cfg!(miri) { 60 } else { 400 };
    // SAFETY: non-zero-sized layout; each block is freed once, with it.
    tracked(|| unsafe {
        for _ in 0..performed / 2 {
            let p = heap.alloc(l);
            heap.dealloc(p, l);
        }
    });
    assert_eq!(violations(), before);
    let lost_first = heap.stats().lost;
    assert!(
        lost_first > 0,
        "a 256-byte ring cannot hold {performed} events"
    );

    let mut base = StreamBase::new();
    let mut got = decode(heap.recorder().sink(), &mut base);
    let events = |recs: &[Record<'_>]| recs.iter().filter(|r| r.uses_base()).count();
    assert_eq!(
        events(&got) + lost_first,
        performed,
        "recorded + lost == performed"
    );
    assert!(
        !got.iter().any(|r| matches!(r, Record::Lost { .. })),
        "nothing said yet"
    );

    // Room again: the next event says how many were dropped, first.
    // SAFETY: as above.
    tracked(|| unsafe {
        let p = heap.alloc(l);
        heap.dealloc(p, l);
    });
    assert!(tracked(|| heap.recorder().finish()));
    assert_eq!(violations(), before);
    let more = decode(heap.recorder().sink(), &mut base);
    assert_eq!(
        more[0],
        Record::Lost {
            count: lost_first as u64
        }
    );
    assert_eq!(events(&more), 2);
    let s = heap.stats();
    assert_eq!(s.lost, lost_first, "nothing lost once drained");
    assert_eq!(
        more.last(),
        Some(&Record::End(End {
            allocs: performed as u64 / 2 + 1,
            deallocs: performed as u64 / 2 + 1,
            reallocs: 0,
            failed: 0,
            lost: lost_first as u64,
            streams: 1,
        }))
    );
    got.extend(more);
    let reported: u64 = got
        .iter()
        .map(|r| {
            if let Record::Lost { count } = r {
                *count
            } else {
                0
            }
        })
        .sum();
    assert_eq!(events(&got) as u64 + reported, performed as u64 + 2);
}

static STATS_HEAP: TrackingAllocator<Counting, StatsOnly> =
    TrackingAllocator::new(Counting::new(), StatsOnly::new());

#[test]
fn stats_only_counts_without_allocating() {
    let heap = &STATS_HEAP;
    let before = violations();
    let l = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: non-zero-sized layouts; blocks freed once with their layout.
    tracked(|| unsafe {
        let a = heap.alloc(l);
        let b = heap.alloc_zeroed(l);
        let a = heap.realloc(a, l, 1000);
        let a = heap.realloc(a, Layout::from_size_align(1000, 8).unwrap(), 10);
        heap.inner().fail.store(true, Relaxed);
        assert!(heap.alloc(l).is_null());
        heap.inner().fail.store(false, Relaxed);
        heap.dealloc(a, Layout::from_size_align(10, 8).unwrap());
        heap.dealloc(b, l);
    });
    assert_eq!(violations(), before);
    let s = heap.stats();
    assert_eq!(
        (s.allocs, s.deallocs, s.reallocs, s.failed, s.lost),
        (3, 2, 2, 1, 0)
    );
    assert_eq!((s.current_bytes, s.current_blocks), (0, 0));
    assert_eq!(s.peak_bytes, 1000 + 64);
    assert_eq!(s.allocated_bytes, 64 + 64 + 936);
    assert_eq!(s.freed_bytes, 990 + 10 + 64);
}
