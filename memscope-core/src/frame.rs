//! Frames: how records travel, and how a reader finds them again after damage.
//!
//! On the wire a frame is `COBS(payload) 0x00`. The payload is
//! `head:varint records… [crc16:le]`, where `head = stream << 1 | checked`:
//! the stream id says which producer (thread, or 0 for a microcontroller and
//! the process's control stream) wrote the records, and `checked` says a
//! CRC-16/IBM-SDLC of everything before it closes the payload. COBS keeps 0x00
//! out of the frame, so after any damage a reader resynchronises at the next
//! 0x00 and loses exactly the damaged frame, which [`Deframer`] reports with
//! its byte offset and length.
//!
//! Hosts turn on the `fast-frames` feature: the same frames, checked and cut
//! several times faster ([`Crc16`] by carry-less multiplication, delimiters
//! found by `memchr`), for 8 KiB of tables and std. Without it (firmware) the
//! CRC is one 256-entry table, linked only if a checked frame is written.

mod cobs_decode;
mod crc16;

use crate::varint;
use cobs::CobsEncoder;
pub use crc16::Crc16;

/// The most bytes the head of a frame takes.
pub const MAX_HEAD_LEN: usize = 5;

/// Bytes a frame of `payload_len` payload bytes takes on the wire at most,
/// delimiter included.
pub const fn max_frame_len(payload_len: usize) -> usize {
    // COBS adds one byte per 254 and one up front; then the 0x00.
    payload_len + payload_len / 254 + 2
}

/// Extension kind of the frame-number record (docs/FORMAT.md, "Frame
/// numbers"), reserved as `wire::ext::FRAME_SEQ`.
///
/// A producer that numbers its frames writes, as the first record of every
/// frame of a stream, `00 0b len varint(n)`: an extension record whose body is
/// the frame's number in its stream, counted from 0 in each session. A reader
/// that knows it takes it off with [`split_seq`] before reading the records,
/// and so can tell a frame that is missing, repeated or out of order; an older
/// reader skips it as an unknown extension record.
pub const SEQ_KIND: u64 = 11;

/// The most bytes a frame-number record takes: tag, kind, length, a `u64`.
pub const MAX_SEQ_LEN: usize = 3 + 10;

/// Writes the frame-number record for frame `seq` into `out`; returns its
/// length (4 bytes below 128, 5 below 16 384, 6 below 2^21).
pub fn encode_seq(seq: u64, out: &mut [u8; MAX_SEQ_LEN]) -> usize {
    out[0] = 0; // tag: kind 0, extension
    out[1] = SEQ_KIND as u8;
    let n = varint::write_u64(&mut out[3..], seq).unwrap_or(0);
    out[2] = n as u8;
    3 + n
}

/// Takes the frame-number record off the front of a frame's records: the
/// frame's number, if it carries one, and the records after it. A first record
/// that is not a well-formed frame number is left where it is (the record
/// reader then reports or skips it).
pub fn split_seq(records: &[u8]) -> (Option<u64>, &[u8]) {
    // Tag 0 and kind 11 are one byte each; the body is at most 10 bytes, so
    // its length is one byte too. Bytes past the number are ignored: a later
    // version may append fields to an extension body.
    if let [0, k, len, rest @ ..] = records {
        if u64::from(*k) == SEQ_KIND && *len < 0x80 {
            if let Some(body) = rest.get(..usize::from(*len)) {
                if let Ok((seq, _)) = varint::read_u64(body) {
                    return (Some(seq), &rest[usize::from(*len)..]);
                }
            }
        }
    }
    (None, records)
}

/// The output buffer cannot hold the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLarge;

/// Writes one frame incrementally: the records can arrive in several slices
/// (a ring that wraps), and nothing is allocated.
pub struct FrameEncoder<'o> {
    cobs: CobsEncoder<'o>,
    digest: Option<Crc16>,
    failed: bool,
}

impl<'o> FrameEncoder<'o> {
    /// Starts a frame of stream `stream` in `out`; `checked` adds a CRC-16.
    pub fn new(out: &'o mut [u8], stream: u32, checked: bool) -> Self {
        let mut enc = FrameEncoder {
            cobs: CobsEncoder::new(out),
            digest: checked.then(Crc16::new),
            failed: false,
        };
        let mut head = [0u8; MAX_HEAD_LEN];
        let n = varint::write_u64(&mut head, (u64::from(stream) << 1) | u64::from(checked))
            .unwrap_or(0);
        enc.push(&head[..n]);
        enc
    }

    /// Appends payload bytes (whole records).
    pub fn push(&mut self, bytes: &[u8]) {
        if let Some(d) = self.digest.as_mut() {
            d.update(bytes);
        }
        if self.cobs.push(bytes).is_err() {
            self.failed = true;
        }
    }

    /// Closes the frame: checksum, COBS, delimiter. Returns the bytes written.
    pub fn finish(mut self) -> Result<usize, FrameTooLarge> {
        if let Some(d) = self.digest.take() {
            let crc = d.finish().to_le_bytes();
            if self.cobs.push(&crc).is_err() {
                self.failed = true;
            }
        }
        if self.failed {
            return Err(FrameTooLarge);
        }
        // The caller writes the 0x00 delimiter after these bytes: the COBS
        // encoder holds the only borrow of the buffer until it is finalized.
        Ok(self.cobs.finalize())
    }
}

/// Encodes one whole frame (`records` is the payload after the head) into
/// `out`, delimiter included. Returns the bytes written.
pub fn encode_frame(
    stream: u32,
    checked: bool,
    records: &[&[u8]],
    out: &mut [u8],
) -> Result<usize, FrameTooLarge> {
    let n = {
        let mut enc = FrameEncoder::new(out, stream, checked);
        for r in records {
            enc.push(r);
        }
        enc.finish()?
    };
    *out.get_mut(n).ok_or(FrameTooLarge)? = 0;
    Ok(n + 1)
}

/// What was wrong with a span of bytes that did not yield a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// The frame's CRC-16 does not match its payload.
    Checksum,
    /// No delimiter within the reader's frame buffer: an oversized or
    /// run-together frame.
    TooLong,
    /// The payload does not start with a readable stream id.
    Head,
    /// The input ended inside a frame (no delimiter after its last bytes).
    Truncated,
}

impl core::fmt::Display for Damage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Damage::Cobs => "invalid COBS encoding",
            Damage::Checksum => "checksum mismatch",
            Damage::TooLong => "no frame delimiter within the frame size limit",
            Damage::Head => "unreadable frame head",
            Damage::Truncated => "input ends inside a frame",
        })
    }
}

/// What the [`Deframer`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'b> {
    /// An intact frame.
    Frame {
        /// Stream id from the head.
        stream: u32,
        /// The records (head and checksum removed).
        records: &'b [u8],
        /// Byte offset of the frame's first byte in the input.
        offset: u64,
    },
    /// Bytes that were skipped.
    Damaged {
        /// Byte offset of the first skipped byte.
        offset: u64,
        /// How many bytes were skipped (delimiter not counted).
        len: u64,
        /// Why.
        reason: Damage,
    },
}

/// Splits a byte stream into frames without allocating: the caller lends the
/// buffer, whose size bounds the largest frame it accepts.
pub struct Deframer<'b> {
    buf: &'b mut [u8],
    fill: usize,
    /// Bytes of the current frame, which may exceed `fill` once it overflowed.
    frame_len: u64,
    /// Offset of the next input byte.
    offset: u64,
    /// See [`Deframer::sticky_checksums`].
    sticky: bool,
    /// A frame with a CRC was read.
    crc_seen: bool,
}

impl<'b> Deframer<'b> {
    /// A deframer whose frames may be up to `buf.len()` encoded bytes long.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Deframer {
            buf,
            fill: 0,
            frame_len: 0,
            offset: 0,
            sticky: false,
            crc_seen: false,
        }
    }

    /// Once a frame with a CRC has been read, treats a frame without one as
    /// damaged ([`Damage::Checksum`]). A producer checks all its frames or
    /// none (memscope-std all, a microcontroller's `Stream` none), while one
    /// flipped bit can clear a frame's "checked" bit, or a split can make a
    /// piece start with a head whose bit is clear: such a frame would pass
    /// unverified. Readers of a single producer's output should turn this on.
    pub fn sticky_checksums(mut self) -> Self {
        self.sticky = true;
        self
    }

    /// Whether a frame whose CRC checked out has been read: the input is a
    /// memscope stream beyond reasonable doubt (random bytes pass a CRC-16
    /// once in 65 536 frames), whatever else in it is damaged.
    pub fn checksums_seen(&self) -> bool {
        self.crc_seen
    }

    /// Offset of the next byte [`push`](Self::push) will read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Consumes bytes from `input` up to and including the next frame
    /// delimiter. Returns how many bytes were consumed and, when a delimiter
    /// closed a frame, what it held. Call it again with the rest of the input.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<FrameEvent<'_>>) {
        let (take, closed) = match find_delimiter(input) {
            Some(i) => (i, true),
            None => (input.len(), false),
        };
        let room = self.buf.len() - self.fill;
        let copy = take.min(room);
        self.buf[self.fill..self.fill + copy].copy_from_slice(&input[..copy]);
        self.fill += copy;
        self.frame_len += take as u64;
        let consumed = take + usize::from(closed);
        let start = self.offset + take as u64 - self.frame_len;
        self.offset += consumed as u64;
        if !closed {
            return (consumed, None);
        }
        let len = self.frame_len;
        let fill = self.fill;
        self.fill = 0;
        self.frame_len = 0;
        let need_crc = self.sticky && self.crc_seen;
        let mut checked = false;
        let ev = Self::close(&mut self.buf[..fill], start, len, need_crc, &mut checked);
        self.crc_seen |= checked;
        (consumed, ev)
    }

    /// Ends the input: bytes after the last delimiter are a truncated frame.
    pub fn finish(&mut self) -> Option<FrameEvent<'static>> {
        let len = self.frame_len;
        self.fill = 0;
        self.frame_len = 0;
        (len > 0).then(|| FrameEvent::Damaged {
            offset: self.offset - len,
            len,
            reason: Damage::Truncated,
        })
    }

    /// `need_crc`: a frame without a CRC is damage. Sets `checked` when the
    /// frame was intact and carried a CRC.
    fn close<'a>(
        buf: &'a mut [u8],
        offset: u64,
        len: u64,
        need_crc: bool,
        checked: &mut bool,
    ) -> Option<FrameEvent<'a>> {
        if len == 0 {
            // Back-to-back delimiters separate nothing; writers may pad with them.
            return None;
        }
        let damaged = |reason| {
            Some(FrameEvent::Damaged {
                offset,
                len,
                reason,
            })
        };
        if len > buf.len() as u64 {
            return damaged(Damage::TooLong);
        }
        let Some(n) = cobs_decode::in_place(buf) else {
            return damaged(Damage::Cobs);
        };
        let payload = &buf[..n];
        let Ok((head, head_len)) = varint::read_u64(payload) else {
            return damaged(Damage::Head);
        };
        let Ok(stream) = u32::try_from(head >> 1) else {
            return damaged(Damage::Head);
        };
        let records = if head & 1 == 1 {
            if payload.len() < head_len + 2 {
                return damaged(Damage::Checksum);
            }
            let (body, crc) = payload.split_at(payload.len() - 2);
            if Crc16::checksum(body).to_le_bytes() != crc {
                return damaged(Damage::Checksum);
            }
            *checked = true;
            &body[head_len..]
        } else if need_crc {
            return damaged(Damage::Checksum);
        } else {
            &payload[head_len..]
        };
        Some(FrameEvent::Frame {
            stream,
            records,
            offset,
        })
    }
}

/// Index of the first 0x00 in `input`: memchr's vector search on hosts
/// (`fast-frames`), a byte loop on a microcontroller.
#[inline]
fn find_delimiter(input: &[u8]) -> Option<usize> {
    #[cfg(feature = "fast-frames")]
    {
        memchr::memchr(0, input)
    }
    #[cfg(not(feature = "fast-frames"))]
    {
        input.iter().position(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    /// A frame's stream and records (None: damaged), its offset, and the
    /// damaged length (0 for a frame).
    type Found = (Option<(u32, Vec<u8>)>, u64, u64);

    fn frames(input: &[u8], buf_len: usize) -> Vec<Found> {
        let mut buf = std::vec![0u8; buf_len];
        let mut d = Deframer::new(&mut buf);
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (n, ev) = d.push(rest);
            rest = &rest[n..];
            match ev {
                Some(FrameEvent::Frame {
                    stream,
                    records,
                    offset,
                }) => out.push((Some((stream, records.to_vec())), offset, 0)),
                Some(FrameEvent::Damaged { offset, len, .. }) => out.push((None, offset, len)),
                None => {}
            }
        }
        if let Some(FrameEvent::Damaged { offset, len, .. }) = d.finish() {
            out.push((None, offset, len));
        }
        out
    }

    #[test]
    fn round_trip_checked_and_unchecked() {
        let mut wire = Vec::new();
        for (stream, checked, body) in [
            (0u32, false, &b"\x01\x00\x02"[..]),
            (7, true, b"abc"),
            (3, true, b""),
        ] {
            let mut out = [0u8; 64];
            let n = encode_frame(stream, checked, &[body], &mut out).unwrap();
            assert_eq!(out[n - 1], 0);
            assert!(!out[..n - 1].contains(&0));
            wire.extend_from_slice(&out[..n]);
        }
        let got = frames(&wire, 64);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, Some((0, b"\x01\x00\x02".to_vec())));
        assert_eq!(got[1].0, Some((7, b"abc".to_vec())));
        assert_eq!(got[2].0, Some((3, Vec::new())));
        assert_eq!(got[1].1, 6);
    }

    #[test]
    fn checksum_catches_a_flipped_bit() {
        let mut out = [0u8; 64];
        let n = encode_frame(1, true, &[b"hello world"], &mut out).unwrap();
        out[5] ^= 0x10;
        let got = frames(&out[..n], 64);
        assert_eq!(got, std::vec![(None, 0, (n - 1) as u64)]);
    }

    #[test]
    fn oversized_frame_is_skipped_and_the_next_kept() {
        let mut wire = std::vec![0x05u8; 100];
        wire.push(0);
        let mut out = [0u8; 32];
        let n = encode_frame(2, false, &[b"ok"], &mut out).unwrap();
        wire.extend_from_slice(&out[..n]);
        let got = frames(&wire, 16);
        assert_eq!(got[0], (None, 0, 100));
        assert_eq!(got[1], (Some((2, b"ok".to_vec())), 101, 0));
    }

    #[test]
    fn truncated_tail_is_reported() {
        let mut out = [0u8; 32];
        let n = encode_frame(2, false, &[b"abcdef"], &mut out).unwrap();
        let got = frames(&out[..n - 3], 32);
        assert_eq!(got, std::vec![(None, 0, (n - 3) as u64)]);
    }

    #[test]
    fn sticky_checksums_refuse_a_frame_whose_checked_bit_was_cleared() {
        let mut wire = Vec::new();
        for _ in 0..2 {
            let mut out = [0u8; 64];
            let n = encode_frame(3, true, &[b"\x05\x01\x02"], &mut out).unwrap();
            wire.extend_from_slice(&out[..n]);
        }
        let second = wire.iter().position(|&b| b == 0).unwrap() + 1;
        // The head 3 << 1 | 1 = 7 sits after the COBS code byte: clear bit 0.
        wire[second + 1] ^= 1;
        let mut buf = [0u8; 64];
        let mut d = Deframer::new(&mut buf).sticky_checksums();
        let (n, ev) = d.push(&wire);
        assert!(matches!(ev, Some(FrameEvent::Frame { stream: 3, .. })));
        let (_, ev) = d.push(&wire[n..]);
        assert_eq!(
            ev,
            Some(FrameEvent::Damaged {
                offset: second as u64,
                len: (wire.len() - second - 1) as u64,
                reason: Damage::Checksum
            })
        );
        // Without the option the flipped frame passes, unverified, with its
        // CRC bytes read as records.
        let got = frames(&wire, 64);
        assert_eq!(got[1].0.as_ref().map(|f| f.1.len()), Some(5));
    }

    #[test]
    fn frame_numbers_round_trip_and_leave_other_records_alone() {
        for seq in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = [0u8; MAX_SEQ_LEN];
            let n = encode_seq(seq, &mut b);
            let mut rec = b[..n].to_vec();
            rec.extend_from_slice(b"\x06\x02");
            assert_eq!(split_seq(&rec), (Some(seq), &b"\x06\x02"[..]), "{seq}");
            // What any reader sees: an extension record of kind 11, skipped whole.
            let mut delta = crate::wire::Delta::default();
            let (r, used) = crate::wire::Record::decode(&rec, &mut delta).unwrap();
            assert_eq!(used, n);
            assert!(matches!(
                r,
                crate::wire::Record::Unknown { kind: SEQ_KIND, .. }
            ));
        }
        let mut b = [0u8; MAX_SEQ_LEN];
        assert_eq!(encode_seq(5, &mut b), 4);
        assert_eq!(&b[..4], &[0x00, 0x0b, 0x01, 0x05]);
        // Not a frame number: another extension kind, a bad varint, too short.
        for rec in [
            &b"\x00\x09\x01\x05"[..],
            b"\x00\x0b\x01\x85",
            b"\x00\x0b\x02\x05",
            b"\x00\x0b",
            b"",
        ] {
            assert_eq!(split_seq(rec), (None, rec));
        }
        // A longer body (a later version's fields) still gives the number.
        assert_eq!(
            split_seq(b"\x00\x0b\x03\x05\x07\x07\x01"),
            (Some(5), &b"\x01"[..])
        );
    }

    #[test]
    fn output_too_small_is_an_error() {
        let mut out = [0u8; 4];
        assert_eq!(
            encode_frame(0, true, &[b"abcdef"], &mut out),
            Err(FrameTooLarge)
        );
    }
}
