//! The recorders memscope-core provides: statistics only, and one stream
//! under a critical section (microcontrollers). memscope-std brings a
//! per-thread recorder for hosts.

use crate::alloc::Recorder;
use crate::clock::Clock;
use crate::frame::{encode_frame, max_frame_len, MAX_HEAD_LEN};
use crate::sink::Sink;
use crate::stack::{NoStacks, StackSource, MAX_CAPTURE};
use crate::stats::{Stats, StatsSnapshot};
use crate::stream::{Prepared, StreamEncoder};
use crate::wire::{self, Alloc, Dealloc, End, Frames, Header, HeapRegion, Realloc, Record, Stack};
use core::alloc::Layout;
use core::cell::RefCell;
use critical_section::Mutex;
use portable_atomic::{AtomicUsize, Ordering};

/// Which `GlobalAlloc` method a [`Call`] was.
#[derive(Clone, Copy)]
enum CallKind {
    Alloc,
    AllocZeroed,
    Dealloc,
    Realloc,
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
    enc: StreamEncoder,
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
/// lasts one inner call plus about a hundred instructions of encoding.
///
/// The header (and heap region) goes out before the first event; until the
/// sink has room for it, events are counted as lost.
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

const FRAME_BUF: usize = max_frame_len(MAX_HEAD_LEN + wire::MAX_EVENT_LEN);

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
                enc: StreamEncoder::new(),
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
            if !self.send_header(&mut st) {
                return false;
            }
            self.fold_reentered(&mut st);
            let s = self.stats.snapshot();
            // Every lost event must be reported before the end claims the totals.
            let end = Record::End(End {
                allocs: s.allocs as u64,
                deallocs: s.deallocs as u64,
                reallocs: s.reallocs as u64,
                failed: s.failed as u64,
                lost: s.lost as u64,
                streams: 1,
            });
            self.write(&mut st, &end)
        })
    }

    fn fold_reentered(&self, st: &mut StreamState<K>) {
        let n = self.reentered.swap(0, Ordering::Relaxed);
        for _ in 0..n {
            st.enc.lose();
        }
    }

    fn send_header(&self, st: &mut StreamState<K>) -> bool {
        if st.header_sent {
            return true;
        }
        let mut h = Header::new(
            core::mem::size_of::<usize>() as u8,
            self.clock.ticks_per_second(),
            st.info.program,
        );
        h.target = st.info.target;
        h.build_id = st.info.build_id;
        let mut rec = [0u8; 160];
        // One 0x00 goes before the header frame: after a reset in the middle
        // of a frame, it ends the half frame, so the new session's header is
        // read instead of lost with it (a reader skips the empty frame).
        let mut frame = [0u8; 1 + max_frame_len(MAX_HEAD_LEN + 160)];
        let mut len = match Record::Header(h).encode(Default::default(), &mut rec) {
            Ok((n, _)) => n,
            Err(_) => return false,
        };
        if let Some(r) = st.info.heap {
            let Some(rest) = rec.get_mut(len..) else {
                return false;
            };
            match Record::HeapRegion(r).encode(Default::default(), rest) {
                Ok((n, _)) => len += n,
                Err(_) => return false,
            }
        }
        // `get` rather than indexing here and below: the lengths are in range,
        // and this way the record path holds no panic branch at all.
        let Some(Ok(n)) = rec
            .get(..len)
            .zip(frame.get_mut(1..))
            .map(|(bytes, out)| encode_frame(0, false, &[bytes], out))
        else {
            return false;
        };
        st.header_sent = frame.get(..1 + n).is_some_and(|f| self.sink.write_frame(f));
        st.header_sent
    }

    /// Encodes `rec` as one frame and offers it to the sink. Returns whether
    /// the sink took it. Inlined into its one caller (`finish`), where the
    /// record's kind is known, so only that kind's encoder is linked.
    #[inline]
    fn write(&self, st: &mut StreamState<K>, rec: &Record<'_>) -> bool {
        let mut buf = [0u8; MAX_HEAD_LEN + wire::MAX_EVENT_LEN];
        let Ok(p) = st.enc.prepare(rec, &mut buf) else {
            return false;
        };
        self.push_frame(st, p, &buf)
    }

    /// [`write`](Self::write) for a heap event: no extension-record encoder.
    fn write_event(&self, st: &mut StreamState<K>, rec: &Record<'_>) -> bool {
        // `EVENT_ROOM`, not `MAX_EVENT_LEN`: the encoder then writes in place
        // instead of through a buffer of its own.
        let mut buf = [0u8; wire::EVENT_ROOM];
        let Ok(p) = st.enc.prepare_event(rec, &mut buf) else {
            return false;
        };
        self.push_frame(st, p, &buf)
    }

    /// Frames the prepared bytes `buf[..p.len]` and offers the frame to the
    /// sink; the encoder's base moves only if the sink took it.
    fn push_frame(&self, st: &mut StreamState<K>, p: Prepared, buf: &[u8]) -> bool {
        let mut frame = [0u8; FRAME_BUF];
        self.push_frame_in(st, p, buf, &mut frame)
    }

    /// [`push_frame`](Self::push_frame) with the caller's frame buffer.
    #[inline]
    fn push_frame_in(
        &self,
        st: &mut StreamState<K>,
        p: Prepared,
        buf: &[u8],
        frame: &mut [u8],
    ) -> bool {
        let Some(Ok(n)) = buf
            .get(..p.len)
            .map(|bytes| encode_frame(0, false, &[bytes], frame))
        else {
            return false;
        };
        if frame.get(..n).is_some_and(|f| self.sink.write_frame(f)) {
            st.enc.commit(p);
            true
        } else {
            false
        }
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

    /// Counts the call and records it.
    #[inline(never)]
    fn after(&self, cs: critical_section::CriticalSection<'_>, call: Call) {
        let ok = call.result != 0;
        match call.kind {
            CallKind::Alloc | CallKind::AllocZeroed => self.stats.on_alloc(call.size, ok),
            CallKind::Dealloc => self.stats.on_dealloc(call.size),
            CallKind::Realloc => self.stats.on_realloc(call.size, call.new_size, ok),
        }
        let Ok(mut st) = self.state.borrow(cs).try_borrow_mut() else {
            // Re-entered from an exception that cannot be masked: the call
            // is done and counted; record nothing.
            self.stats.on_lost();
            self.reentered.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let result = ok.then_some(call.result as u64);
        let rec = match call.kind {
            CallKind::Alloc | CallKind::AllocZeroed => Record::Alloc(Alloc {
                // Read after the inner call: an upper bound (see `clock`).
                ts: self.clock.now(),
                addr: result,
                size: call.size as u64,
                align: call.align as u64,
                zeroed: matches!(call.kind, CallKind::AllocZeroed),
                stack: None,
            }),
            CallKind::Dealloc => Record::Dealloc(Dealloc {
                // The stream's previous timestamp: a lower bound.
                ts: st.enc.last_ts(),
                ts_exact: false,
                addr: call.ptr as u64,
                size: call.size as u64,
                align: call.align as u64,
                stack: None,
            }),
            CallKind::Realloc => Record::Realloc(Realloc {
                ts: self.clock.now(),
                old_addr: call.ptr as u64,
                old_size: call.size as u64,
                new_addr: result,
                new_size: call.new_size as u64,
                align: call.align as u64,
                stack: None,
            }),
        };
        self.emit(&mut st, rec);
    }

    /// Stack, header, the record itself, or the count of it as lost.
    #[inline]
    fn emit(&self, st: &mut StreamState<K>, mut rec: Record<'static>) {
        self.fold_reentered(st);
        if K::ENABLED {
            self.attach_stack(st, &mut rec);
        }
        if !(self.send_header(st) && self.write_event(st, &rec)) {
            st.enc.lose();
            self.stats.on_lost();
        }
    }

    /// Captures the call stack, sends it if it is new, and puts its id into
    /// an alloc or realloc record. Without room for a new stack the event
    /// goes out without one.
    #[inline(never)]
    fn attach_stack(&self, st: &mut StreamState<K>, rec: &mut Record<'static>) {
        let slot = match rec {
            Record::Alloc(a) => &mut a.stack,
            Record::Realloc(r) => &mut r.stack,
            _ => return,
        };
        let mut frames = [0u64; MAX_CAPTURE];
        let n = st.stacks.capture(&mut frames).min(MAX_CAPTURE);
        if n == 0 {
            return;
        }
        let interned = st.stacks.intern(&frames[..n]);
        if !interned.known {
            let stack = Record::Stack(Stack {
                id: interned.id,
                frames: Frames::Slice(&frames[..n]),
            });
            if !(self.send_header(st) && self.write_large(st, &stack)) {
                return;
            }
            st.stacks.sent(interned);
        }
        *slot = Some(interned.id);
    }

    /// [`write`](Self::write) for records up to a full [`Stack`] of
    /// [`MAX_CAPTURE`] frames. Inlined into its one caller, as `write`.
    #[inline]
    fn write_large(&self, st: &mut StreamState<K>, rec: &Record<'_>) -> bool {
        const LEN: usize = MAX_HEAD_LEN + wire::MAX_EVENT_LEN + 16 + 10 * MAX_CAPTURE;
        let mut buf = [0u8; LEN];
        let mut frame = [0u8; max_frame_len(LEN)];
        let Ok(p) = st.enc.prepare(rec, &mut buf) else {
            return false;
        };
        self.push_frame_in(st, p, &buf, &mut frame)
    }
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
