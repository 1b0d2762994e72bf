//! The frames of a [`Stream`](super::Stream), written in one buffer in one
//! pass: the records first, then COBS in place.
//!
//! `Stream` writes only stream 0, unchecked, so a frame's head is the single
//! byte `0x00` and its payload is `00 records…`. COBS turns that into
//! `01 code records… 00`: the head's zero becomes the code `01` (an empty run),
//! and each zero among the records becomes the distance to the next zero (or
//! to the end). With at most 253 record bytes no run reaches 254 bytes, so no
//! code byte is ever inserted and the records are encoded where they lie: no
//! second buffer, no copy, no zeroing. These are exactly the bytes
//! `frame::encode_frame(0, false, ..)` writes (a test compares them), in a
//! fraction of its code, which matters where flash is counted in kilobytes.

use core::mem::MaybeUninit;

/// Bytes of a frame buffer; a power of two, so that every position is masked
/// into the array instead of checked (no panic branch, no length test per
/// byte). Holds the optional leading `0x00`, `01 code`, at most 253 record
/// bytes and the delimiter.
pub(super) const CAP: usize = 256;

/// One frame of stream 0 being written.
pub(super) struct FrameOut {
    buf: [MaybeUninit<u8>; CAP],
    /// `0`, or `1` when a `0x00` goes before the frame (the header's frame).
    start: usize,
    /// Where the next byte goes; `CAP` or more once the records overflowed
    /// (then [`finish`](Self::finish) refuses the frame).
    pos: usize,
}

impl FrameOut {
    /// An empty frame; `lead` puts one `0x00` before it (see `Stream`'s
    /// header: it ends a half frame left by a reset).
    #[inline(always)]
    pub(super) fn new(lead: bool) -> Self {
        let mut f = FrameOut {
            buf: [MaybeUninit::uninit(); CAP],
            start: usize::from(lead),
            pos: 0,
        };
        if lead {
            f.byte(0);
        }
        // The head's zero, as COBS writes it, and a placeholder for the code
        // of the first run of records (set by `finish`).
        f.byte(1);
        f.byte(1);
        f
    }

    /// Appends one record byte.
    #[inline(always)]
    pub(super) fn byte(&mut self, b: u8) {
        self.buf[self.pos % CAP].write(b);
        self.pos += 1;
    }

    /// Appends `v` as a varint (LEB128, what postcard writes).
    #[inline(never)]
    pub(super) fn varint(&mut self, v: u64) {
        // Most fields fit 32 bits: their loop needs no 64-bit shifts on a
        // 32-bit core.
        if let Ok(mut v) = u32::try_from(v) {
            while v >= 0x80 {
                self.byte(v as u8 | 0x80);
                v >>= 7;
            }
            self.byte(v as u8);
        } else {
            let mut v = v;
            while v >= 0x80 {
                self.byte(v as u8 | 0x80);
                v >>= 7;
            }
            self.byte(v as u8);
        }
    }

    /// Appends `addr - base` as a zigzag varint.
    #[inline(always)]
    pub(super) fn addr(&mut self, addr: u64, base: u64) {
        self.varint(crate::varint::zigzag(addr.wrapping_sub(base) as i64));
    }

    /// Appends raw bytes. Out of line: the header writes four fields this way.
    #[inline(never)]
    pub(super) fn bytes(&mut self, s: &[u8]) {
        if s.len() >= CAP {
            // Cannot fit: mark the frame overflowed without looping over it.
            self.pos = CAP;
            return;
        }
        for &b in s {
            self.byte(b);
        }
    }

    /// Appends an extension record of kind `kind` (below 128) whose body
    /// `body` writes: `00 kind len body`, `len` a varint.
    ///
    /// `body` runs twice: once where the record goes, to learn its length,
    /// then again after the length. For the records written once or twice
    /// a session (header, heap region, end): no body ever moves when its
    /// length takes two bytes, so there is no shifting code in flash.
    #[inline(always)]
    pub(super) fn ext(&mut self, kind: u8, body: impl Fn(&mut Self)) {
        let at = self.pos;
        body(self);
        let len = self.pos.wrapping_sub(at);
        self.pos = at;
        self.byte(0);
        self.byte(kind);
        self.varint(len as u64);
        body(self);
    }

    /// [`ext`](Self::ext) for a record written often (a new call stack):
    /// the body goes after a one-byte length, which holds every body below
    /// 128 bytes (a 32-bit core's deepest stack record takes 86), and only a
    /// longer one (a deep stack on a 64-bit host) is written a second time,
    /// after its two-byte length.
    #[inline(always)]
    pub(super) fn ext_often(&mut self, kind: u8, body: impl Fn(&mut Self)) {
        self.byte(0);
        self.byte(kind);
        let at = self.pos;
        self.byte(0);
        body(self);
        let len = self.pos.wrapping_sub(at + 1);
        if len < 0x80 {
            self.buf[at % CAP].write(len as u8);
        } else {
            self.pos = at;
            self.varint(len as u64);
            body(self);
        }
    }

    /// COBS-encodes the records in place and appends the delimiter. Returns
    /// the frame (with its leading `0x00`, if any), or `None` when the records
    /// did not fit.
    #[inline(never)]
    pub(super) fn finish(&mut self) -> Option<&[u8]> {
        let end = self.pos;
        if end >= CAP {
            return None;
        }
        let mut code_at = self.start + 1;
        for i in code_at + 1..end {
            // SAFETY: positions `start..end` were all written, in order, and
            // `end < CAP` means none was written twice by wrapping.
            if unsafe { self.buf[i % CAP].assume_init() } == 0 {
                self.buf[code_at % CAP].write((i - code_at) as u8);
                code_at = i;
            }
        }
        self.buf[code_at % CAP].write((end - code_at) as u8);
        self.buf[end % CAP].write(0);
        let frame = self.buf.get(..end + 1)?;
        // SAFETY: every byte of `frame` was written above or before `finish`
        // (positions `0..=end`; position 0 is the lead or the first code), and
        // `MaybeUninit<u8>` has the layout of `u8`.
        Some(unsafe { &*(frame as *const [MaybeUninit<u8>] as *const [u8]) })
    }
}
