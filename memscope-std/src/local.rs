//! The calling thread's state, and the allocation path that uses it.
//!
//! # Re-entrancy
//!
//! `busy` is a const-initialised thread-local `Cell` with no destructor, so
//! reading it never allocates, never registers anything and never fails. It
//! is set while memscope's own code runs on this thread (opening a slot or a
//! stream, starting the recording, the final flush) and for the whole life of
//! the writer thread. An allocator call that finds it set is passed straight
//! to the inner allocator and counted in [`stats`](crate::stats()) but **not
//! recorded**: memscope's own allocations are not part of the trace. The
//! recording path itself allocates nothing (a test checks it), so nothing of
//! the program is lost to this — except a signal handler that allocates:
//!
//! `busy` has two set values. [`OWN_CODE`] (1) marks memscope's own code
//! above. [`RECORDING`] (2) marks the record path (`record::record_kind`, a
//! metadata push), which the program's code can only enter through a signal
//! handler interrupting it: such a call cannot be recorded (the stream's
//! encoder is mid-record) and is counted as untracked in the control
//! stream's end record, so the trace says it happened. A handler call that
//! interrupts [`OWN_CODE`] (a stream opening, the final flush) is still only
//! counted in `stats()`. Every check of `busy` on the hot path is "nonzero",
//! as cheap as the `bool` it was.
//!
//! # What is recorded
//!
//! Every allocator call of every thread from the moment its stream opens
//! (its first call while recording) until it exits. Not recorded, but counted
//! in `stats()`: memscope's own allocations (above); calls made while the
//! recording starts; calls a thread makes after its memscope destructor ran
//! (thread-local destructors that run later than ours; ours is normally
//! registered first and so runs last) — those are counted in the control
//! stream's end record as lost, so the trace still says they happened.

use crate::event::Event;
use crate::record;
use crate::session;
use crate::slot::{self, Buffers, Slot};
use crate::stats;
use crate::testing::TestCounters;
use core::alloc::GlobalAlloc;
use core::cell::Cell;
use core::ptr;

/// `Local::busy` while memscope's own code runs (see the module doc).
pub(crate) const OWN_CODE: u8 = 1;
/// Inside the record path (`record::record_kind`, a metadata push).
pub(crate) const RECORDING: u8 = 2;

pub(crate) struct Local {
    /// 0: the program's code; [`OWN_CODE`] or [`RECORDING`]: memscope's own
    /// (nonzero: pass allocations through).
    pub busy: Cell<u8>,
    pub slot: Cell<*const Slot>,
    /// This thread's memscope destructor ran: no slot any more.
    pub exited: Cell<bool>,
    /// The slot's stream id, cached (0: none yet).
    pub stream: Cell<u32>,
    pub buffers: Cell<*const Buffers>,
    /// Top of this thread's stack for the frame walk (0: unknown).
    pub stack_top: Cell<usize>,
    /// The recording's call-stack depth and clock choice, copied when the
    /// thread's stream opens (one recording per process, so they never
    /// change after): the record path reads them here, in the thread's own
    /// memory, rather than through the globals.
    pub stack_depth: Cell<usize>,
    pub tsc: Cell<bool>,
    pub test: TestCounters,
}

impl Local {
    const fn new() -> Self {
        Local {
            busy: Cell::new(0),
            slot: Cell::new(ptr::null()),
            exited: Cell::new(false),
            stream: Cell::new(0),
            buffers: Cell::new(ptr::null()),
            stack_top: Cell::new(0),
            stack_depth: Cell::new(0),
            tsc: Cell::new(false),
            test: TestCounters::new(),
        }
    }

    /// Runs `f` with `busy` set (memscope's own code: its allocations are
    /// passed through), restoring the previous value.
    pub(crate) fn busy<R>(&self, f: impl FnOnce() -> R) -> R {
        let was = self.busy.replace(OWN_CODE);
        let r = f();
        self.busy.set(was);
        r
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
    static EXIT: ThreadExit = const { ThreadExit };
}

/// Runs `f` on this thread's state. `LOCAL` is const-initialised and has no
/// destructor, so this never allocates and never fails.
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&Local) -> R) -> R {
    LOCAL.with(f)
}

/// Marks this thread as memscope's own for the rest of its life.
pub(crate) fn become_busy_forever() {
    with(|l| l.busy.set(OWN_CODE));
}

/// Which way an allocator call goes, decided **before** the inner call
/// from the calling thread's state.
pub(crate) enum Path {
    /// Statistics only: the thread has a slot, none of memscope's own code
    /// runs on it, no [`testing::count`](crate::testing::count) is active and
    /// nothing is being recorded. So that `dealloc` can end in a tail call of
    /// the inner allocator, the caller counts around the inner call itself.
    Count(&'static Slot),
    /// As `Count`, but recording: [`on_recorded`] after the inner call, with
    /// this slot (the thread's `Local` is found again there: passing it too
    /// would push the arguments past the registers).
    Record(&'static Slot),
    /// The thread has a slot, none of memscope's own code runs on it, and a
    /// `testing::count` is active: [`on_tracked`] after the inner call.
    Track(&'static Slot),
    /// Anything else (the thread's first call, memscope's own calls, a
    /// thread past its destructor): [`on_event`] after the inner call.
    Other,
}

/// See [`Path`]. A recording that starts between this check and the inner
/// call misses that one call, like any call made while the recording starts.
#[inline(always)]
pub(crate) fn path() -> Path {
    let l = LOCAL.with(|l| l as *const Local);
    // SAFETY: `LOCAL` has no destructor, so its storage lives as long as this
    // thread, which outlives this call.
    let l = unsafe { &*l };
    let s = l.slot.get();
    if s.is_null() || l.busy.get() != 0 {
        return Path::Other;
    }
    // SAFETY: slots are never freed, and this thread owns `s` until its
    // destructor runs, which cannot happen during this call.
    let s = unsafe { &*s };
    match (session::recording(), l.test.active()) {
        (false, false) => Path::Count(s),
        (true, false) => Path::Record(s),
        (_, true) => Path::Track(s),
    }
}

/// After the inner call of a [`Path::Record`] call, with its slot. [`path`]
/// found the slot and `busy` clear, and the inner call does not change them
/// (only this thread's destructor takes the slot away; a signal handler that
/// runs memscope's code restores `busy` before it returns). A recording that
/// stops meanwhile is the race every recorded call has with the stop (the
/// final flush takes what is in the ring).
#[inline(always)]
pub(crate) fn on_recorded(inner: &dyn GlobalAlloc, s: &Slot, fp: usize, ev: Event) {
    // A failed alloc or realloc (rare) goes out of line, so that the common
    // path never carries the question. As plain words: an `Event` passed by
    // reference would keep the common path's copy in memory.
    if ev.failed() {
        let (k, w0, w1, w2, w3, w4) = ev.to_words();
        return on_recorded_failed(inner, s, fp, k, w0, w1, w2, w3, w4);
    }
    let l = LOCAL.with(|l| l as *const Local);
    // SAFETY: as in `path`.
    let l = unsafe { &*l };
    stats::count(&s.stats, ev);
    record::event_inline(inner, l, s, fp, ev);
}

/// [`on_recorded`] of a call that returned null.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn on_recorded_failed(
    inner: &dyn GlobalAlloc,
    s: &Slot,
    fp: usize,
    k: u8,
    w0: usize,
    w1: usize,
    w2: usize,
    w3: usize,
    w4: usize,
) {
    let ev = Event::from_words((k, w0, w1, w2, w3, w4));
    let l = LOCAL.with(|l| l as *const Local);
    // SAFETY: as in `path`.
    let l = unsafe { &*l };
    stats::count(&s.stats, ev);
    record::event(inner, l, s, fp, ev);
}

/// After the inner call of a [`Path::Track`] call (testing mode, recording
/// or not), with its slot, as [`on_recorded`].
#[inline(always)]
pub(crate) fn on_tracked(inner: &dyn GlobalAlloc, s: &Slot, fp: usize, ev: Event) {
    let l = LOCAL.with(|l| l as *const Local);
    // SAFETY: as in `path`.
    let l = unsafe { &*l };
    stats::count(&s.stats, ev);
    l.test.count(ev);
    if session::recording() {
        record::event(inner, l, s, fp, ev);
    }
}

/// Takes back an alloc that a [`Path::Count`] caller counted before the
/// inner call and that returned null.
#[cold]
#[inline(never)]
pub(crate) fn alloc_failed(size: usize) {
    let s = with(|l| l.slot.get());
    // SAFETY: as in `path` (the caller found this slot set).
    if let Some(s) = unsafe { s.as_ref() } {
        stats::uncount_alloc(&s.stats, size);
    }
}

/// The allocation path: `ev` already happened in the inner allocator.
#[inline(always)]
/// `fp` is the frame address of the allocator method: call stacks start there.
pub(crate) fn on_event(inner: &dyn GlobalAlloc, fp: usize, ev: Event) {
    // Only the address is taken inside the closure, so `LocalKey::with` is
    // inlined and the event never goes through memory (passing it into a
    // non-inlined closure cost a store-forwarding stall per call).
    let l = LOCAL.with(|l| l as *const Local);
    // SAFETY: `LOCAL` has no destructor, so its storage lives as long as this
    // thread, which outlives this call.
    let l = unsafe { &*l };
    let s = l.slot.get();
    if s.is_null() || l.busy.get() != 0 {
        return on_event_cold(inner, l, fp, ev);
    }
    // SAFETY: slots are never freed, and this thread owns `s`.
    let s = unsafe { &*s };
    stats::count(&s.stats, ev);
    if l.test.active() {
        l.test.count(ev);
    }
    if session::recording() {
        record::event(inner, l, s, fp, ev);
    }
}

#[cold]
#[inline(never)]
fn on_event_cold(inner: &dyn GlobalAlloc, l: &Local, fp: usize, ev: Event) {
    let s = l.slot.get();
    let busy = l.busy.get();
    if busy != 0 {
        // memscope's own allocation: counted, not recorded.
        // SAFETY: slots are never freed.
        match unsafe { s.as_ref() } {
            Some(s) => stats::count(&s.stats, ev),
            None => stats::count_orphan(ev),
        }
        // Not memscope's own but the program's, interrupting the record path
        // (a signal handler): it cannot be recorded (the stream's encoder is
        // mid-record), so the control stream's end record counts it as
        // untracked and the trace does not claim to be complete.
        if busy == RECORDING && session::recording() {
            session::count_untracked(ev);
        }
        return;
    }
    if l.exited.get() {
        stats::count_orphan(ev);
        if session::recording() {
            session::count_untracked(ev);
        }
        return;
    }
    let s = l.busy(|| {
        session::start_from_env_once();
        let s = Slot::claim(inner);
        if !s.is_null() {
            // Registers the destructor that closes the slot at thread exit.
            // `try_with`: never panics, even inside other destructors.
            let _ = EXIT.try_with(|_| ());
            l.slot.set(s);
        }
        s
    });
    // SAFETY: as in `on_event`.
    match unsafe { s.as_ref() } {
        Some(s) => {
            stats::count(&s.stats, ev);
            if l.test.active() {
                l.test.count(ev);
            }
            if session::recording() {
                record::event(inner, l, s, fp, ev);
            }
        }
        None => stats::count_orphan(ev),
    }
}

/// Closes the thread's slot when its thread-local destructors run.
struct ThreadExit;

impl Drop for ThreadExit {
    fn drop(&mut self) {
        with(|l| {
            let s = l.slot.replace(ptr::null());
            l.exited.set(true);
            l.stream.set(0);
            l.buffers.set(ptr::null());
            // SAFETY: slots are never freed.
            if let Some(s) = unsafe { s.as_ref() } {
                session::thread_exited(s);
            }
        });
    }
}

/// Frees a slot no thread will use again (its stream, if any, is closed).
pub(crate) fn release_slot(s: &Slot) {
    stats::retire(s);
    for c in [
        &s.counts.allocs,
        &s.counts.deallocs,
        &s.counts.reallocs,
        &s.counts.failed,
    ] {
        c.take();
    }
    // Relaxed: the Release store of the state below publishes it.
    s.stream.store(0, core::sync::atomic::Ordering::Relaxed);
    // Release: pairs with the Acquire CAS of the next claimer, which then
    // sees the reset counters, encoder and ring positions.
    s.state
        .store(slot::FREE, core::sync::atomic::Ordering::Release);
}
