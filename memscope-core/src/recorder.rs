//! The recorders memscope-core provides: statistics only, and one stream
//! under a critical section (microcontrollers). memscope-std brings a
//! per-thread recorder for hosts.

mod frame_out;

use crate::alloc::Recorder;
use crate::clock::Clock;
use crate::sink::Sink;
use crate::stack::{NoStacks, StackSource, MAX_CAPTURE};
use crate::stats::{self, Stats, StatsSnapshot};
use crate::stream::SYNC_INTERVAL;
use crate::wire::{self, ext, Delta, HeapRegion};
use core::alloc::Layout;
use core::cell::RefCell;
use critical_section::Mutex;
use frame_out::FrameOut;
use portable_atomic::{AtomicUsize, Ordering};

/// Which `GlobalAlloc` method a [`Call`] was: its record's kind on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum CallKind {
    Alloc = wire::kind::ALLOC,
    AllocZeroed = wire::kind::ALLOC_ZEROED,
    Dealloc = wire::kind::DEALLOC,
    Realloc = wire::kind::REALLOC,
}

/// What one `GlobalAlloc` call did, in machine words: what [`Stream`] needs
/// past the inner call, so that part exists once.
#[derive(Clone, Copy)]
struct Call {
    kind: CallKind,
    /// The block passed in (dealloc, realloc).
    ptr: usize,
    /// `Layout::size` of the layout passed in.
    size: usize,
    align: usize,
    /// Realloc's new size.
    new_size: usize,
    /// The block returned (alloc, realloc), 0 for null.
    result: usize,
}

impl Call {
    #[inline]
    fn new(kind: CallKind, ptr: *mut u8, layout: Layout, new_size: usize, result: *mut u8) -> Self {
        Call {
            kind,
            ptr: ptr as usize,
            size: layout.size(),
            align: layout.align(),
            new_size,
            result: result as usize,
        }
    }
}

/// Counts, records nothing: the cheapest way to know current and peak heap use.
#[derive(Debug, Default)]
pub struct StatsOnly {
    stats: Stats,
}

impl StatsOnly {
    /// All counters zero.
    pub const fn new() -> Self {
        StatsOnly {
            stats: Stats::new(),
        }
    }
}

// SAFETY: each method calls `inner` once and returns its result; counting
// neither allocates, blocks nor panics.
unsafe impl Recorder for StatsOnly {
    #[inline]
    fn alloc(&self, layout: Layout, _zeroed: bool, inner: impl FnOnce() -> *mut u8) -> *mut u8 {
        let p = inner();
        self.stats.on_alloc(layout.size(), !p.is_null());
        p
    }

    #[inline]
    fn dealloc(&self, _ptr: *mut u8, layout: Layout, inner: impl FnOnce()) {
        inner();
        self.stats.on_dealloc(layout.size());
    }

    #[inline]
    fn realloc(
        &self,
        _ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        inner: impl FnOnce() -> *mut u8,
    ) -> *mut u8 {
        let p = inner();
        self.stats.on_realloc(layout.size(), new_size, !p.is_null());
        p
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

/// What a [`Stream`] announces in its header.
#[derive(Clone, Copy, Debug)]
pub struct StreamInfo {
    /// Program name or path.
    pub program: &'static str,
    /// Target triple or core name.
    pub target: &'static str,
    /// GNU build-id of the firmware ELF, when the program knows it.
    pub build_id: &'static [u8],
    /// The heap the inner allocator manages, if known (fragmentation maps).
    pub heap: Option<HeapRegion>,
}

impl StreamInfo {
    /// Just a program name.
    pub const fn new(program: &'static str) -> Self {
        StreamInfo {
            program,
            target: "",
            build_id: &[],
            heap: None,
        }
    }

    /// Announces the heap region `[start, start + len)`.
    pub const fn with_heap(mut self, start: usize, len: usize) -> Self {
        self.heap = Some(HeapRegion {
            start: start as u64,
            len: len as u64,
        });
        self
    }

    /// Names the target.
    pub const fn with_target(mut self, target: &'static str) -> Self {
        self.target = target;
        self
    }
}

struct StreamState<K> {
    /// The base the next record is encoded against; it moves only once a
    /// frame is in the sink (docs/FORMAT.md, "Deltas, Sync and Lost").
    base: Delta,
    /// Records committed since the last Sync; [`SYNC_INTERVAL`] forces one.
    since_sync: u32,
    /// Events dropped and not yet reported by a Lost record.
    lost: usize,
    info: StreamInfo,
    header_sent: bool,
    stacks: K,
}

/// Records every event as one frame of stream 0 into a [`Sink`], inside one
/// critical section that also covers the inner allocator call.
///
/// That critical section is what makes the recorded order the allocator's
/// order: no interrupt handler can allocate or free between the inner call and
/// its record, so per address a free always precedes the allocation that
/// reuses it. It also makes this the sole producer of the sink. The section
/// lasts one inner call plus a couple of hundred instructions: the counters,
/// the record, its COBS pass and the sink's copy.
///
/// The header (and heap region) goes out before the first event; until the
/// sink has room for it, events are counted as lost.
///
/// The frames are written by a firmware-sized encoder of this module (one
/// buffer, COBS in place): the bytes are exactly what
/// [`StreamEncoder`](crate::StreamEncoder) and
/// [`frame::encode_frame`](crate::frame::encode_frame) would write, which
/// the tests check record by record.
pub struct Stream<S, C, K = NoStacks> {
    sink: S,
    clock: C,
    stats: Stats,
    state: Mutex<RefCell<StreamState<K>>>,
    /// Events that found the state already borrowed: an allocation from an
    /// NMI or HardFault handler that interrupted a record. Folded into the
    /// lost count by the next record.
    reentered: AtomicUsize,
}

/// Alignment code of a heap-event tag (docs/FORMAT.md, "Heap-event records"):
/// `align = 1 << code` for 1 to 64, else 7 and an explicit varint.
#[inline(always)]
fn align_code(align: usize) -> u8 {
    // `align & (align - 1)` rather than `is_power_of_two`, a popcount on
    // cores without one.
    if align != 0 && align & (align - 1) == 0 && align < (1 << ALIGN_EXPLICIT) {
        align.trailing_zeros() as u8
    } else {
        ALIGN_EXPLICIT
    }
}

/// Tag bits of heap events (docs/FORMAT.md, "Heap-event records").
const ALIGN_EXPLICIT: u8 = 7;
const ALIGN_SHIFT: u8 = 3;
const FLAG_STACK: u8 = 0b0100_0000;
/// Alloc and realloc: the inner allocator returned null.
const FLAG_FAILED: u8 = 0b1000_0000;

impl<S: Sink, C: Clock> Stream<S, C> {
    /// A recorder writing to `sink` with timestamps from `clock`.
    pub const fn new(sink: S, clock: C, info: StreamInfo) -> Self {
        Self::with_stacks(sink, clock, info, NoStacks)
    }
}

impl<S: Sink, C: Clock, K: StackSource> Stream<S, C, K> {
    /// A recorder that also gives allocations and reallocations the call
    /// stack `stacks` captures (for example memscope-core's
    /// `cortex_m::FrameChain`).
    pub const fn with_stacks(sink: S, clock: C, info: StreamInfo, stacks: K) -> Self {
        Stream {
            sink,
            clock,
            stats: Stats::new(),
            state: Mutex::new(RefCell::new(StreamState {
                base: Delta { ts: 0, addr: 0 },
                // The stream's first record is preceded by a Sync.
                since_sync: SYNC_INTERVAL,
                lost: 0,
                info,
                header_sent: false,
                stacks,
            })),
            reentered: AtomicUsize::new(0),
        }
    }

    /// Announces the heap `[start, start + len)` in the header, for heaps
    /// whose address is only known at run time (a `static` array's address is
    /// not a constant). Returns false once the header is out: call it before
    /// the first allocation.
    pub fn set_heap(&self, start: usize, len: usize) -> bool {
        critical_section::with(|cs| {
            let Ok(mut st) = self.state.borrow(cs).try_borrow_mut() else {
                return false;
            };
            if st.header_sent {
                return false;
            }
            st.info = st.info.with_heap(start, len);
            true
        })
    }

    /// The sink (to drain a [`RingSink`](crate::RingSink), for instance).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The clock (to start a `cortex_m::DwtClock`, for instance).
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Writes the end record with the totals so far, which lets a reader prove
    /// the stream complete. Call it before the program stops; it may be called
    /// again later (the last one counts). Returns whether the sink took it.
    pub fn finish(&self) -> bool {
        critical_section::with(|cs| {
            let Ok(mut st) = self.state.borrow(cs).try_borrow_mut() else {
                return false;
            };
            let st = &mut *st;
            if !self.send_header(cs, st) {
                return false;
            }
            self.fold_reentered(st);
            let s = self.stats.snapshot();
            // Every lost event is reported (the Lost record `open` puts first)
            // before the end claims the totals.
            let mut f = FrameOut::new(false);
            let synced = open(st, &mut f);
            f.ext(
                ext::END as u8,
                #[inline(never)]
                |f: &mut FrameOut| {
                    for v in [s.allocs, s.deallocs, s.reallocs, s.failed, s.lost, 1] {
                        f.varint(v as u64);
                    }
                },
            );
            let base = st.base;
            self.close(cs, st, &mut f, synced, base)
        })
    }

    #[inline(always)]
    fn fold_reentered(&self, st: &mut StreamState<K>) {
        // A load first: on a core without compare-and-swap `swap` is a
        // critical section of its own, and the count is almost always 0.
        // Relaxed: the counter is independent of any other memory.
        if self.reentered.load(Ordering::Relaxed) != 0 {
            let n = self.reentered.swap(0, Ordering::Relaxed);
            st.lost = st.lost.wrapping_add(n);
        }
    }

    /// Sends the header frame unless it is out already; returns whether it is.
    #[inline(always)]
    fn send_header(
        &self,
        cs: critical_section::CriticalSection<'_>,
        st: &mut StreamState<K>,
    ) -> bool {
        st.header_sent || self.send_header_now(cs, st)
    }

    #[cold]
    #[inline(never)]
    fn send_header_now(
        &self,
        cs: critical_section::CriticalSection<'_>,
        st: &mut StreamState<K>,
    ) -> bool {
        let info = &st.info;
        // One 0x00 goes before the header frame: after a reset in the middle
        // of a frame, it ends the half frame, so the new session's header is
        // read instead of lost with it (a reader skips the empty frame).
        let mut f = FrameOut::new(true);
        // The Header's body as postcard writes it (field order of
        // `wire::Header`): a fixed array is its bytes, a u8 one byte, other
        // integers varints, strings and byte slices a length and the bytes.
        f.ext(
            ext::HEADER as u8,
            #[inline(never)]
            |f: &mut FrameOut| {
                f.bytes(&wire::MAGIC);
                f.varint(wire::FORMAT_VERSION.into());
                f.byte(core::mem::size_of::<usize>() as u8);
                f.varint(self.clock.ticks_per_second());
                for field in [
                    info.program.as_bytes(),
                    info.build_id,
                    info.target.as_bytes(),
                ] {
                    f.varint(field.len() as u64);
                    f.bytes(field);
                }
            },
        );
        if let Some(r) = info.heap {
            f.ext(
                ext::HEAP_REGION as u8,
                #[inline(never)]
                |f: &mut FrameOut| {
                    f.varint(r.start);
                    f.varint(r.len);
                },
            );
        }
        st.header_sent = f
            .finish()
            .is_some_and(|frame| self.sink.write_frame_locked(cs, frame));
        st.header_sent
    }

    /// Offers the finished frame `f` to the sink and, if it took it, commits:
    /// the base becomes `next`, the reported losses are cleared, and the sync
    /// counter moves on.
    #[inline]
    fn close(
        &self,
        cs: critical_section::CriticalSection<'_>,
        st: &mut StreamState<K>,
        f: &mut FrameOut,
        synced: bool,
        next: Delta,
    ) -> bool {
        if !f
            .finish()
            .is_some_and(|frame| self.sink.write_frame_locked(cs, frame))
        {
            return false;
        }
        st.base = next;
        // Inside the critical section nothing else counts losses: all of
        // them were in the frame's Lost record.
        st.lost = 0;
        st.since_sync = if synced { 1 } else { st.since_sync + 1 };
        true
    }

    /// Runs `op` (the inner allocator call) and records what it did, all in
    /// one critical section. Only the inner call is generic: the rest is one
    /// out-of-line function, one copy in flash for the four `GlobalAlloc` methods.
    #[inline]
    fn record<T>(&self, op: impl FnOnce() -> (T, Call)) -> T {
        critical_section::with(|cs| {
            let (t, call) = op();
            self.after(cs, call);
            t
        })
    }

    /// Counts the call and records it: one encoder for the three kinds of
    /// heap event (docs/FORMAT.md, "Heap-event records"), written straight
    /// into the frame.
    #[inline(never)]
    fn after(&self, cs: critical_section::CriticalSection<'_>, call: Call) {
        let dealloc = call.kind == CallKind::Dealloc;
        let realloc = call.kind == CallKind::Realloc;
        // A free cannot fail; an allocation failed when it returned null.
        let ok = dealloc || call.result != 0;
        let (counted, old, new) = match call.kind {
            CallKind::Alloc | CallKind::AllocZeroed => (stats::CallKind::Alloc, 0, call.size),
            CallKind::Dealloc => (stats::CallKind::Dealloc, call.size, 0),
            CallKind::Realloc => (stats::CallKind::Realloc, call.size, call.new_size),
        };
        self.stats.on_call_locked(cs, counted, ok, old, new);
        let Ok(mut st) = self.state.borrow(cs).try_borrow_mut() else {
            // Re-entered from an exception that cannot be masked: the call
            // is done and counted; record nothing.
            self.stats.on_lost_locked(cs);
            // Relaxed: an independent counter, read by the next record.
            self.reentered.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let st = &mut *st;
        self.fold_reentered(st);
        // Allocations read the clock after the inner call: an upper bound
        // (see `clock`). A free carries the stream's previous timestamp, a
        // lower bound, and so no timestamp field.
        let ts = if dealloc { 0 } else { self.clock.now() };
        let stack = if K::ENABLED && !dealloc {
            self.attach_stack(cs, st)
        } else {
            None
        };
        if !self.send_header(cs, st) {
            return self.lose(cs, st);
        }
        let mut f = FrameOut::new(false);
        let synced = open(st, &mut f);
        let base = st.base;
        let mut next = base;
        let code = align_code(call.align);
        let mut tag = call.kind as u8 | code << ALIGN_SHIFT;
        if !ok {
            tag |= FLAG_FAILED;
        }
        if stack.is_some() {
            tag |= FLAG_STACK;
        }
        f.byte(tag);
        if let Some(id) = stack {
            f.varint(id.into());
        }
        if !dealloc {
            f.varint(ts.wrapping_sub(base.ts));
            next.ts = ts;
        }
        // The first address: the block returned (alloc; absent when it
        // failed) or passed in (dealloc, realloc), from the stream's base.
        let first = if dealloc || realloc {
            call.ptr
        } else {
            call.result
        };
        if ok || realloc {
            f.addr(first as u64, base.addr);
            next.addr = first as u64;
        }
        f.varint(call.size as u64);
        if realloc {
            if ok {
                f.addr(call.result as u64, call.ptr as u64);
                next.addr = call.result as u64;
            }
            f.varint(call.new_size as u64);
        }
        if code == ALIGN_EXPLICIT {
            f.varint(call.align as u64);
        }
        if !self.close(cs, st, &mut f, synced, next) {
            self.lose(cs, st);
        }
    }

    /// The event could not be recorded: the next frame's Lost record says so.
    #[inline(always)]
    fn lose(&self, cs: critical_section::CriticalSection<'_>, st: &mut StreamState<K>) {
        st.lost = st.lost.wrapping_add(1);
        self.stats.on_lost_locked(cs);
    }

    /// Captures the call stack of an alloc or realloc and sends it if it is
    /// new; returns its id. Without room for a new stack the event goes out
    /// without one.
    #[inline(never)]
    fn attach_stack(
        &self,
        cs: critical_section::CriticalSection<'_>,
        st: &mut StreamState<K>,
    ) -> Option<u32> {
        let mut frames = [0u64; MAX_CAPTURE];
        let n = st.stacks.capture(&mut frames).min(MAX_CAPTURE);
        let frames = frames.get(..n).filter(|f| !f.is_empty())?;
        let interned = st.stacks.intern(frames);
        if !interned.known {
            if !self.send_header(cs, st) {
                return None;
            }
            let mut f = FrameOut::new(false);
            let synced = open(st, &mut f);
            // id, count, then each address as the zigzag distance from the
            // one before (the first from 0).
            f.ext_often(
                ext::STACK as u8,
                #[inline(never)]
                |f: &mut FrameOut| {
                    f.varint(interned.id.into());
                    f.varint(n as u64);
                    let mut prev = 0;
                    for &a in frames {
                        f.addr(a, prev);
                        prev = a;
                    }
                },
            );
            let base = st.base;
            if !self.close(cs, st, &mut f, synced, base) {
                return None;
            }
            st.stacks.sent(interned);
        }
        Some(interned.id)
    }
}

/// Starts a frame of the stream's next records: a Lost record with the
/// events dropped since the last frame, and a Sync (from the current base)
/// when one is due. Returns whether it wrote a Sync.
#[inline]
fn open<K>(st: &StreamState<K>, f: &mut FrameOut) -> bool {
    if st.lost > 0 {
        f.byte(wire::kind::LOST);
        f.varint(st.lost as u64);
    }
    let synced = st.since_sync >= SYNC_INTERVAL;
    if synced {
        f.byte(wire::kind::SYNC);
        f.varint(st.base.ts);
        f.varint(st.base.addr);
    }
    synced
}

// SAFETY: `record` calls `op` exactly once on every path, and each `op` below
// calls `inner` once and returns its result. Encoding works on stack buffers,
// `try_borrow_mut` cannot panic, and the sink never blocks (its contract).
unsafe impl<S: Sink, C: Clock, K: StackSource> Recorder for Stream<S, C, K> {
    #[inline]
    fn alloc(&self, layout: Layout, zeroed: bool, inner: impl FnOnce() -> *mut u8) -> *mut u8 {
        self.record(|| {
            let p = inner();
            let kind = if zeroed {
                CallKind::AllocZeroed
            } else {
                CallKind::Alloc
            };
            (p, Call::new(kind, core::ptr::null_mut(), layout, 0, p))
        })
    }

    #[inline]
    fn dealloc(&self, ptr: *mut u8, layout: Layout, inner: impl FnOnce()) {
        self.record(|| {
            inner();
            (
                (),
                Call::new(CallKind::Dealloc, ptr, layout, 0, core::ptr::null_mut()),
            )
        })
    }

    #[inline]
    fn realloc(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        inner: impl FnOnce() -> *mut u8,
    ) -> *mut u8 {
        self.record(|| {
            let p = inner();
            (p, Call::new(CallKind::Realloc, ptr, layout, new_size, p))
        })
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

// The longest Stack frame fits one frame's record bytes (`CAP` less the
// `01 code` pair and the delimiter): a Lost record (tag and a ten-byte
// varint) and a Sync (tag and two) before it, then the record's tag, kind
// and two-byte length, a five-byte id, its count, and `MAX_CAPTURE`
// addresses of at most ten bytes each. Raising `MAX_CAPTURE` past this would
// otherwise send every deep stack's event without its stack, silently.
const _: () = assert!(11 + 21 + 4 + 6 + MAX_CAPTURE * 10 <= frame_out::CAP - 3);

#[cfg(test)]
mod tests {
    //! `Stream` writes its frames with an encoder of its own (`frame_out`):
    //! these tests hold it to the bytes of the reference encoder,
    //! `StreamEncoder` + `frame::encode_frame`, which the decoder is tested
    //! against, frame for frame, including frames the sink refused.
    extern crate std;

    use super::*;
    use crate::frame::{encode_frame, max_frame_len};
    use crate::wire::{Alloc, Dealloc, End, Header, Realloc, Record};
    use crate::StreamEncoder;
    use core::cell::{Cell, RefCell};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Takes a frame or refuses it as `accept` says, in turn; keeps what it
    /// took. With `reenter` set, the next frame offered first runs `hook`:
    /// an allocation from an exception that interrupted the record.
    struct Scripted<'a> {
        accept: Vec<bool>,
        next: Cell<usize>,
        taken: RefCell<Vec<u8>>,
        reenter: Cell<bool>,
        hook: Cell<Option<&'a dyn Fn()>>,
    }

    impl Scripted<'_> {
        fn new(accept: Vec<bool>) -> Self {
            Scripted {
                accept,
                next: Cell::new(0),
                taken: RefCell::new(Vec::new()),
                reenter: Cell::new(false),
                hook: Cell::new(None),
            }
        }

        /// Whether the next frame offered is taken (past the script: yes).
        fn decide(&self) -> bool {
            let i = self.next.get();
            self.next.set(i + 1);
            self.accept.get(i).copied().unwrap_or(true)
        }
    }

    impl Sink for Scripted<'_> {
        fn write_frame(&self, frame: &[u8]) -> bool {
            if self.reenter.replace(false) {
                if let Some(hook) = self.hook.get() {
                    hook();
                }
            }
            let ok = self.decide();
            if ok {
                self.taken.borrow_mut().extend_from_slice(frame);
            }
            ok
        }
    }

    /// A clock that ticks by a varying amount on every reading.
    struct Steps(Cell<u64>);

    impl Clock for Steps {
        fn now(&self) -> u64 {
            let t = self.0.get();
            // Small and large steps: one- to nine-byte deltas.
            self.0.set(t + 1 + (t % 7) * (t % 7) * 40_000_000);
            t
        }
        fn ticks_per_second(&self) -> u64 {
            64_000_000
        }
    }

    /// The call stacks the tests capture: `None` is a capture of no frame.
    /// Near and far addresses, one frame to `MAX_CAPTURE`.
    fn pooled_stack(i: u8) -> Vec<u64> {
        match i % 4 {
            0 => std::vec![0x0800_1001, 0x0800_2002],
            1 => std::vec![0x0800_3000],
            2 => (0..MAX_CAPTURE as u64)
                .map(|j| (j << 60) | (j * 0x1234_5678_9abc))
                .collect(),
            _ => (0..MAX_CAPTURE as u64 - 3)
                .map(|j| 0x0800_0000 + j * 36)
                .collect(),
        }
    }

    /// Captures the pooled stack `next` names; an id per pooled stack,
    /// known once `sent`.
    #[derive(Default)]
    struct Pooled {
        next: std::rc::Rc<Cell<Option<u8>>>,
        sent: Vec<u32>,
    }

    impl StackSource for Pooled {
        fn capture(&mut self, out: &mut [u64]) -> usize {
            let Some(i) = self.next.get() else {
                return 0;
            };
            let frames = pooled_stack(i);
            let n = frames.len().min(out.len());
            out[..n].copy_from_slice(&frames[..n]);
            n
        }
        fn intern(&mut self, frames: &[u64]) -> crate::stack::Interned {
            let id = (0..4u8)
                .find(|&i| pooled_stack(i) == frames)
                .map_or(u32::MAX, |i| 1000 + u32::from(i) * 70_000);
            crate::stack::Interned {
                id,
                known: self.sent.contains(&id),
                hash: 0,
            }
        }
        fn sent(&mut self, interned: crate::stack::Interned) {
            self.sent.push(interned.id);
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Alloc {
            zeroed: bool,
            size: usize,
            align_log: u32,
            result: usize,
            stack: Option<u8>,
        },
        Dealloc {
            ptr: usize,
            size: usize,
            align_log: u32,
        },
        Realloc {
            ptr: usize,
            size: usize,
            align_log: u32,
            new_size: usize,
            result: usize,
            stack: Option<u8>,
        },
        /// An exception allocates (8 bytes) while the next event's frame is
        /// being written: the re-entered recorder counts it lost.
        Reenter,
        /// `finish` in the middle of the run: an End with the totals so far.
        Finish,
        /// `set_heap`: takes effect only before the header is out.
        SetHeap,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Addresses near each other (small deltas) and far apart, null
        // results (failed calls), alignments with and without a code.
        let addr = prop_oneof![0x2000_0000usize..0x2000_4000, Just(0), any::<usize>()];
        let size = prop_oneof![0usize..300, any::<usize>()];
        let align_log = prop_oneof![0u32..7, 7u32..20];
        let stack = proptest::option::of(0u8..4);
        prop_oneof![
            6 => (any::<bool>(), size.clone(), align_log.clone(), addr.clone(), stack.clone()).prop_map(
                |(zeroed, size, align_log, result, stack)| Op::Alloc {
                    zeroed,
                    size,
                    align_log,
                    result,
                    stack,
                }
            ),
            6 => (addr.clone(), size.clone(), align_log.clone()).prop_map(|(ptr, size, align_log)| {
                Op::Dealloc {
                    ptr,
                    size,
                    align_log,
                }
            }),
            6 => (addr.clone(), size.clone(), align_log, size, addr, stack).prop_map(
                |(ptr, size, align_log, new_size, result, stack)| Op::Realloc {
                    ptr,
                    size,
                    align_log,
                    new_size,
                    result,
                    stack,
                }
            ),
            1 => Just(Op::Reenter),
            1 => Just(Op::Finish),
            1 => Just(Op::SetHeap),
        ]
    }

    fn layout(size: usize, align_log: u32) -> Layout {
        // The recorder reads only size and align; a Layout past isize::MAX
        // cannot be made, so sizes are clamped for the layout's sake.
        let align = 1usize << align_log;
        Layout::from_size_align(size.min(isize::MAX as usize - align), align).unwrap()
    }

    /// The heap `Op::SetHeap` announces.
    const SET_HEAP: (usize, usize) = (0x2000_8000, 4096);

    /// The bytes the reference encoder writes for `ops` with `info`, offering
    /// each frame to a sink that takes them as `accept` says; `stacks`: the
    /// recorder captures call stacks.
    fn reference(mut info: StreamInfo, ops: &[Op], accept: Vec<bool>, stacks: bool) -> Vec<u8> {
        let sink = Scripted::new(accept);
        let clock = Steps(Cell::new(1));
        let mut enc = StreamEncoder::new();
        let mut interner = Pooled::default();
        let mut header_sent = false;
        let (mut allocs, mut deallocs, mut reallocs, mut failed, mut lost) = (0u64, 0, 0, 0, 0);
        let offer = |enc: &mut StreamEncoder, rec: &Record<'_>| {
            let mut buf = [0u8; 256];
            let p = enc.prepare(rec, &mut buf).unwrap();
            let mut frame = [0u8; max_frame_len(256)];
            let n = encode_frame(0, false, &[&buf[..p.len]], &mut frame).unwrap();
            let ok = sink.write_frame(&frame[..n]);
            if ok {
                enc.commit(p);
            }
            ok
        };
        let send_header = |header_sent: &mut bool, info: &StreamInfo| {
            if *header_sent {
                return true;
            }
            let mut h = Header::new(
                core::mem::size_of::<usize>() as u8,
                clock.ticks_per_second(),
                info.program,
            );
            h.target = info.target;
            h.build_id = info.build_id;
            let mut rec = [0u8; 512];
            let (mut len, _) = Record::Header(h)
                .encode(Default::default(), &mut rec)
                .unwrap();
            if let Some(r) = info.heap {
                len += Record::HeapRegion(r)
                    .encode(Default::default(), &mut rec[len..])
                    .unwrap()
                    .0;
            }
            let mut frame = [0u8; 1 + max_frame_len(512)];
            let n = encode_frame(0, false, &[&rec[..len]], &mut frame[1..]).unwrap();
            *header_sent = sink.write_frame(&frame[..1 + n]);
            *header_sent
        };
        // The recorder's `attach_stack`: a new stack's record goes out in a
        // frame of its own before the event; without room, the event goes
        // without it.
        let mut attach = |enc: &mut StreamEncoder,
                          header_sent: &mut bool,
                          info: &StreamInfo,
                          stack: Option<u8>|
         -> Option<u32> {
            if !stacks {
                return None;
            }
            let frames = pooled_stack(stack?);
            let interned = interner.intern(&frames);
            if !interned.known {
                if !send_header(header_sent, info) {
                    return None;
                }
                let rec = Record::Stack(crate::wire::Stack {
                    id: interned.id,
                    frames: crate::wire::Frames::Slice(&frames),
                });
                if !offer(enc, &rec) {
                    return None;
                }
                interner.sent(interned);
            }
            Some(interned.id)
        };
        let mut reentered = false;
        for &op in ops {
            let rec = match op {
                Op::Alloc {
                    zeroed,
                    size,
                    align_log,
                    result,
                    stack,
                } => {
                    let l = layout(size, align_log);
                    allocs += 1;
                    failed += u64::from(result == 0);
                    let ts = clock.now();
                    Record::Alloc(Alloc {
                        ts,
                        addr: (result != 0).then_some(result as u64),
                        size: l.size() as u64,
                        align: l.align() as u64,
                        zeroed,
                        stack: attach(&mut enc, &mut header_sent, &info, stack),
                    })
                }
                Op::Dealloc {
                    ptr,
                    size,
                    align_log,
                } => {
                    let l = layout(size, align_log);
                    deallocs += 1;
                    Record::Dealloc(Dealloc {
                        ts: enc.last_ts(),
                        ts_exact: false,
                        addr: ptr as u64,
                        size: l.size() as u64,
                        align: l.align() as u64,
                        stack: None,
                    })
                }
                Op::Realloc {
                    ptr,
                    size,
                    align_log,
                    new_size,
                    result,
                    stack,
                } => {
                    let l = layout(size, align_log);
                    reallocs += 1;
                    failed += u64::from(result == 0);
                    let ts = clock.now();
                    Record::Realloc(Realloc {
                        ts,
                        old_addr: ptr as u64,
                        old_size: l.size() as u64,
                        new_addr: (result != 0).then_some(result as u64),
                        new_size: new_size as u64,
                        align: l.align() as u64,
                        stack: attach(&mut enc, &mut header_sent, &info, stack),
                    })
                }
                Op::Reenter => {
                    // Strikes during the next event (several before one
                    // event are one interrupt); `recorded` does the same.
                    reentered = true;
                    continue;
                }
                Op::Finish => {
                    if send_header(&mut header_sent, &info) {
                        let end = Record::End(End {
                            allocs,
                            deallocs,
                            reallocs,
                            failed,
                            lost,
                            streams: 1,
                        });
                        offer(&mut enc, &end);
                    }
                    continue;
                }
                Op::SetHeap => {
                    if !header_sent {
                        info = info.with_heap(SET_HEAP.0, SET_HEAP.1);
                    }
                    continue;
                }
            };
            // An exception that allocated during one of this event's frames
            // (its stack's, the header's or its own): by then the event was
            // counted, and the lost allocation is reported with the next
            // frame the recorder opens.
            let interrupted = std::mem::take(&mut reentered);
            if !(send_header(&mut header_sent, &info) && offer(&mut enc, &rec)) {
                enc.lose();
                lost += 1;
            }
            if interrupted {
                allocs += 1;
                lost += 1;
                enc.lose();
            }
        }
        if send_header(&mut header_sent, &info) {
            let end = Record::End(End {
                allocs,
                deallocs,
                reallocs,
                failed,
                lost,
                streams: 1,
            });
            offer(&mut enc, &end);
        }
        sink.taken.into_inner()
    }

    /// What `Stream` writes for the same calls.
    fn recorded(info: StreamInfo, ops: &[Op], accept: Vec<bool>, stacks: bool) -> Vec<u8> {
        let source = Pooled::default();
        let next = source.next.clone();
        let s = Stream::with_stacks(Scripted::new(accept), Steps(Cell::new(1)), info, source);
        let interrupt = || {
            s.alloc(layout(8, 3), false, || 0x2000_7000 as *mut u8);
        };
        s.sink.hook.set(Some(&interrupt));
        let mut reenter = false;
        for &op in ops {
            match op {
                Op::Reenter => reenter = true,
                Op::Finish => {
                    s.finish();
                }
                Op::SetHeap => {
                    s.set_heap(SET_HEAP.0, SET_HEAP.1);
                }
                _ => {
                    // The exception strikes during the first frame the event
                    // offers, while the recorder holds its state.
                    s.sink.reenter.set(std::mem::take(&mut reenter));
                    match op {
                        Op::Alloc {
                            zeroed,
                            size,
                            align_log,
                            result,
                            stack,
                        } => {
                            next.set(stack.filter(|_| stacks));
                            s.alloc(layout(size, align_log), zeroed, || result as *mut u8);
                        }
                        Op::Dealloc {
                            ptr,
                            size,
                            align_log,
                        } => {
                            s.dealloc(ptr as *mut u8, layout(size, align_log), || ());
                        }
                        Op::Realloc {
                            ptr,
                            size,
                            align_log,
                            new_size,
                            result,
                            stack,
                        } => {
                            next.set(stack.filter(|_| stacks));
                            s.realloc(ptr as *mut u8, layout(size, align_log), new_size, || {
                                result as *mut u8
                            });
                        }
                        _ => unreachable!(),
                    }
                    // Every event offers a frame, which spent the flag.
                    debug_assert!(!s.sink.reenter.get());
                }
            }
        }
        s.finish();
        s.sink.taken.take()
    }

    const LONG: &str = "a program name long enough that the header's body needs \
                        a two-byte length: more than 127 bytes of body in all, \
                        which moves the body one byte on";

    // Not under Miri: even a few cases of up to 400 calls each take longer
    // than CI's whole Miri step (15 minutes were not enough for 4); the
    // unit tests above run the same writer under Miri.
    #[cfg(not(miri))]
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn frames_are_byte_for_byte_the_reference_encoders(
            ops in proptest::collection::vec(op(), 0..400),
            accept in proptest::collection::vec(prop_oneof![4 => Just(true), 1 => Just(false)], 0..500),
            long in any::<bool>(),
            heap in any::<bool>(),
            stacks in any::<bool>(),
        ) {
            let mut info = StreamInfo::new(if long { LONG } else { "fw" }).with_target("thumbv7em-none-eabihf");
            if heap {
                info = info.with_heap(0x2000_0000, 16 * 1024);
            }
            let want = reference(info, &ops, accept.clone(), stacks);
            let got = recorded(info, &ops, accept, stacks);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_header_too_long_for_a_frame_is_not_sent_and_events_are_counted_lost() {
        static NAME: [u8; 300] = [b'x'; 300];
        let name = core::str::from_utf8(&NAME).unwrap();
        let s = Stream::new(
            Scripted::new(Vec::new()),
            Steps(Cell::new(1)),
            StreamInfo::new(name),
        );
        s.alloc(layout(8, 3), false, || 0x2000_0000 as *mut u8);
        assert!(!s.finish());
        assert!(s.sink.taken.borrow().is_empty());
        assert_eq!(s.stats().lost, 1);
    }

    /// Reports the frames it was made with, each stack new.
    struct Given(Vec<u64>);

    impl StackSource for Given {
        fn capture(&mut self, out: &mut [u64]) -> usize {
            let n = self.0.len().min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            n
        }
        fn intern(&mut self, _frames: &[u64]) -> crate::stack::Interned {
            crate::stack::Interned {
                id: 300,
                known: false,
                hash: 0,
            }
        }
        fn sent(&mut self, _interned: crate::stack::Interned) {}
    }

    #[test]
    fn stack_frames_are_the_reference_encoders_short_and_long() {
        // 3 near frames (a one-byte length), 16 far 64-bit ones (a body of
        // more than 127 bytes: a two-byte length).
        let near = std::vec![0x0800_1001, 0x0800_2002, 0x0800_3003];
        let far: Vec<u64> = (0..16u64)
            .map(|i| (i << 60) | (i * 0x1234_5678_9abc))
            .collect();
        for frames in [near, far] {
            let s = Stream::with_stacks(
                Scripted::new(Vec::new()),
                crate::NoClock,
                StreamInfo::new("t"),
                Given(frames.clone()),
            );
            s.alloc(layout(16, 3), false, || 0x2000_0010 as *mut u8);
            let got = s.sink.taken.into_inner();

            // Header frame, then the Stack's frame (with the stream's first
            // Sync), then the alloc's, as the reference writes them.
            let mut want = recorded_header("t");
            let mut enc = StreamEncoder::new();
            for rec in [
                Record::Stack(crate::wire::Stack {
                    id: 300,
                    frames: crate::wire::Frames::Slice(&frames),
                }),
                Record::Alloc(Alloc {
                    ts: 0,
                    addr: Some(0x2000_0010),
                    size: 16,
                    align: 8,
                    zeroed: false,
                    stack: Some(300),
                }),
            ] {
                let mut buf = [0u8; 512];
                let p = enc.prepare(&rec, &mut buf).unwrap();
                let mut frame = [0u8; max_frame_len(512)];
                let n = encode_frame(0, false, &[&buf[..p.len]], &mut frame).unwrap();
                want.extend_from_slice(&frame[..n]);
                enc.commit(p);
            }
            assert_eq!(got, want, "{} frames", frames.len());
        }
    }

    /// The header frame (leading 0x00 included) of a `NoClock` stream
    /// named `program`, as the reference writes it.
    fn recorded_header(program: &str) -> Vec<u8> {
        let mut h = Header::new(core::mem::size_of::<usize>() as u8, 0, program);
        h.target = "";
        let mut rec = [0u8; 512];
        let (len, _) = Record::Header(h)
            .encode(Default::default(), &mut rec)
            .unwrap();
        let mut frame = std::vec![0u8; 1 + max_frame_len(512)];
        let n = encode_frame(0, false, &[&rec[..len]], &mut frame[1..]).unwrap();
        frame.truncate(1 + n);
        frame
    }
}
