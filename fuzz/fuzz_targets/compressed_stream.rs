//! memscope-decode's zstd reader (host-decoder/src/source/compressed.rs) on
//! compressed traces cut short, damaged, or made of arbitrary bytes.
//!
//! Input: a control byte, two bytes of position (little-endian), then data.
//! Control bits 0-1 pick the mode:
//! - 0: the data compressed as memscope-std's writer does (a zstd flush every
//!   `64 * (1 + bits 2-7)` bytes, a checksum per frame): it must come back
//!   exactly, with no fault;
//! - 1: the same, cut at `position` (modulo its length): what comes back must
//!   be a prefix of the data, with at most one fault, a `Truncated` at the cut;
//! - 2: the same, one byte at `position` flipped: anything may come back, but
//!   every fault names offsets inside the input, and nothing panics;
//! - 3: the zstd magic number followed by the data itself as compressed
//!   bytes: arbitrary input to libzstd through the reader.
//!
//! Reads go through the reader in odd-sized pieces, so that its partial
//! output and refills are exercised. Besides "never panics", the modes check
//! what each promises above.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memscope_decode::source::compressed::{self, Fault, Zstd};
use std::io::{Cursor, Read, Write};

fuzz_target!(|input: &[u8]| {
    let [ctl, p0, p1, data @ ..] = input else {
        return;
    };
    let position = usize::from(u16::from_le_bytes([*p0, *p1]));
    let flush_every = 64 * (1 + usize::from(ctl >> 2));
    let file = match ctl & 3 {
        3 => {
            let mut f = compressed::ZSTD_MAGIC.to_vec();
            f.extend_from_slice(data);
            f
        }
        _ => compress(data, flush_every),
    };
    let file = match ctl & 3 {
        1 => file[..position % (file.len() + 1)].to_vec(),
        2 => {
            let mut f = file;
            let at = position % f.len();
            f[at] ^= 0xFF;
            f
        }
        _ => file,
    };
    let len = file.len() as u64;
    let mut r = Zstd::new("fuzz", Vec::new(), Box::new(Cursor::new(file)))
        .expect("a decoder")
        .quiet();
    let mut out = Vec::new();
    let mut piece = vec![0u8; 1 + position % 4099];
    loop {
        match r.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&piece[..n]),
            Err(e) => panic!("faults are not I/O errors: {e}"),
        }
    }
    let faults = r.faults();
    assert!(faults.len() <= 16, "faults past 16 are counted, not kept");
    for f in faults {
        let _ = f.message("fuzz");
        match *f {
            Fault::Truncated { at } => assert!(at <= len),
            Fault::Damaged {
                from, to, resumed, ..
            }
            | Fault::Checksum { from, to, resumed } => {
                assert!(from <= to && from <= len, "{f:?}");
                assert!(resumed.is_none_or(|r| r < len), "{f:?}");
            }
        }
    }
    match ctl & 3 {
        0 => {
            assert!(faults.is_empty(), "{faults:?}");
            assert_eq!(out, data, "round trip");
        }
        1 => {
            assert!(data.starts_with(&out), "a cut yields a prefix");
            assert!(
                matches!(faults, [] | [Fault::Truncated { .. }]),
                "{faults:?}"
            );
        }
        _ => {}
    }
});

/// As memscope-std's writer compresses: level 1, a checksum per frame, a
/// flush after every `every` bytes.
fn compress(data: &[u8], every: usize) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("an encoder");
    e.include_checksum(true).expect("checksum flag");
    for piece in data.chunks(every) {
        e.write_all(piece).expect("to memory");
        e.flush().expect("to memory");
    }
    e.finish().expect("to memory")
}
