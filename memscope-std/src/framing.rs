//! The writer thread's frame encoder: the bytes of
//! [`memscope_core::frame::encode_frame`], produced several times faster.
//!
//! The writer frames every byte the program's threads record, so on a busy
//! program it spends most of its time here. memscope-core's encoder is built
//! for microcontrollers (byte-at-a-time COBS); this one uses memscope-core's
//! host CRC ([`Crc16`] with the `fast-frames` feature: carry-less
//! multiplication, 64 bytes a step) and a COBS loop that copies the input 64
//! bytes at a time and finds its zero bytes as one bit mask (SSE2, or AVX2
//! when the CPU has it). The output is byte-identical (docs/FORMAT.md's
//! frame), which the tests check against memscope-core's encoder on random
//! and adversarial payloads.

use memscope_core::frame::{encode_seq, max_frame_len, Crc16, MAX_HEAD_LEN, MAX_SEQ_LEN};
use std::collections::HashMap;

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
    let mut digest = Crc16::new();
    digest.update(head);
    for p in parts {
        digest.update(p);
    }
    let crc = digest.finish().to_le_bytes();
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

/// COBS, matching the `cobs` crate's encoder exactly, including its one
/// special case: a message whose last block is a full 254-byte run ends
/// without the `0x01` code byte other encoders append.
///
/// Below 254 bytes a block's data lands one byte after where it was in the
/// input, and each zero's place becomes the next block's code byte. So the
/// encoder copies the input 64 bytes at a time to where it belongs, finds
/// the zeros of those 64 bytes as one bit mask, and writes a code byte over
/// each; only a block that fills up (254 bytes without a zero) moves the
/// rest of the output one byte further.
struct Cobs<'o> {
    out: &'o mut [u8],
    /// Where the current block's code byte goes.
    code_at: usize,
    /// Where the next input byte goes.
    w: usize,
}

/// The input is copied and scanned this many bytes at a time.
const CHUNK: usize = 64;

/// Data bytes of a full block.
const FULL: usize = 254;

impl<'o> Cobs<'o> {
    /// `out` must hold the encoding (checked by the caller).
    fn new(out: &'o mut [u8]) -> Self {
        Cobs {
            out,
            code_at: 0,
            w: 1,
        }
    }

    fn push(&mut self, data: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (just detected), the one feature
            // `push_avx2` is built with.
            return unsafe { self.push_avx2(data) };
        }
        self.push_with(data, zero_mask);
    }

    /// [`push`](Self::push) with 32-byte vector moves and compares.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn push_avx2(&mut self, data: &[u8]) {
        self.push_with(data, |c| zero_mask_avx2(c));
    }

    /// Inlined into each caller, so that the copies and `mask` are compiled
    /// with the caller's vector instructions.
    #[inline(always)]
    fn push_with(&mut self, data: &[u8], mask: impl Fn(&[u8; CHUNK]) -> u64) {
        // Locals, not fields, in the loops: stores to `out` would otherwise
        // make the compiler write `code_at` back after every code byte.
        let out = &mut *self.out;
        let (mut code_at, mut w) = (self.code_at, self.w);
        let mut i = 0;
        while i < data.len() {
            // Data bytes the current block can still take.
            let room = FULL - (w - code_at - 1);
            if room == 0 {
                // A full block with a byte after it: close it (code 0xFF,
                // no zero consumed) and move on one byte.
                out[code_at] = 0xFF;
                code_at = w;
                w += 1;
                continue;
            }
            let rest = &data[i..];
            let (n, mut zeros) = match rest.first_chunk::<CHUNK>() {
                Some(chunk) => {
                    // The encoding is at least as long as every byte of the
                    // input at its place, so these 64 bytes fit in `out`.
                    out[w..w + CHUNK].copy_from_slice(chunk);
                    (CHUNK, mask(chunk))
                }
                None => {
                    let n = rest.len();
                    out[w..w + n].copy_from_slice(rest);
                    let mask = rest
                        .iter()
                        .enumerate()
                        .fold(0u64, |m, (k, &b)| m | (u64::from(b == 0) << k));
                    (n, mask)
                }
            };
            // A block that fills before its first zero ends at `room`: take
            // only that far (the bytes copied after it move one further).
            // After a zero the next block has room for far more than the
            // rest of the chunk.
            let take = if room < n && zeros.trailing_zeros() as usize >= room {
                zeros = 0;
                room
            } else {
                n
            };
            while zeros != 0 {
                let at = w + zeros.trailing_zeros() as usize;
                // The zero's place is the next block's code byte; the block
                // before it is `at - code_at - 1` data bytes long.
                out[code_at] = (at - code_at) as u8;
                code_at = at;
                zeros &= zeros - 1;
            }
            w += take;
            i += take;
        }
        self.code_at = code_at;
        self.w = w;
    }

    /// Writes the last code byte; returns the encoded length (no delimiter).
    fn finish(self) -> usize {
        // A last block of 254 bytes gets code 0xFF and nothing after it,
        // like the `cobs` crate's.
        self.out[self.code_at] = (self.w - self.code_at) as u8;
        self.w
    }
}

/// Bit `k` set where `chunk[k]` is zero.
#[inline]
fn zero_mask(chunk: &[u8; CHUNK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: `zero_mask_sse2` needs SSE2, which this target has
        // (`target_feature = "sse2"`: every x86_64 CPU does).
        unsafe { zero_mask_sse2(chunk) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        chunk
            .iter()
            .enumerate()
            .fold(0u64, |m, (k, &b)| m | (u64::from(b == 0) << k))
    }
}

/// [`zero_mask`] 32 bytes an instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn zero_mask_avx2(chunk: &[u8; CHUNK]) -> u64 {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_movemask_epi8, _mm256_set_epi64x, _mm256_setzero_si256,
    };
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&chunk[at..at + 8]);
        u64::from_le_bytes(b) as i64
    };
    let half = |at: usize| {
        let v = _mm256_set_epi64x(word(at + 24), word(at + 16), word(at + 8), word(at));
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())) as u32
    };
    u64::from(half(0)) | u64::from(half(32)) << 32
}

/// [`zero_mask`] 16 bytes an instruction.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn zero_mask_sse2(chunk: &[u8; CHUNK]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_setzero_si128};
    let mut mask = 0u64;
    for (q, part) in chunk.chunks_exact(16).enumerate() {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&part[at..at + 8]);
            u64::from_le_bytes(b) as i64
        };
        let v = _mm_set_epi64x(word(8), word(0));
        let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) as u16;
        mask |= u64::from(bits) << (16 * q);
    }
    mask
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

    /// COBS a byte at a time, as the `cobs` crate writes it (a last full
    /// block gets no code byte after it).
    fn naive_cobs(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        let (mut code_at, mut code, mut full_last) = (0, 1u8, false);
        for &b in data {
            full_last = false;
            if b != 0 {
                out.push(b);
                code += 1;
                if code < 0xFF {
                    continue;
                }
                full_last = true;
            }
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        }
        if full_last {
            out.pop();
        } else {
            out[code_at] = code;
        }
        out
    }

    /// The SSE2 (or portable) and AVX2 loops give the same bytes; the
    /// tests above run whichever the CPU selects.
    #[test]
    fn every_cobs_loop_agrees() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        // Under Miri (which checks the vector code's unsafe calls) a few
        // rounds that still cross full blocks.
        let (rounds, max_len) = if cfg!(miri) { (9, 700) } else { (400, 2000) };
        for round in 0..rounds {
            let len = (rng.next() % max_len) as usize;
            let density = [0u64, 2, 30][round % 3];
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
            let cap = max_frame_len(len);
            let mut a = vec![0u8; cap];
            let mut c = Cobs::new(&mut a);
            c.push_with(&data, zero_mask);
            let n = c.finish();
            let want = naive_cobs(&data);
            let m = want.len();
            assert_eq!(&a[..n], &want[..], "round {round}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut b = vec![0u8; cap];
                let mut c = Cobs::new(&mut b);
                // SAFETY: AVX2 detected just above.
                unsafe { c.push_avx2(&data) };
                let n = c.finish();
                assert_eq!(&b[..n], &want[..m], "avx2 round {round}");
            }
        }
    }

    #[test]
    fn short_output_is_refused() {
        let mut out = [0u8; 8];
        assert_eq!(encode_checked(1, &[&[1, 2, 3]], &mut out), None);
    }
}
