//! Turning an event into bytes in the thread's ring: the only code that runs
//! on every allocator call while recording.
//!
//! It never allocates, locks or panics, and never waits without bound: the
//! record is encoded straight into the free bytes of the thread's own ring
//! (or, near the ring's end, into a scratch buffer copied in) and published
//! whole or not at all. A full ring makes the thread wait for the writer
//! thread to drain it, for a bounded time (see `slot::full_ring`), or, when
//! that gives up or the recording says `FullRing::Drop`, makes the event
//! *lost* (counted, reported in the stream by the next record that fits,
//! and in the stream's end record).
//!
//! Almost every event takes the in-place path ([`write_in_place`]): one
//! comparison of the ring's head with a bound kept in the slot stands for
//! every check (contiguous room, no mark-chunk boundary, no loss pending, no
//! sync due), and the per-kind encoder writes the record without a length
//! check. The
//! rest (a sync or lost count first, the end of a chunk or of the ring, a
//! full ring, a failed call, an alignment of 128 or more) goes through
//! [`record_general`], which also moves the bound. Syncs are spaced by bytes
//! ([`SYNC_BYTES`]) so that the bound covers them too.
//!
//! Each record is written inside a seqlock window on the slot (`seq` odd),
//! together with the stream's counters, so the final flush can take a cut in
//! which the end record's totals match the ring's bytes exactly even while
//! the thread keeps running.

use crate::event::Event;
use crate::local::Local;
use crate::session;
use crate::slot::{full_ring, Buffers, Scratch, Slot, MARK_CHUNK, RING_BYTES};
use crate::stacks::{self, Lookup, MAX_DEPTH};
use core::alloc::GlobalAlloc;
use core::sync::atomic::{fence, Ordering};
use memscope_core::ring::Reserved;
use memscope_core::stream::StreamEncoder;
use memscope_core::wire::{self, Alloc, Dealloc, Delta, Frames, Realloc, Record, Stack, Thread};

/// A Stack record of `MAX_DEPTH` addresses: tag, kind, length, id, count,
/// then up to ten bytes an address.
const STACK_RECORD_MAX: usize = 16 + MAX_DEPTH * 10;
/// The longest ring entry: a new stack, then the event with its lost and sync.
pub(crate) const ENTRY_MAX: usize = STACK_RECORD_MAX + wire::MAX_EVENT_LEN;

/// Records `ev` (the caller counted it in the thread's statistics already).
/// Out of line: for a thread's first call and other rare paths.
#[inline(never)]
pub(crate) fn event(inner: &dyn GlobalAlloc, l: &Local, s: &Slot, fp: usize, ev: Event) {
    event_inline(inner, l, s, fp, ev)
}

/// [`event`], inlined into each `GlobalAlloc` method's recording path (so
/// the event's kind is known there and its fields stay in registers).
#[inline(always)]
pub(crate) fn event_inline(inner: &dyn GlobalAlloc, l: &Local, s: &Slot, fp: usize, ev: Event) {
    let mut bufs = l.buffers.get();
    if bufs.is_null() {
        bufs = open_stream(inner, l, s);
        if bufs.is_null() {
            return;
        }
    }
    // SAFETY: the buffers are never freed once allocated.
    let b = unsafe { &*bufs };
    // One copy of the path per kind: with the kind known, the encoder's
    // choices (fields, flags, clock read) fold away.
    match ev {
        Event::Alloc { .. } => record_kind(l, s, b, fp, ev),
        Event::Dealloc { .. } => record_kind(l, s, b, fp, ev),
        Event::Realloc { .. } => record_kind(l, s, b, fp, ev),
    }
}

#[inline(always)]
fn record_kind(l: &Local, s: &Slot, b: &Buffers, fp: usize, ev: Event) {
    // Nothing below allocates (tests/reentrancy.rs checks it); should that
    // ever change, the guard turns the allocation into a pass-through instead
    // of a recursion. `RECORDING`: a signal handler's call that lands here
    // is counted as untracked (see `local`).
    l.busy.set(crate::local::RECORDING);
    enter(s);
    // SAFETY: this thread owns the slot, so it is the only user of the
    // encoder. A shared borrow that ends here: every path below derives its
    // own `&mut` from the cell, and no two of them are alive at once (one
    // held across a call that derives another is undefined behaviour).
    let last_ts = unsafe { &*s.enc.get() }.last_ts();
    let ts = match ev {
        // A free reads no clock: it carries the stream's previous timestamp,
        // a lower bound of its moment, or the writer's recent reading when
        // that is later (a thread idle for long; see `clock`).
        Event::Dealloc { .. } => crate::clock::recent().max(last_ts),
        // Never below the previous one: the unfenced read may execute a
        // little early (see `clock`), and deltas only go forward.
        _ => crate::clock::now_with(l.tsc.get()).max(last_ts),
    };
    // Release: a writer that Acquire-loads this value sees every earlier
    // record of this thread committed (see `writer::allows`).
    s.pending_ts.store(ts, Ordering::Release);
    // A free's timestamp goes on the wire only when it is not the previous one.
    let exact = ts != last_ts;
    let depth = l.stack_depth.get();
    // Two copies of the write, so that the one without stacks knows it has
    // no stack id; both specialised per kind.
    if depth == 0 {
        write(s, b, ev, ts, exact, None);
    } else {
        let (k, w0, w1, w2, w3, w4) = ev.to_words();
        if let Some(stack) = stack_of(l, s, b, fp, depth, k, w0, w1, w2, w3, w4, ts, exact) {
            write(s, b, ev, ts, exact, stack);
        }
    }
    count(s, ev);
    leave(s);
    l.busy.set(0);
}

/// Counts the event in the stream's totals (inside the seqlock window, with
/// the ring push: see `Slot::seq`).
#[inline(always)]
fn count(s: &Slot, ev: Event) {
    let counts = &s.counts;
    match ev {
        Event::Alloc { .. } => counts.allocs.add(1),
        Event::Dealloc { .. } => counts.deallocs.add(1),
        Event::Realloc { .. } => counts.reallocs.add(1),
    }
    if ev.failed() {
        counts.failed.add(1);
    }
}

/// Writes the event's record: in place, or else by the general path.
#[inline(always)]
fn write(s: &Slot, b: &Buffers, ev: Event, ts: u64, exact: bool, stack: Option<u32>) {
    // A failed alloc or realloc (rare) has no address, an alignment of 128
    // or more (rare) an explicit field: the general path, so that the
    // in-place one knows the address is there and the alignment fits the tag.
    let (Event::Alloc { align, .. } | Event::Dealloc { align, .. } | Event::Realloc { align, .. }) =
        ev;
    if ev.failed() || align >= 1 << 7 {
        let (k, w0, w1, w2, w3, w4) = ev.to_words();
        return record_general(s, b, k, w0, w1, w2, w3, w4, ts, exact, stack);
    }
    // The record is built in each path, so that the common one keeps its
    // fields in registers.
    if !write_in_place(s, b, &to_record(ev, ts, exact, stack)) {
        let (k, w0, w1, w2, w3, w4) = ev.to_words();
        record_general(s, b, k, w0, w1, w2, w3, w4, ts, exact, stack);
    }
}

/// A sync at least every this many bytes of a thread's stream (about 256
/// records of a churn): a reader that lost a frame to damage resolves deltas
/// again from the next sync. Counted in bytes, not records, so that the
/// in-place path counts nothing: its bound stops short of the next sync's
/// position, and the general path writes the sync.
const SYNC_BYTES: usize = 1536;

/// Bytes that must lie free and contiguous at the ring's head, inside the
/// current mark chunk, for the in-place write: the longest heap record.
const FAST_ROOM: usize = wire::MAX_HEAP_RECORD_LEN;

/// The common case, about 98 % of events: the record alone (no lost count
/// or sync before it), encoded straight into the ring's free bytes and
/// published. One comparison with `Slot::fast_until` stands for every check
/// the general path makes (room without a wrap, no mark-chunk boundary
/// crossed, no loss pending, no sync due).
/// Returns false, having changed nothing, when the general path must run.
#[inline(always)]
fn write_in_place(s: &Slot, b: &Buffers, rec: &Record<'_>) -> bool {
    // SAFETY: the owner is the ring's only producer.
    let head = unsafe { b.ring.head() };
    // SAFETY: `fast_until` is the owner's; we are the owner.
    let until = unsafe { *s.fast_until.get() };
    // `head <= until`, in wrapping arithmetic (`until` is never more than
    // the ring's size ahead of `head`, nor less than one behind).
    if (until.wrapping_sub(head) as isize) < 0 {
        return false;
    }
    // SAFETY (the encoder): this thread owns the slot, so it is the only
    // user of the encoder, and no other borrow of it is alive here.
    let enc = unsafe { &mut *s.enc.get() };
    // SAFETY: `head <= until`, so the `FAST_ROOM` bytes from `head` lie in
    // the room `contiguous_free` returned when `fast_until` was set (see
    // `refresh_fast_until`); the owner is the ring's only producer and
    // publishes what it wrote just below, before any other push.
    let written = unsafe { enc.write_event_in_place(rec, b.ring.write_ptr(head)) };
    match written {
        Some(len) => {
            // SAFETY: as above; the record ends inside the room, before the
            // chunk's end, so it needs no mark.
            unsafe { b.ring.publish(head.wrapping_add(len)) };
            true
        }
        None => false,
    }
}

/// Everything [`write_in_place`] leaves: a lost count or sync before the
/// event, a record that may wrap around the ring's end, cross into a new
/// mark chunk (its mark, and the look at how full the ring is) or not fit.
/// Then sets the bound of the next in-place writes.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn record_general(
    s: &Slot,
    b: &Buffers,
    k: u8,
    w0: usize,
    w1: usize,
    w2: usize,
    w3: usize,
    w4: usize,
    ts: u64,
    exact: bool,
    stack: Option<u32>,
) {
    let ev = Event::from_words((k, w0, w1, w2, w3, w4));
    let rec = &to_record(ev, ts, exact, stack);
    // SAFETY: this thread owns the slot, so it is the only user of the encoder.
    let enc = unsafe { &mut *s.enc.get() };
    sync_if_due(s, b, enc);
    // SAFETY: the owner is the only user of its scratch space.
    let Scratch { bytes, .. } = unsafe { &mut *b.scratch.get() };
    let mut attempt = || {
        // SAFETY: the owner is the ring's only producer, and nothing pushes
        // to the ring before the commit below.
        let res = unsafe { b.ring.reserve(bytes) };
        let p = enc.prepare_event(rec, res.buf).ok()?;
        // SAFETY: as above; `res` is this ring's latest reservation.
        Some(publish(s, b, res, p.len, || enc.commit(p)))
    };
    let pushed = match attempt() {
        Some(true) => true,
        Some(false) => retry_when_room(s, b, attempt),
        None => false,
    };
    if !pushed {
        lose(s, enc);
    }
    refresh_fast_until(s, b, enc);
}

/// Asks the encoder for a sync before its next record when the stream has
/// passed `Slot::sync_at`, and moves that position on (a record that then
/// does not fit keeps the encoder's request until one does).
#[inline(always)]
fn sync_if_due(s: &Slot, b: &Buffers, enc: &mut StreamEncoder) {
    // SAFETY: the owner is the ring's only producer, and `sync_at` is its.
    unsafe {
        let head = b.ring.head();
        if (head.wrapping_sub(*s.sync_at.get()) as isize) >= 0 {
            enc.sync_next();
            *s.sync_at.get() = head.wrapping_add(SYNC_BYTES);
        }
    }
}

/// Sets `Slot::fast_until`: the last ring position at which an in-place
/// write may start. From there `FAST_ROOM` bytes are still free, contiguous
/// (no wrap) and end before the next mark chunk starts, so an in-place
/// record never needs a mark nor a look at the ring's fill; and it lies
/// before `Slot::sync_at`, so the record due to carry a sync goes through
/// the general path. While a loss waits to be reported it is one behind the
/// head: no in-place write.
#[inline(never)]
fn refresh_fast_until(s: &Slot, b: &Buffers, enc: &StreamEncoder) {
    // SAFETY: the owner is the ring's only producer.
    let head = unsafe { b.ring.head() };
    // The last byte before the next chunk: a record may end there at most
    // (one ending on the chunk's first byte would start the next chunk's
    // first record, which needs a mark).
    let chunk_left = MARK_CHUNK - 1 - head % MARK_CHUNK;
    // SAFETY: as above.
    let room = unsafe { b.ring.contiguous_free(head, chunk_left) }.min(chunk_left);
    // SAFETY: `sync_at` is the owner's; we are the owner.
    let to_sync = unsafe { *s.sync_at.get() }.wrapping_sub(head) as isize;
    let until = if enc.pending_lost() == 0 && room >= FAST_ROOM && to_sync > 0 {
        // Stops before the next sync's position too: the record that
        // reaches it goes through the general path.
        head.wrapping_add((room - FAST_ROOM).min(to_sync as usize - 1))
    } else {
        head.wrapping_sub(1)
    };
    // SAFETY: `fast_until` is the owner's; we are the owner.
    unsafe { *s.fast_until.get() = until };
}

/// With a call stack: walks it and looks it up. A stack sent before costs
/// only its id, returned for the event to go down the same path as one
/// without a stack; no stack (a walk of depth 0) is `Some(None)`. A stack
/// seen for the first time goes into the ring before the event, in the same
/// entry ([`record_new_stack`]), and this returns `None`. Out of line (the
/// walk and the table are long), so that the path without stacks keeps its
/// values in registers; the event comes as plain words (see
/// [`Words`](crate::event::Words)).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn stack_of(
    l: &Local,
    s: &Slot,
    b: &Buffers,
    fp: usize,
    depth: usize,
    k: u8,
    w0: usize,
    w1: usize,
    w2: usize,
    w3: usize,
    w4: usize,
    ts: u64,
    exact: bool,
) -> Option<Option<u32>> {
    // SAFETY: the owner is the only user of its stack table and scratch
    // space; the walk writes the addresses into the scratch's frames.
    let (table, frames) = unsafe { (&mut *b.stacks.get(), &mut (*b.scratch.get()).frames) };
    let walk = table.capture(l.stack_top.get(), fp, &mut frames[..depth]);
    match walk.depth {
        0 => Some(None),
        _ => match table.intern(&walk) {
            Lookup::Known(id) => Some(Some(id)),
            Lookup::New { id, key, at } => {
                let new = NewStack {
                    id,
                    key,
                    at,
                    depth: walk.depth,
                };
                let ev = Event::from_words((k, w0, w1, w2, w3, w4));
                record_new_stack(s, b, ev, ts, exact, new);
                None
            }
        },
    }
}

/// The first event of a stack: its Stack record, then the event, in one ring
/// entry; the table learns the stack once the entry is in the ring.
#[inline(never)]
fn record_new_stack(s: &Slot, b: &Buffers, ev: Event, ts: u64, exact: bool, new: NewStack) {
    let rec = &to_record(ev, ts, exact, Some(new.id));
    // SAFETY: this thread owns the slot, so it is the only user of the encoder.
    let enc = unsafe { &mut *s.enc.get() };
    sync_if_due(s, b, enc);
    // SAFETY: the owner is the only user of its scratch space.
    let Scratch { bytes, frames } = unsafe { &mut *b.scratch.get() };
    let stack = Record::Stack(Stack {
        id: new.id,
        frames: Frames::Slice(&frames[..new.depth]),
    });
    let mut attempt = || {
        // SAFETY: the owner is the ring's only producer, and nothing pushes
        // to the ring before the commit below.
        let res = unsafe { b.ring.reserve(bytes) };
        // Cannot fail: `bytes` holds the longest Stack record and event.
        let len = match stack.encode(Delta::default(), res.buf) {
            Ok((n, _)) => n,
            Err(_) => 0,
        };
        let p = enc.prepare_event(rec, res.buf.get_mut(len..)?).ok()?;
        let committed = || {
            enc.commit(p);
            // SAFETY: the owner is the only user of its stack table.
            unsafe { (*b.stacks.get()).insert(new.id, new.key, new.at) };
        };
        Some(publish(s, b, res, len + p.len, committed))
    };
    let pushed = match attempt() {
        Some(true) => true,
        Some(false) => retry_when_room(s, b, attempt),
        None => false,
    };
    if !pushed {
        lose(s, enc);
    }
    refresh_fast_until(s, b, enc);
}

/// Commits the `len` bytes encoded in `res` to the ring with their
/// record-boundary mark; runs `committed` once they are in. Returns whether
/// they fit.
#[inline(always)]
fn publish(s: &Slot, b: &Buffers, res: Reserved<'_>, len: usize, committed: impl FnOnce()) -> bool {
    // SAFETY: the owner is the ring's only producer.
    let at = unsafe { b.ring.head() };
    let end = at.wrapping_add(len);
    // Before the ring publishes the entry (see `Slot::mark`).
    s.mark(at, end);
    // SAFETY: the owner is the ring's only producer; `res` is its latest
    // reservation (the callers' contract).
    if unsafe { b.ring.commit(res, len) } {
        committed();
        // How full the ring is, looked at once per `MARK_CHUNK` of records
        // (8 KiB, about 1300 events) rather than per record: it may read
        // the writer's cache line.
        if at / MARK_CHUNK != end / MARK_CHUNK {
            wake_if_filling(s, b);
        }
        true
    } else {
        s.unmark(at, end);
        false
    }
}

/// The ring had no room for the entry `attempt` pushes (it returns whether
/// it pushed, `None` when the entry cannot be encoded): waits for the writer
/// thread to make room, when the recording says so and the writer can
/// (bounded: see `slot::full_ring`), and attempts again. Returns whether the
/// entry went in. Out of line, so that the first attempt's code stays
/// straight (with the retry in a loop around it, the compiler encoded every
/// kind's fields ahead of the first attempt: 170 instructions more per call
/// of `record_general`).
///
/// The wait is outside the seqlock window (none of the event is in the ring
/// or the counters yet), so a final flush meanwhile cuts the stream at once.
#[cold]
#[inline(never)]
fn retry_when_room(s: &Slot, b: &Buffers, mut attempt: impl FnMut() -> Option<bool>) -> bool {
    let Some(patience) = full_ring::patience() else {
        return false;
    };
    // The event's timestamp is read, and the window is left while it waits:
    // `retrying` odd tells the writer (which sees the seqlock even) that an
    // event older than its drain may still come. Relaxed: only this thread
    // writes it, and the Release store of `leave` below publishes it.
    let r = s.retrying.load(Ordering::Relaxed);
    s.retrying.store(r.wrapping_add(1), Ordering::Relaxed);
    let pushed = loop {
        leave(s);
        let room = full_ring::wait_for_room(s, b, patience, &full_ring::TheWriter);
        enter(s);
        if !room {
            break false;
        }
        match attempt() {
            Some(true) => break true,
            Some(false) => {}
            None => break false,
        }
    };
    // Release: a writer that Acquire-loads the even value sees the push.
    s.retrying.store(r.wrapping_add(2), Ordering::Release);
    pushed
}

/// The event did not fit: counted, and reported by the stream's next record.
#[cold]
#[inline(never)]
fn lose(s: &Slot, enc: &mut StreamEncoder) {
    enc.lose();
    s.counts.lost.add(1);
}

/// Opens the seqlock window (`seq` odd).
#[inline(always)]
fn enter(s: &Slot) {
    // Relaxed: only this thread writes `seq`.
    let seq = s.seq.load(Ordering::Relaxed);
    s.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
    // Release fence: the odd value is visible before any write of the window
    // (the reader's Acquire load of a later value then sees it odd or sees
    // the window's writes complete).
    fence(Ordering::Release);
}

/// Closes the window [`enter`] opened (`seq` even again). Reloads `seq`
/// rather than keeping it from `enter`: one register less over the record.
#[inline(always)]
fn leave(s: &Slot) {
    // Relaxed: only this thread writes `seq`, and it is odd since `enter`
    // (a signal handler that interrupts the window does not record).
    let seq = s.seq.load(Ordering::Relaxed);
    // Release: the window's writes happen before a reader sees it closed.
    s.seq.store(seq.wrapping_add(1), Ordering::Release);
}

/// Appends one entry to the ring and keeps the record-boundary marks (the
/// cold records: a thread's first, the final ones).
#[inline(always)]
fn push(s: &Slot, b: &Buffers, bytes: &[u8]) -> bool {
    // SAFETY: the owner is the ring's only producer.
    let at = unsafe { b.ring.head() };
    let end = at.wrapping_add(bytes.len());
    s.mark(at, end);
    // SAFETY: as above. (An in-place write's bound stays valid: the push
    // takes bytes below it, and free space stays free.)
    if unsafe { b.ring.push(&[bytes]) } {
        true
    } else {
        s.unmark(at, end);
        false
    }
}

#[inline(always)]
fn wake_if_filling(s: &Slot, b: &Buffers) {
    // SAFETY (both calls): the owner is the ring's producer. The cheap upper
    // bound first: the consumer's index is read only once it passes.
    if unsafe { b.ring.len_at_most() } <= RING_BYTES / 4
        || unsafe { b.ring.refresh_len() } <= RING_BYTES / 4
    {
        return;
    }
    // Relaxed: a hint; the writer also drains every few milliseconds.
    if !s.wake.load(Ordering::Relaxed) {
        s.wake.store(true, Ordering::Relaxed);
        session::wake_writer();
    }
}

/// A stack seen for the first time: its Stack record goes into the ring
/// before the event, and into the table once the entry is in the ring.
struct NewStack {
    id: u32,
    key: u64,
    at: usize,
    depth: usize,
}

/// `exact`: a free's `ts` is its own (not the stream's previous one).
#[inline(always)]
fn to_record(ev: Event, ts: u64, exact: bool, stack: Option<u32>) -> Record<'static> {
    let (Event::Alloc { align, .. } | Event::Dealloc { align, .. } | Event::Realloc { align, .. }) =
        ev;
    // SAFETY: every event's `align` is a `Layout`'s, a power of two. Told
    // to the compiler, the encoder's alignment code is a plain bit count.
    unsafe { core::hint::assert_unchecked(align.is_power_of_two()) };
    let addr = |p: *mut u8| (!p.is_null()).then_some(p as usize as u64);
    match ev {
        Event::Alloc {
            ptr,
            size,
            align,
            zeroed,
        } => Record::Alloc(Alloc {
            ts,
            addr: addr(ptr),
            size: size as u64,
            align: align as u64,
            zeroed,
            stack,
        }),
        Event::Dealloc { ptr, size, align } => Record::Dealloc(Dealloc {
            ts,
            ts_exact: exact,
            addr: ptr as usize as u64,
            size: size as u64,
            align: align as u64,
            stack,
        }),
        Event::Realloc {
            old,
            old_size,
            new,
            new_size,
            align,
        } => Record::Realloc(Realloc {
            ts,
            old_addr: old as usize as u64,
            old_size: old_size as u64,
            new_addr: addr(new),
            new_size: new_size as u64,
            align: align as u64,
            stack,
        }),
    }
}

/// Gives the thread a stream: buffers, an id, and a `Thread` record first.
/// Returns null when that is not possible (no memory, recording stopped).
#[cold]
#[inline(never)]
fn open_stream(inner: &dyn GlobalAlloc, l: &Local, s: &Slot) -> *const Buffers {
    l.busy(|| {
        if !session::recording() {
            return core::ptr::null();
        }
        let Some(b) = s.buffers_or_alloc(inner) else {
            return core::ptr::null();
        };
        let depth = session::stack_depth();
        if l.stack_top.get() == 0 && depth > 0 {
            l.stack_top.set(stacks::current_stack_top());
        }
        l.stack_depth.set(depth);
        l.tsc.set(crate::clock::uses_tsc());
        // SAFETY: the owner is the only user of its encoder, stack table
        // and in-place bound, and the ring's only producer; a reused slot's
        // previous stream was closed by the writer.
        unsafe {
            *s.enc.get() = StreamEncoder::new();
            (*b.stacks.get()).clear();
            // No in-place write before the general path set a bound for
            // this stream (its first record carries a sync anyway).
            *s.fast_until.get() = b.ring.head().wrapping_sub(1);
            *s.sync_at.get() = b.ring.head();
        }
        s.waiter.reset();
        let (os_id, name_buf) = thread_identity();
        let name = core::str::from_utf8(&name_buf)
            .unwrap_or("")
            .trim_end_matches('\0');
        let mut buf = [0u8; 64];
        let Ok((len, _)) =
            Record::Thread(Thread { os_id, name }).encode(Delta::default(), &mut buf)
        else {
            return core::ptr::null();
        };
        enter(s);
        // The ring of a new or freed slot is empty, so this always fits.
        let ok = push(s, b, &buf[..len]);
        leave(s);
        if !ok {
            return core::ptr::null();
        }
        let id = session::next_stream_id();
        // Release: the writer Acquire-loads the id before draining, and then
        // sees the Thread record and the ring's buffers.
        s.stream.store(id, Ordering::Release);
        l.stream.set(id);
        l.buffers.set(b);
        b as *const Buffers
    })
}

/// The OS thread id and the OS thread name (at most 15 bytes on Linux; Rust
/// sets it from `thread::Builder::name`). The main thread is named "main".
fn thread_identity() -> (u64, [u8; 16]) {
    let mut name = [0u8; 16];
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls; `name` is a valid 16-byte buffer, the size
        // the call requires.
        unsafe {
            let tid = libc::gettid();
            if tid == libc::getpid() {
                name[..4].copy_from_slice(b"main");
            } else {
                libc::pthread_getname_np(
                    libc::pthread_self(),
                    name.as_mut_ptr().cast(),
                    name.len(),
                );
            }
            (tid as u64, name)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        (0, name)
    }
}

/// Pushes a non-event record (a name, a scope) into the calling thread's
/// stream. Not on the allocation path, so it may wait a little for room: up
/// to 10 ms of the writer draining; after that the record is dropped and
/// `false` returned. Returns `false` too when not recording.
pub(crate) fn meta(rec: &Record<'_>) -> bool {
    use std::time::{Duration, Instant};
    if !session::recording() {
        return false;
    }
    let mut opened = false;
    let mut deadline = None;
    loop {
        let done = crate::local::with(|l| {
            let s = l.slot.get();
            let bufs = l.buffers.get();
            if s.is_null() || bufs.is_null() || l.busy.get() != 0 {
                return None;
            }
            // SAFETY: never freed; this thread owns them.
            let (s, b) = unsafe { (&*s, &*bufs) };
            let mut buf = [0u8; 1024];
            let Ok((len, _)) = rec.encode(Delta::default(), &mut buf) else {
                return Some(false);
            };
            // A signal handler's call landing in the push must not record
            // into the ring mid-push: it is counted as untracked (see `local`).
            l.busy.set(crate::local::RECORDING);
            enter(s);
            let ok = push(s, b, &buf[..len]);
            leave(s);
            l.busy.set(0);
            Some(ok)
        });
        match done {
            Some(true) => return true,
            Some(false) => {}
            None if !opened => {
                // The thread has no stream yet: its first allocator call opens
                // one. This 1-byte allocation is recorded like any other.
                opened = true;
                drop(std::hint::black_box(Box::new(0u8)));
                continue;
            }
            None => return false,
        }
        // Full ring (or a record too large to encode, which waiting cannot fix).
        let now = Instant::now();
        let until = *deadline.get_or_insert(now + Duration::from_millis(10));
        if now >= until || !session::recording() {
            return false;
        }
        session::wake_writer();
        std::thread::sleep(Duration::from_micros(200));
    }
}
