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
//! allocator's order. The same holds for [`Ring::read`] on
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
    head: CacheLine<AtomicUsize>,
    /// The producer's copy of `tail` from its last look: a lower bound of the
    /// real one (it only grows), so space it shows free is free. The producer
    /// re-reads `tail` only when this copy says an entry does not fit, so a
    /// push does not load the consumer's cache line. Producer only.
    seen_tail: core::cell::Cell<usize>,
    /// Free-running count of bytes ever released. Written by the consumer only.
    /// On its own cache line: the producer's stores of `head` (every push) do
    /// not invalidate the line the consumer writes, nor the reverse.
    tail: CacheLine<AtomicUsize>,
    /// One cell per byte, so that loom checks producer and consumer accesses
    /// byte by byte (they touch disjoint bytes at any moment).
    buf: [UnsafeCell<u8>; N],
}

/// Keeps a field alone on its cache line (128 bytes: two 64-byte lines, as
/// adjacent-line prefetchers pair them) on the multi-core targets where the
/// producer and consumer run on different cores. Elsewhere (microcontrollers:
/// one core, RAM counted in bytes) no padding. All-zero bytes stay a valid
/// empty ring.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
struct CacheLine<T>(T);

impl<T> core::ops::Deref for CacheLine<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Where to encode one entry: see [`Ring::reserve`].
pub struct Reserved<'a> {
    /// Write the entry at the start of this.
    pub buf: &'a mut [u8],
    head: usize,
    /// `buf` is the caller's scratch buffer, copied in on commit.
    copied: bool,
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
            head: CacheLine(AtomicUsize::new(0)),
            seen_tail: core::cell::Cell::new(0),
            tail: CacheLine(AtomicUsize::new(0)),
            buf: [const { UnsafeCell::new(0) }; N],
        }
    }

    /// An empty ring (loom's cells are not const-constructible).
    #[cfg(loom)]
    pub fn new() -> Self {
        Ring {
            head: CacheLine(AtomicUsize::new(0)),
            seen_tail: core::cell::Cell::new(0),
            tail: CacheLine(AtomicUsize::new(0)),
            buf: core::array::from_fn(|_| UnsafeCell::new(0)),
        }
    }

    /// Capacity in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Bytes committed and not yet released. Exact only from the producer or
    /// consumer side; a third party sees a value between 0 and the capacity
    /// that was true a moment ago.
    pub fn len(&self) -> usize {
        // Acquire: pairs with the consumer's Release of `tail`, which follows
        // its Acquire load of a `head` at least as large; the load of `head`
        // below then sees that head or a later one (read-read coherence), so
        // the difference never wraps below zero. (Loading `head` first, a third
        // party could see the consumer release bytes pushed after its look at
        // `head`: tests/loom_ring.rs found a length of 2^64 - 2.)
        let tail = self.tail.load(Ordering::Acquire);
        // Relaxed: ordered after the load of `tail` by its Acquire.
        let head = self.head.load(Ordering::Relaxed);
        // The producer may have pushed (into space released after our look at
        // `tail`) more than the capacity past it.
        head.wrapping_sub(tail).min(N)
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
        if self.free(head, len) < len {
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

    /// Space to encode one entry of at most `scratch.len()` bytes in place:
    /// the ring's own free bytes when that many lie free in one piece,
    /// otherwise `scratch` (the entry may wrap around the buffer's end). Write
    /// the entry at the start of [`Reserved::buf`], then
    /// [`commit`](Self::commit) its length. Nothing is visible to the
    /// consumer before the commit, and an uncommitted reservation leaves the
    /// ring as it was.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push): no other `push`, `reserve` or `commit` on
    /// this ring at the same time, and no `push` between this reservation and
    /// its commit.
    #[inline(always)]
    pub unsafe fn reserve<'a>(&'a self, scratch: &'a mut [u8]) -> Reserved<'a> {
        let max = scratch.len();
        // Relaxed: only this producer writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        match self.in_place(head, max) {
            Some(buf) => Reserved {
                buf,
                head,
                copied: false,
            },
            None => Reserved {
                buf: scratch,
                head,
                copied: true,
            },
        }
    }

    /// Appends the first `len` bytes of `r.buf` as one entry, or nothing when
    /// they do not fit (only possible when they were written to the scratch
    /// buffer) or `len` is 0. Returns whether it was appended: exactly when
    /// [`push`](Self::push) of the same bytes would have. Never blocks.
    ///
    /// # Safety
    ///
    /// As for [`reserve`](Self::reserve); `r` comes from this ring's latest
    /// reservation.
    #[inline(always)]
    pub unsafe fn commit(&self, r: Reserved<'_>, len: usize) -> bool {
        let len = len.min(r.buf.len());
        if len == 0 {
            return false;
        }
        if r.copied {
            if self.free(r.head, len) < len {
                return false;
            }
            self.copy_in(r.head, &r.buf[..len]);
        }
        // Release: publishes the entry's bytes (written in place, or copied
        // just above) to the consumer's Acquire.
        self.head.store(r.head.wrapping_add(len), Ordering::Release);
        true
    }

    /// The producer's position: bytes ever committed (the next entry starts
    /// here).
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)).
    #[inline(always)]
    pub unsafe fn head(&self) -> usize {
        // Relaxed: only this producer writes `head`.
        self.head.load(Ordering::Relaxed)
    }

    /// Bytes free from position `head` (the producer's) up to the consumer's
    /// position or the end of the buffer, whichever comes first: room to
    /// write entries in place at [`write_ptr`](Self::write_ptr)`(head)`
    /// without wrapping. Re-reads the consumer's index only when fewer than
    /// `want` bytes seem free.
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)).
    #[inline]
    pub unsafe fn contiguous_free(&self, head: usize, want: usize) -> usize {
        (N - (head & Self::MASK)).min(self.free(head, want))
    }

    /// Where the byte at position `at` lives, to write an entry in place;
    /// [`publish`](Self::publish) then makes it visible.
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)). The caller writes only
    /// bytes it knows free and contiguous: `at` and the bytes written after it
    /// lie within the room [`contiguous_free`](Self::contiguous_free)
    /// returned for an earlier position `head <= at` (the consumer never
    /// takes back free space, and the producer writes only below its head),
    /// and no `push` or `commit` runs until the `publish`.
    #[cfg(not(loom))]
    #[inline(always)]
    pub unsafe fn write_ptr(&self, at: usize) -> *mut u8 {
        let base = UnsafeCell::raw_get(self.buf.as_ptr());
        // SAFETY: `at & MASK < N` stays inside `buf`; `UnsafeCell<u8>` has
        // the layout of `u8`. Writing through it is the caller's contract.
        unsafe { base.add(at & Self::MASK) }
    }

    /// Makes the bytes written in place (see [`write_ptr`](Self::write_ptr))
    /// up to position `head` visible to the consumer, as one entry.
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)); `head` is at most the
    /// room [`contiguous_free`](Self::contiguous_free) returned past a
    /// position at or after the current head, and the bytes up to it are
    /// written.
    #[inline(always)]
    pub unsafe fn publish(&self, head: usize) {
        // Release: publishes the bytes written in place to the consumer's
        // Acquire.
        self.head.store(head, Ordering::Release);
    }

    /// The `max` bytes at `head` as one writable slice, when they are free and
    /// do not wrap around the end of the buffer.
    #[cfg(not(loom))]
    #[inline(always)]
    // The producer's exclusive right to the free bytes is the ring's
    // contract, not `&self`: see `reserve`'s safety section.
    #[allow(clippy::mut_from_ref)]
    fn in_place(&self, head: usize, max: usize) -> Option<&mut [u8]> {
        let start = head & Self::MASK;
        if N - start < max || self.free(head, max) < max {
            return None;
        }
        let base = UnsafeCell::raw_get(self.buf.as_ptr());
        // SAFETY: `start + max <= N` stays inside `buf`; the `max` bytes from
        // `head` are free (checked just above), so the consumer does not read
        // them until the producer publishes them with its next store of
        // `head`, and only the producer writes (the contract of `reserve`,
        // whose caller holds the slice only until then). `UnsafeCell<u8>` has
        // the layout of `u8`, and the cells are always initialised.
        Some(unsafe { core::slice::from_raw_parts_mut(base.add(start), max) })
    }

    /// Under loom every byte goes through `copy_in`, which checks each access.
    #[cfg(loom)]
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    fn in_place(&self, _head: usize, _max: usize) -> Option<&mut [u8]> {
        None
    }

    /// Free bytes as far as the producer knows: exact when fewer than `want`
    /// seem free (it then re-reads `tail`), a lower bound otherwise.
    #[inline(always)]
    fn free(&self, head: usize, want: usize) -> usize {
        let free = N - head.wrapping_sub(self.seen_tail.get());
        if free >= want {
            return free;
        }
        // Acquire: pairs with the consumer's Release of `tail`, so its reads of
        // the bytes it released happen before we overwrite them. (The copy in
        // `seen_tail` was read the same way, so the space it shows free was
        // released the same way.)
        let tail = self.tail.load(Ordering::Acquire);
        self.seen_tail.set(tail);
        N - head.wrapping_sub(tail)
    }

    /// Bytes committed and not yet released, as the producer sees it: an
    /// upper bound (the consumer may have released more since the producer
    /// last looked) that costs no access to the consumer's cache line.
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)).
    #[inline]
    pub unsafe fn len_at_most(&self) -> usize {
        // Relaxed: only this producer writes `head`.
        self.head
            .load(Ordering::Relaxed)
            .wrapping_sub(self.seen_tail.get())
    }

    /// [`len`](Self::len) from the producer side, also refreshing what
    /// [`len_at_most`](Self::len_at_most) knows.
    ///
    /// # Safety
    ///
    /// Producer side only (as [`push`](Self::push)).
    #[inline]
    pub unsafe fn refresh_len(&self) -> usize {
        // Acquire: as in `free`.
        let tail = self.tail.load(Ordering::Acquire);
        self.seen_tail.set(tail);
        // Relaxed: only this producer writes `head`.
        self.head.load(Ordering::Relaxed).wrapping_sub(tail)
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

    /// Pushes `entry` through `reserve`/`commit` with a scratch of `max` bytes.
    fn push_encoded<const N: usize>(r: &Ring<N>, entry: &[u8], max: usize) -> bool {
        let mut scratch = std::vec![0u8; max];
        // SAFETY: single-threaded test, one producer.
        unsafe {
            let res = r.reserve(&mut scratch);
            assert!(res.buf.len() >= max);
            res.buf[..entry.len()].copy_from_slice(entry);
            r.commit(res, entry.len())
        }
    }

    #[test]
    fn reserve_writes_in_place_wraps_through_scratch_and_refuses_what_does_not_fit() {
        let r = Ring::<16>::new();
        let mut expect = Vec::new();
        let mut got = Vec::new();
        // Entries of 1..=5 bytes with a scratch of 6: some are written in
        // place, those near the end go through the scratch and wrap.
        for i in 0..200u8 {
            let entry: Vec<u8> = (0..1 + i % 5).map(|k| i.wrapping_add(k)).collect();
            assert!(push_encoded(&r, &entry, 6));
            expect.extend_from_slice(&entry);
            if i % 3 == 2 {
                got.extend(drain(&r));
            }
        }
        got.extend(drain(&r));
        assert_eq!(got, expect);
        // Same rule as `push`: whole entry or nothing, by its real length.
        assert!(push_encoded(&r, &[1; 10], 12));
        assert!(
            !push_encoded(&r, &[2; 7], 8),
            "7 bytes do not fit in the 6 left"
        );
        assert!(
            push_encoded(&r, &[3; 6], 8),
            "6 do, even with a scratch of 8"
        );
        assert_eq!(r.len(), 16);
        // Nothing pushed when the writer reports 0 bytes.
        drain(&r);
        // SAFETY: single-threaded test.
        let mut scratch = [0; 4];
        assert!(!unsafe {
            let res = r.reserve(&mut scratch);
            r.commit(res, 0)
        });
        assert!(r.is_empty());
    }

    #[test]
    fn in_place_writes_stay_inside_the_contiguous_free_room() {
        let r = Ring::<16>::new();
        let mut expect = Vec::new();
        let mut got = Vec::new();
        for i in 0..60u8 {
            // SAFETY: single-threaded test, one producer.
            unsafe {
                let head = r.head();
                let room = r.contiguous_free(head, 3);
                assert!(room <= 16 - head % 16, "never past the buffer's end");
                if room >= 3 {
                    let p = r.write_ptr(head);
                    for k in 0..3 {
                        p.add(k).write(i.wrapping_add(k as u8));
                    }
                    r.publish(head + 3);
                    expect.extend((0..3).map(|k| i.wrapping_add(k)));
                } else {
                    // The rest of the buffer is too short: pad it, as the
                    // general path's wrap would use it.
                    let p = r.write_ptr(head);
                    for k in 0..room {
                        p.add(k).write(0xEE);
                    }
                    r.publish(head + room);
                    expect.extend(core::iter::repeat_n(0xEE, room));
                }
            }
            if i % 4 == 3 {
                got.extend(drain(&r));
            }
        }
        got.extend(drain(&r));
        assert_eq!(got, expect);
        // A full ring has no room; the consumer's release makes some.
        // SAFETY: as above.
        unsafe {
            assert!(r.push(&[&[7; 16]]));
            assert_eq!(r.contiguous_free(r.head(), 1), 0);
            assert_eq!(r.read(|a, _| a.len().min(5)), 5);
            assert_eq!(r.contiguous_free(r.head(), 1), 5);
        }
    }

    #[test]
    fn producer_view_of_length_is_an_upper_bound_until_refreshed() {
        let r = Ring::<16>::new();
        // SAFETY: single-threaded test: producer and consumer.
        unsafe {
            assert!(r.push(&[b"0123456789"]));
            assert_eq!(r.len_at_most(), 10);
            drain(&r);
            assert_eq!(r.len_at_most(), 10, "the producer has not looked yet");
            assert_eq!(r.refresh_len(), 0);
            assert_eq!(r.len_at_most(), 0);
            // A push that seems not to fit re-reads the consumer's index.
            assert!(r.push(&[b"0123456789"]));
            drain(&r);
            assert!(r.push(&[b"0123456789abcde"]));
        }
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

/// The producer's cached view of the consumer's index under loom: entries
/// pushed through the scratch path while a consumer releases concurrently
/// arrive whole and in order, and space is never reused before it is released.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    extern crate std;
    use loom::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn reserve_commit_against_a_concurrent_consumer() {
        loom::model(|| {
            let r = Arc::new(Ring::<4>::new());
            let consumer = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        // SAFETY: the only consumer.
                        unsafe {
                            r.read(|a, b| {
                                got.extend_from_slice(a);
                                got.extend_from_slice(b);
                                a.len() + b.len()
                            })
                        };
                    }
                    got
                })
            };
            let mut pushed = Vec::new();
            for i in 1..=3u8 {
                let entry = [i, i];
                // SAFETY: the only producer.
                let ok = unsafe {
                    let mut scratch = [0; 3];
                    let res = r.reserve(&mut scratch);
                    res.buf[..2].copy_from_slice(&entry);
                    r.commit(res, 2)
                };
                if ok {
                    pushed.extend_from_slice(&entry);
                }
            }
            let mut got = consumer.join().unwrap();
            // SAFETY: the consumer thread has finished: we are the only one.
            unsafe {
                r.read(|a, b| {
                    got.extend_from_slice(a);
                    got.extend_from_slice(b);
                    a.len() + b.len()
                })
            };
            assert_eq!(got, pushed);
        });
    }
}
