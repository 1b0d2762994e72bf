//! Where a [`Stream`](crate::Stream) recorder's frames go.

use crate::ring::Ring;

/// Takes whole frames, never blocking.
pub trait Sink {
    /// Writes `frame` (delimiter included) whole, or nothing when there is no
    /// room. Returns whether it was written. Called inside the recorder's
    /// critical section, so implementations need no locking of their own, and
    /// must not allocate.
    fn write_frame(&self, frame: &[u8]) -> bool;

    /// [`write_frame`](Self::write_frame) from inside the critical section
    /// `_cs`, which is what [`Stream`](crate::Stream) calls. A sink whose
    /// state sits behind a `critical_section::Mutex` overrides it to use
    /// the token instead of entering a nested section per frame.
    #[inline(always)]
    fn write_frame_locked(&self, _cs: critical_section::CriticalSection<'_>, frame: &[u8]) -> bool {
        self.write_frame(frame)
    }
}

/// Keeps frames in a [`Ring`] for the program to drain itself (over a UART,
/// into a log, or in tests). [`RingSink::drain`] is the consumer side.
pub struct RingSink<const N: usize> {
    ring: Ring<N>,
}

impl<const N: usize> RingSink<N> {
    /// An empty sink.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RingSink { ring: Ring::new() }
    }

    /// An empty sink (loom's ring is not const-constructible).
    #[cfg(loom)]
    pub fn new() -> Self {
        RingSink { ring: Ring::new() }
    }

    /// Hands the buffered bytes (whole frames) to `f` and releases what it
    /// returns. `f` runs inside a critical section (interrupts masked on a
    /// microcontroller): copy the bytes out there and send them afterwards.
    pub fn drain(&self, f: impl FnOnce(&[u8], &[u8]) -> usize) -> usize {
        // SAFETY: one consumer, the documented contract of this method, is what
        // `Ring::read` requires. `critical_section` makes concurrent drains from
        // interrupt handlers impossible rather than merely documented.
        critical_section::with(|_| unsafe { self.ring.read(f) })
    }

    /// Bytes waiting to be drained.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

impl<const N: usize> Default for RingSink<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for RingSink<N> {
    fn write_frame(&self, frame: &[u8]) -> bool {
        // SAFETY: `Sink::write_frame` is only called inside the recorder's
        // critical section, so no two pushes overlap.
        unsafe { self.ring.push(&[frame]) }
    }
}
