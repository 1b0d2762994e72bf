//! The writer thread's frame encoder: the bytes of
//! [`memscope_core::frame::encode_frame`], produced several times faster.
//!
//! The writer frames every byte the program's threads record, so on a busy
//! program it spends most of its time here. memscope-core's encoder is built
//! for microcontrollers (byte-at-a-time COBS, a 256-entry CRC table); this one
//! trades memory for speed on a desktop: a slicing-by-16 CRC table (8 KiB) and
//! a COBS loop that finds each run between zero bytes eight bytes at a time
//! and copies it whole. The output
//! is byte-identical (docs/FORMAT.md's frame), which the tests check against
//! memscope-core's encoder on random and adversarial payloads.

use memscope_core::frame::{encode_seq, max_frame_len, MAX_HEAD_LEN, MAX_SEQ_LEN};
use std::collections::HashMap;

/// CRC-16/IBM-SDLC, as memscope-core's frames use, 16 bytes a step.
const CRC16: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_IBM_SDLC);

/// Output bytes needed to frame `payload` bytes of records, frame number
/// included.
pub(crate) const fn out_len(payload: usize) -> usize {
    max_frame_len(MAX_HEAD_LEN + MAX_SEQ_LEN + payload + 2)
}

/// Numbers the frames of every stream (docs/FORMAT.md, "Frame numbers"): the
/// first record of each frame is its number in its stream, from 0, so that a
/// reader can say which frame of which stream is missing, repeated or out of
/// order. The numbers live here, in the writer, because the writer is the one
/// place frames are made, in the order they reach the file.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    /// Next frame number of each open stream.
    next: HashMap<u32, u64>,
}

impl Numbering {
    /// Encodes the next frame of `stream` (see [`encode_checked`]): its
    /// number, then `parts`. The number is used up only if the frame fit.
    pub(crate) fn encode(&mut self, stream: u32, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
        let next = self.next.entry(stream).or_insert(0);
        let mut seq = [0u8; MAX_SEQ_LEN];
        let n = encode_seq(*next, &mut seq);
        let n = match parts {
            [] => encode_checked(stream, &[&seq[..n]], out),
            [a] => encode_checked(stream, &[&seq[..n], a], out),
            [a, b] => encode_checked(stream, &[&seq[..n], a, b], out),
            _ => {
                let mut all = Vec::with_capacity(parts.len() + 1);
                all.push(&seq[..n]);
                all.extend_from_slice(parts);
                encode_checked(stream, &all, out)
            }
        }?;
        *next += 1;
        Some(n)
    }

    /// `stream` wrote its End record and gets no more frames: its counter
    /// goes (a program that starts a million threads keeps no million counters).
    pub(crate) fn close(&mut self, stream: u32) {
        self.next.remove(&stream);
    }
}

/// Encodes one checked frame of stream `stream` whose records are the
/// concatenation of `parts` into `out`, delimiter included. Returns the bytes
/// written, or `None` when `out` is shorter than the frame may take.
pub(crate) fn encode_checked(stream: u32, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    if out.len() < max_frame_len(MAX_HEAD_LEN + payload + 2) {
        return None;
    }
    let mut head = [0u8; MAX_HEAD_LEN];
    let head = varint(&mut head, (u64::from(stream) << 1) | 1);
    let mut digest = CRC16.digest();
    digest.update(head);
    for p in parts {
        digest.update(p);
    }
    let crc = digest.finalize().to_le_bytes();
    let mut cobs = Cobs::new(out);
    cobs.push(head);
    for p in parts {
        cobs.push(p);
    }
    cobs.push(&crc);
    let n = cobs.finish();
    out[n] = 0;
    Some(n + 1)
}

fn varint(buf: &mut [u8; MAX_HEAD_LEN], mut v: u64) -> &[u8] {
    let mut n = 0;
    while v >= 0x80 && n < MAX_HEAD_LEN - 1 {
        buf[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    &buf[..=n]
}

/// Index of the first zero byte of `b` (`b.len()` when none), eight bytes
/// at a time.
#[inline]
fn first_zero(b: &[u8]) -> usize {
    let mut j = 0;
    while let Some(chunk) = b[j..].first_chunk::<8>() {
        let x = u64::from_le_bytes(*chunk);
        // The lowest 0x80 bit marks the first zero byte exactly (borrows
        // only produce false marks above a true zero).
        let zeros = x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
        if zeros != 0 {
            return j + (zeros.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    j + b[j..].iter().position(|&x| x == 0).unwrap_or(b.len() - j)
}

/// COBS, matching the `cobs` crate's encoder exactly, including its one
/// special case: a message whose last block is a full 254-byte run ends
/// without the `0x01` code byte other encoders append.
struct Cobs<'o> {
    out: &'o mut [u8],
    /// Where the current block's code byte goes.
    code_at: usize,
    /// Next byte to write.
    w: usize,
    /// 1 + bytes in the current block.
    code: u8,
    /// The last byte pushed closed a full block (code 0xFF).
    full_closed: bool,
}

impl<'o> Cobs<'o> {
    /// `out` must hold the encoding (checked by the caller).
    fn new(out: &'o mut [u8]) -> Self {
        Cobs {
            out,
            code_at: 0,
            w: 1,
            code: 1,
            full_closed: false,
        }
    }

    #[inline]
    fn close_block(&mut self) {
        self.out[self.code_at] = self.code;
        self.code_at = self.w;
        self.w += 1;
        self.code = 1;
    }

    fn push(&mut self, data: &[u8]) {
        // Records hold few zero bytes (a varint ends in a nonzero byte unless
        // it is 0), so blocks are long: find where the current one ends (a
        // zero, or the block's 254-byte limit) and copy the run in one go.
        let mut i = 0;
        while i < data.len() {
            // At least 1: a block is closed as soon as it is full.
            let room = usize::from(0xFF - self.code);
            let run = &data[i..i + room.min(data.len() - i)];
            let k = first_zero(run);
            self.out[self.w..self.w + k].copy_from_slice(&run[..k]);
            self.w += k;
            self.code += k as u8;
            i += k;
            if k > 0 {
                self.full_closed = false;
            }
            if self.code == 0xFF {
                self.close_block();
                self.full_closed = true;
            } else if k < run.len() {
                // data[i] is a zero: it ends the block.
                self.close_block();
                self.full_closed = false;
                i += 1;
            }
        }
    }

    /// Writes the last code byte; returns the encoded length (no delimiter).
    fn finish(self) -> usize {
        if self.full_closed {
            // The `cobs` crate ends right after a full block.
            return self.code_at;
        }
        self.out[self.code_at] = self.code;
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memscope_core::frame::encode_frame;

    fn reference(stream: u32, parts: &[&[u8]]) -> Vec<u8> {
        let payload: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = vec![0; max_frame_len(MAX_HEAD_LEN + payload + 2)];
        let n = encode_frame(stream, true, parts, &mut out).expect("fits");
        out.truncate(n);
        out
    }

    fn ours(stream: u32, parts: &[&[u8]]) -> Vec<u8> {
        let payload: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = vec![0xAA; out_len(payload)];
        let n = encode_checked(stream, parts, &mut out).expect("fits");
        out.truncate(n);
        out
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn identical_to_memscope_core_on_random_payloads() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let len = (rng.next() % 1200) as usize;
            // Vary the zero density: none, rare, frequent.
            let density = [0u64, 3, 40, 200][round % 4];
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if density > 0 && r % 256 < density {
                        0
                    } else {
                        (r >> 8) as u8 | 1
                    }
                })
                .collect();
            let cut = if len == 0 {
                0
            } else {
                (rng.next() as usize) % len
            };
            let stream = (rng.next() % 5000) as u32;
            let (a, b) = data.split_at(cut);
            assert_eq!(
                ours(stream, &[a, b]),
                reference(stream, &[a, b]),
                "round {round}"
            );
            assert_eq!(ours(stream, &[&data]), reference(stream, &[&data]));
        }
    }

    #[test]
    fn identical_at_full_block_boundaries() {
        // Runs of 250..260 nonzero bytes around every position, so that the
        // 254-byte block limit falls on the head, the records' end and the CRC.
        for run in 240..=520 {
            for stream in [0u32, 1, 63, 64, 100_000] {
                let mut data = vec![0x5Au8; run];
                assert_eq!(ours(stream, &[&data]), reference(stream, &[&data]), "{run}");
                data.push(0);
                assert_eq!(
                    ours(stream, &[&data]),
                    reference(stream, &[&data]),
                    "{run}+0"
                );
                let (a, b) = data.split_at(run / 2);
                assert_eq!(ours(stream, &[a, b]), reference(stream, &[a, b]));
            }
        }
        assert_eq!(ours(3, &[]), reference(3, &[]));
        assert_eq!(ours(3, &[&[0, 0, 0]]), reference(3, &[&[0, 0, 0]]));
    }

    #[test]
    fn frames_are_numbered_per_stream_from_zero() {
        let mut numbering = Numbering::default();
        let mut wire = Vec::new();
        for (stream, rec) in [(1u32, &b"\x06\x01"[..]), (2, b"\x06\x02"), (1, b"\x06\x03")] {
            let mut out = vec![0u8; out_len(rec.len())];
            let n = numbering.encode(stream, &[rec], &mut out).expect("fits");
            wire.extend_from_slice(&out[..n]);
        }
        numbering.close(1);
        let mut out = vec![0u8; out_len(2)];
        let n = numbering.encode(1, &[b"\x06\x04"], &mut out).expect("fits");
        wire.extend_from_slice(&out[..n]);
        let mut buf = vec![0u8; 256];
        let mut d = memscope_core::frame::Deframer::new(&mut buf);
        let mut got = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let (n, ev) = d.push(rest);
            rest = &rest[n..];
            if let Some(memscope_core::frame::FrameEvent::Frame {
                stream, records, ..
            }) = ev
            {
                let (seq, recs) = memscope_core::frame::split_seq(records);
                got.push((stream, seq, recs.to_vec()));
            }
        }
        assert_eq!(
            got,
            vec![
                (1, Some(0), b"\x06\x01".to_vec()),
                (2, Some(0), b"\x06\x02".to_vec()),
                (1, Some(1), b"\x06\x03".to_vec()),
                // After `close` a stream id would count from 0 again; the
                // writer closes a stream after its End and never reuses its id.
                (1, Some(0), b"\x06\x04".to_vec()),
            ]
        );
        // A frame that does not fit uses no number.
        let mut tiny = [0u8; 4];
        assert_eq!(numbering.encode(2, &[b"\x06\x05"], &mut tiny), None);
        let mut out = vec![0u8; out_len(2)];
        let n = numbering.encode(2, &[b"\x06\x05"], &mut out).unwrap();
        let mut buf = vec![0u8; 256];
        let mut d = memscope_core::frame::Deframer::new(&mut buf);
        let Some(memscope_core::frame::FrameEvent::Frame { records, .. }) = d.push(&out[..n]).1
        else {
            panic!("a frame");
        };
        assert_eq!(memscope_core::frame::split_seq(records).0, Some(1));
    }

    #[test]
    fn short_output_is_refused() {
        let mut out = [0u8; 8];
        assert_eq!(encode_checked(1, &[&[1, 2, 3]], &mut out), None);
    }
}
