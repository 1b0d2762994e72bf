//! memscope-std: track the heap of any Rust program on a desktop or server,
//! with one line.
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();
//! ```
//!
//! - **Live statistics**, always: [`stats()`] sums per-thread counters (no
//!   shared counter on the allocation path, so no slowdown on many threads).
//! - **A full trace**: run with `MEMSCOPE_OUT=trace.bin` (no code change) and
//!   every allocation, free and realloc of every thread is recorded, with its
//!   call stack (`MEMSCOPE_STACKS=N` for the depth, default 16, `0` for none;
//!   build with `RUSTFLAGS="-C force-frame-pointers=yes"` for full stacks, see
//!   [`stacks`]). Or call [`start`] for a recording under program control.
//!   Read it with `memscope-decode trace.bin`.
//! - **Names and phases**: [`track!`] names the block behind a variable,
//!   [`track_scope!`] attributes a thread's allocations to a phase.
//! - **Assertions in tests**: [`testing::count`] counts one thread's
//!   allocations, so tests running in parallel do not disturb each other.
//!
//! `MemScope::new(inner)` wraps any allocator (mimalloc, jemalloc, your own).
//!
//! # How it records
//!
//! Each thread encodes its events (about six bytes each on a churn of mixed
//! sizes, seven with call stacks; see memscope-core's `wire`) into its own
//! lock-free ring, allocated from the inner allocator; a
//! writer thread drains the rings into the file every few milliseconds. The
//! allocation path never allocates, locks or panics, and never waits without
//! bound. When a thread's ring is full (the writer thread could not keep up,
//! on a machine whose cores are all busy) the thread wakes the writer and
//! waits until it drained some, so the trace stays complete; it gives up
//! after 1 s without any progress of the writer (blocked output, a
//! debugger), and then the event is counted as lost and the trace says so
//! (see [`FullRing`]). `MEMSCOPE_FULL=drop` (or [`Config::full_ring`]) never
//! waits: a full ring loses events. `MEMSCOPE_FULL=wait:<ms>` sets the
//! patience. Every stream ends
//! with a record of its totals, so `memscope-decode` can prove the trace
//! complete — on return from `main`, `process::exit` from any thread, a panic
//! (also with `panic = "abort"`) and for threads still running at exit. See
//! [`clock`] for the timestamp scheme and [`stacks`] for call stacks.
//!
//! Each recording thread holds a 2 MiB ring and a 48 KiB stack table
//! ([`RING_BYTES`]), taken from the inner allocator and reused by the next
//! thread once it exits. Frames carry at most [`FRAME_PAYLOAD_MAX`] bytes of
//! records (readers need a frame buffer of about 33 KiB).
//!
//! # What is recorded, and what is not
//!
//! Every allocator call of every thread, from the moment recording starts (or
//! the thread's first call after that) until the thread exits or the recording
//! ends. Not recorded, but counted in [`stats()`]:
//!
//! - memscope's own allocations (reading the environment, starting the writer
//!   thread, the writer thread itself): a const-initialised thread-local flag
//!   passes them straight to the inner allocator;
//! - calls a thread makes after its memscope thread-local destructor ran (only
//!   destructors registered before memscope's, which is normally the first);
//!   the control stream's end record counts those as lost;
//! - anything in a process created by `fork` (the child stops recording);
//! - a signal handler's call that interrupts memscope's record path on its
//!   thread (it cannot be recorded mid-record): counted as untracked in the
//!   control stream's end record, like the destructors' calls above. One that
//!   interrupts memscope's other own code (opening a stream, the final flush)
//!   is counted in `stats()` only.
//!
//! Signals that kill the process end the file without end records, which the
//! decoder reports as an incomplete trace. Allocating from a signal handler
//! needs an async-signal-safe inner allocator (glibc's malloc is not); with
//! one, memscope neither deadlocks nor corrupts the trace (tests/std_faults.rs).
//!
//! Linux on x86_64 and aarch64 is what this crate is built and tested for;
//! elsewhere statistics and traces work, call stacks and module maps are empty.

#![warn(missing_docs)]

pub mod clock;
mod compressed;
mod event;
mod exit;
mod framing;
mod local;
mod modules;
mod record;
mod session;
mod slot;
pub mod stacks;
mod stats;
pub mod testing;
#[doc(hidden)]
pub mod track;
mod writer;

pub use memscope_core::StatsSnapshot;
pub use session::{start, Config, Recording, StartError};
pub use slot::full_ring::FullRing;
pub use slot::{FRAME_PAYLOAD_MAX, RING_BYTES};
pub use stats::stats;
pub use track::{Scope, Trackable};

/// How many threads wait, right now, for the writer thread to drain their
/// full ring. For tests that hold the writer up and must know when a thread
/// reached a full ring; not a stable API.
#[doc(hidden)]
pub fn threads_waiting_for_writer() -> usize {
    slot::full_ring::threads_waiting()
}

use core::alloc::{GlobalAlloc, Layout};
use event::Event;
use local::Path;
use std::alloc::System;

/// The tracking allocator: wraps `A` (the system allocator by default) and
/// counts, and while recording records, every call. See the [crate docs](crate).
///
/// Memscope keeps one set of per-thread state for the process, so use one
/// `MemScope`, as the global allocator.
#[derive(Debug, Default)]
pub struct MemScope<A = System> {
    inner: A,
}

impl MemScope<System> {
    /// Wraps the system allocator.
    pub const fn system() -> Self {
        MemScope { inner: System }
    }
}

impl<A> MemScope<A> {
    /// Wraps `inner`. Usable in a `static`.
    pub const fn new(inner: A) -> Self {
        MemScope { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method calls the inner allocator exactly once with the
// caller's arguments and returns its result unchanged; the bookkeeping before
// or after it never touches the block.
//
// Each method asks `local::path` which way the call goes, before the inner
// call: the statistics-only case is inline (two plain counter stores around
// the inner call; a free's inner call is a tail call), everything else
// (recording, testing mode, memscope's own calls, a thread's first call) is a
// jump to an out-of-line method, so no case sets up a stack frame here.
unsafe impl<A: GlobalAlloc> GlobalAlloc for MemScope<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match local::path() {
            Path::Count(s) => {
                stats::count_alloc_ahead(&s.stats, layout.size());
                // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
                let ptr = unsafe { self.inner.alloc(layout) };
                if ptr.is_null() {
                    local::alloc_failed(layout.size());
                }
                ptr
            }
            // SAFETY (all three): as above.
            Path::Record(s) => unsafe {
                self.alloc_recorded::<false>(layout, s, stacks::frame_address())
            },
            Path::Track(s) => unsafe {
                self.alloc_tracked::<false>(layout, s, stacks::frame_address())
            },
            Path::Other => unsafe { self.alloc_other::<false>(layout, stacks::frame_address()) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match local::path() {
            Path::Count(s) => {
                stats::count_alloc_ahead(&s.stats, layout.size());
                // SAFETY: as for `alloc`.
                let ptr = unsafe { self.inner.alloc_zeroed(layout) };
                if ptr.is_null() {
                    local::alloc_failed(layout.size());
                }
                ptr
            }
            // SAFETY (all three): as for `alloc`.
            Path::Record(s) => unsafe {
                self.alloc_recorded::<true>(layout, s, stacks::frame_address())
            },
            Path::Track(s) => unsafe {
                self.alloc_tracked::<true>(layout, s, stacks::frame_address())
            },
            Path::Other => unsafe { self.alloc_other::<true>(layout, stacks::frame_address()) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match local::path() {
            Path::Count(s) => {
                stats::count_dealloc(&s.stats, layout.size());
                // SAFETY: the caller guarantees `ptr` came from us with `layout`.
                unsafe { self.inner.dealloc(ptr, layout) }
            }
            // SAFETY (all three): as above.
            Path::Record(s) => unsafe {
                self.dealloc_recorded(ptr, layout, s, stacks::frame_address())
            },
            Path::Track(s) => unsafe {
                self.dealloc_tracked(ptr, layout, s, stacks::frame_address())
            },
            Path::Other => unsafe { self.dealloc_other(ptr, layout, stacks::frame_address()) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match local::path() {
            Path::Count(s) => {
                // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
                let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
                stats::count_realloc(&s.stats, layout.size(), new_size, new.is_null());
                new
            }
            // SAFETY (all three): as above.
            Path::Record(s) => unsafe {
                self.realloc_recorded(ptr, layout, new_size, s, stacks::frame_address())
            },
            Path::Track(s) => unsafe {
                self.realloc_tracked(ptr, layout, new_size, s, stacks::frame_address())
            },
            Path::Other => unsafe {
                self.realloc_other(ptr, layout, new_size, stacks::frame_address())
            },
        }
    }
}

/// The out-of-line halves of the `GlobalAlloc` methods: the inner call, then
/// the bookkeeping — for a free the bookkeeping first, so that the inner call
/// ends the method as a tail call — ([`local::on_recorded`] or [`local::on_tracked`]
/// with the slot for a [`Path::Record`] or [`Path::Track`] call,
/// [`local::on_event`] for [`Path::Other`]). `fp` is the frame address of the
/// `GlobalAlloc` method (where call stacks start): when that method ends in
/// a jump here, this method's frame takes the same place with the same
/// contents.
macro_rules! out_of_line {
    ($alloc:ident, $dealloc:ident, $realloc:ident, ($($slot:ident)?), $after:path) => {
        /// # Safety
        /// `GlobalAlloc::alloc`'s (or `alloc_zeroed`'s) contract.
        #[inline(never)]
        unsafe fn $alloc<const ZEROED: bool>(&self, layout: Layout, $($slot: &slot::Slot,)? fp: usize) -> *mut u8 {
            // SAFETY: the caller upholds the contract.
            let ptr = unsafe {
                if ZEROED {
                    self.inner.alloc_zeroed(layout)
                } else {
                    self.inner.alloc(layout)
                }
            };
            let ev = Event::Alloc {
                ptr,
                size: layout.size(),
                align: layout.align(),
                zeroed: ZEROED,
            };
            $after(&self.inner, $($slot,)? fp, ev);
            ptr
        }

        /// # Safety
        /// `GlobalAlloc::dealloc`'s contract.
        #[inline(never)]
        unsafe fn $dealloc(&self, ptr: *mut u8, layout: Layout, $($slot: &slot::Slot,)? fp: usize) {
            // Recorded before the inner call, which then ends the method as
            // a tail call: the record's values need not outlive a call. No
            // clock read: a free carries its thread's previous timestamp (see
            // `clock`), a lower bound of its moment either way.
            let ev = Event::Dealloc {
                ptr,
                size: layout.size(),
                align: layout.align(),
            };
            $after(&self.inner, $($slot,)? fp, ev);
            // SAFETY: the caller guarantees `ptr` came from us with `layout`.
            unsafe { self.inner.dealloc(ptr, layout) }
        }

        /// # Safety
        /// `GlobalAlloc::realloc`'s contract.
        #[inline(never)]
        unsafe fn $realloc(
            &self,
            ptr: *mut u8,
            layout: Layout,
            new_size: usize,
            $($slot: &slot::Slot,)?
            fp: usize,
        ) -> *mut u8 {
            $(slot::realloc_begin($slot);)?
            // SAFETY: the caller upholds the contract.
            let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
            let ev = Event::Realloc {
                old: ptr,
                old_size: layout.size(),
                new,
                new_size,
                align: layout.align(),
            };
            $after(&self.inner, $($slot,)? fp, ev);
            $(slot::realloc_end($slot);)?
            new
        }
    };
}

impl<A: GlobalAlloc> MemScope<A> {
    out_of_line!(
        alloc_recorded,
        dealloc_recorded,
        realloc_recorded,
        (s),
        local::on_recorded
    );
    out_of_line!(
        alloc_tracked,
        dealloc_tracked,
        realloc_tracked,
        (s),
        local::on_tracked
    );
    out_of_line!(
        alloc_other,
        dealloc_other,
        realloc_other,
        (),
        local::on_event
    );
}
