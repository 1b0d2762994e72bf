//! A fixed-capacity, lock-free, single-producer single-consumer byte ring that
//! takes whole entries or nothing.
//!
//! One producer pushes entries (a frame, or a few encoded records); one
//! consumer reads what has been committed and releases it. An entry that does
//! not fit whole is refused — the producer counts it as lost and says so in its
//! next entry — so a reader never sees half an entry and the producer never
//! waits. Needs only atomic load and store of `usize`, which every target has
//! (thumbv6m included): there is no read-modify-write on either side.
//!
//! # Producer discipline
//!
//! [`Ring::push`] must never run twice at once. memscope keeps that true by
//! construction: on a host every thread owns its ring; on a microcontroller the
//! pushes happen inside one critical section together with the inner
//! allocator call, which is also what keeps the recorded order equal to the
//! allocator's order. The same holds for [`Ring::read`]/[`Ring::release`] on
//! the consumer side (the writer thread, or the code draining the ring).
//!
//! # Capacity
//!
//! `N` bytes, a power of two; every byte is usable (the indices are free-running
//! counters, so full and empty are told apart by their difference).

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
use portable_atomic::{AtomicUsize, Ordering};

#[cfg(not(loom))]
use core::cell::UnsafeCell;
#[cfg(loom)]
use loom::cell::UnsafeCell;

/// A byte ring of `N` bytes. See the [module docs](self).
pub struct Ring<const N: usize> {
    /// Free-running count of bytes ever committed. Written by the producer only.
    head: AtomicUsize,
    /// Free-running count of bytes ever released. Written by the consumer only.
    tail: AtomicUsize,
    /// One cell per byte, so that loom checks producer and consumer accesses
    /// byte by byte (they touch disjoint bytes at any moment).
    buf: [UnsafeCell<u8>; N],
}

// SAFETY: the ring hands out no references to its cells; bytes move in and out
// by copy under the single-producer/single-consumer contract of `push` and
// `read`/`release`, with the head/tail Release/Acquire pairs ordering them.
unsafe impl<const N: usize> Sync for Ring<N> {}

impl<const N: usize> Ring<N> {
    const MASK: usize = {
        assert!(N.is_power_of_two(), "ring capacity must be a power of two");
        N - 1
    };

    /// An empty ring.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Ring {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            buf: [const { UnsafeCell::new(0) }; N],
        }
    }

    /// An empty ring (loom's cells are not const-constructible).
    #[cfg(loom)]
    pub fn new() -> Self {
        Ring {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            buf: core::array::from_fn(|_| UnsafeCell::new(0)),
        }
    }

    /// Capacity in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Bytes committed and not yet released. Exact only from the producer or
    /// consumer side; a third party sees a value that was true a moment ago.
    pub fn len(&self) -> usize {
        // Relaxed: a statistic, ordered with nothing.
        self.head
            .load(Ordering::Relaxed)
            .wrapping_sub(self.tail.load(Ordering::Relaxed))
    }

    /// Whether nothing is waiting to be read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the concatenation of `parts` as one entry, or nothing when it
    /// does not fit. Returns whether it was appended. Never blocks.
    ///
    /// # Safety
    ///
    /// No other call of `push` on this ring may run at the same time (see the
    /// module docs for how memscope guarantees it).
    #[inline]
    pub unsafe fn push(&self, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // Relaxed: only this producer writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release of `tail`, so its reads of
        // the bytes it released happen before we overwrite them.
        let tail = self.tail.load(Ordering::Acquire);
        if N - head.wrapping_sub(tail) < len {
            return false;
        }
        let mut at = head;
        for part in parts {
            self.copy_in(at, part);
            at = at.wrapping_add(part.len());
        }
        // Release: publishes the bytes written above to the consumer's Acquire.
        self.head.store(at, Ordering::Release);
        true
    }

    /// Lends the committed bytes to `f` as at most two slices (the second is
    /// the part that wrapped around), then releases as many bytes as `f`
    /// returns (clamped to what was lent). Returns that number.
    ///
    /// # Safety
    ///
    /// No other call of `read` may run at the same time.
    pub unsafe fn read(&self, f: impl FnOnce(&[u8], &[u8]) -> usize) -> usize {
        // Relaxed: only this consumer writes `tail`.
        let tail = self.tail.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release, making the committed bytes visible.
        let head = self.head.load(Ordering::Acquire);
        let len = head.wrapping_sub(tail);
        let start = tail & Self::MASK;
        let first = len.min(N - start);
        let used = self.lend(start, first, len - first, f).min(len);
        // Release: our reads of the released bytes happen before the producer reuses them.
        self.tail.store(tail.wrapping_add(used), Ordering::Release);
        used
    }

    #[cfg(not(loom))]
    #[inline]
    fn copy_in(&self, at: usize, part: &[u8]) {
        let start = at & Self::MASK;
        let first = part.len().min(N - start);
        let base = UnsafeCell::raw_get(self.buf.as_ptr());
        // SAFETY: `start + first <= N` and `part.len() - first <= N - first`
        // stay inside `buf`; these bytes are free (the capacity check in
        // `push`), so the consumer does not read them, and only this producer
        // writes (the contract of `push`). `UnsafeCell<u8>` has the layout of `u8`.
        unsafe {
            core::ptr::copy_nonoverlapping(part.as_ptr(), base.add(start), first);
            core::ptr::copy_nonoverlapping(part.as_ptr().add(first), base, part.len() - first);
        }
    }

    #[cfg(not(loom))]
    fn lend(
        &self,
        start: usize,
        first: usize,
        second: usize,
        f: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> usize {
        let base = UnsafeCell::raw_get(self.buf.as_ptr()).cast_const();
        // SAFETY: both ranges are inside `buf` (`start + first <= N`,
        // `second <= start`), committed by the producer (Acquire above) and not
        // released until `tail` is stored after `f` returns, so the producer
        // does not write them while the slices live.
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(base.add(start), first),
                core::slice::from_raw_parts(base, second),
            )
        };
        f(a, b)
    }

    #[cfg(loom)]
    fn copy_in(&self, at: usize, part: &[u8]) {
        for (i, &b) in part.iter().enumerate() {
            // SAFETY: as in the non-loom version; loom checks it per byte.
            self.buf[at.wrapping_add(i) & Self::MASK].with_mut(|p| unsafe { *p = b });
        }
    }

    #[cfg(loom)]
    fn lend(
        &self,
        start: usize,
        first: usize,
        second: usize,
        f: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> usize {
        extern crate std;
        // SAFETY: as in the non-loom version; loom checks it per byte.
        let get = |i: usize| self.buf[i].with(|p| unsafe { *p });
        let a: std::vec::Vec<u8> = (start..start + first).map(get).collect();
        let b: std::vec::Vec<u8> = (0..second).map(get).collect();
        f(&a, &b)
    }
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn drain<const N: usize>(r: &Ring<N>) -> Vec<u8> {
        let mut out = Vec::new();
        // SAFETY: single-threaded test, one consumer.
        unsafe {
            r.read(|a, b| {
                out.extend_from_slice(a);
                out.extend_from_slice(b);
                a.len() + b.len()
            })
        };
        out
    }

    #[test]
    fn whole_entries_or_nothing() {
        let r = Ring::<8>::new();
        // SAFETY: single-threaded test, one producer.
        unsafe {
            assert!(r.push(&[b"abc", b"de"]));
            assert!(!r.push(&[b"fghi"]), "4 bytes do not fit in the 3 left");
            assert!(r.push(&[b"fgh"]));
            assert!(!r.push(&[b"i"]));
        }
        assert_eq!(r.len(), 8);
        assert_eq!(drain(&r), b"abcdefgh");
        assert!(r.is_empty());
    }

    #[test]
    fn wraps_around() {
        let r = Ring::<8>::new();
        let mut expect = Vec::new();
        let mut got = Vec::new();
        for i in 0..100u8 {
            let entry = [i, i.wrapping_mul(3), i ^ 0x55];
            // SAFETY: single-threaded test.
            assert!(unsafe { r.push(&[&entry]) });
            expect.extend_from_slice(&entry);
            got.extend(drain(&r));
        }
        assert_eq!(got, expect);
    }

    #[test]
    fn partial_release_keeps_the_rest() {
        let r = Ring::<16>::new();
        // SAFETY: single-threaded test.
        unsafe {
            r.push(&[b"0123456789"]);
            assert_eq!(r.read(|a, _| a.len().min(4)), 4);
        }
        assert_eq!(drain(&r), b"456789");
    }
}
