//! The `GlobalAlloc` wrapper and the [`Recorder`] it reports to.

use crate::stats::StatsSnapshot;
use core::alloc::{GlobalAlloc, Layout};

/// Turns allocator calls into records and statistics.
///
/// # Safety
///
/// Each method must call `inner` exactly once and return what it returned
/// unchanged: [`TrackingAllocator`]'s `GlobalAlloc` implementation relies on it.
/// The methods must not allocate through the global allocator, block without
/// bound, or panic.
pub unsafe trait Recorder {
    /// `alloc` (`zeroed` false) or `alloc_zeroed`; `inner` performs it.
    fn alloc(&self, layout: Layout, zeroed: bool, inner: impl FnOnce() -> *mut u8) -> *mut u8;
    /// `dealloc`; `inner` performs it.
    fn dealloc(&self, ptr: *mut u8, layout: Layout, inner: impl FnOnce());
    /// `realloc`; `inner` performs it.
    fn realloc(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        inner: impl FnOnce() -> *mut u8,
    ) -> *mut u8;
    /// The live statistics.
    fn stats(&self) -> StatsSnapshot;
}

/// Wraps any `GlobalAlloc` and reports every call to a [`Recorder`].
///
/// `realloc` stays one call of the inner allocator and one record; failed
/// (null) allocations are recorded too.
///
/// ```
/// use memscope_core::{StatsOnly, TrackingAllocator};
/// use std::alloc::System;
///
/// #[global_allocator]
/// static HEAP: TrackingAllocator<System, StatsOnly> = TrackingAllocator::new(System, StatsOnly::new());
///
/// let v = vec![0u8; 100];
/// assert!(HEAP.stats().current_bytes >= 100);
/// # drop(v);
/// ```
pub struct TrackingAllocator<A, R> {
    inner: A,
    recorder: R,
}

impl<A, R> TrackingAllocator<A, R> {
    /// Wraps `inner`, reporting to `recorder`. Usable in a `static`.
    pub const fn new(inner: A, recorder: R) -> Self {
        TrackingAllocator { inner, recorder }
    }

    /// The wrapped allocator (for example to call `LlffHeap::init` or `used`).
    pub const fn inner(&self) -> &A {
        &self.inner
    }

    /// The recorder.
    pub const fn recorder(&self) -> &R {
        &self.recorder
    }
}

impl<A, R: Recorder> TrackingAllocator<A, R> {
    /// Live statistics.
    pub fn stats(&self) -> StatsSnapshot {
        self.recorder.stats()
    }
}

// SAFETY: every method forwards to the inner allocator exactly once with the
// caller's arguments and returns its result unchanged (the `Recorder` contract),
// so the inner allocator's guarantees carry over.
unsafe impl<A: GlobalAlloc, R: Recorder> GlobalAlloc for TrackingAllocator<A, R> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        self.recorder
            .alloc(layout, false, || unsafe { self.inner.alloc(layout) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        self.recorder
            .alloc(layout, true, || unsafe { self.inner.alloc_zeroed(layout) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout`.
        self.recorder
            .dealloc(ptr, layout, || unsafe { self.inner.dealloc(ptr, layout) })
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        self.recorder.realloc(ptr, layout, new_size, || unsafe {
            self.inner.realloc(ptr, layout, new_size)
        })
    }
}
