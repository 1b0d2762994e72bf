//! memscope-core's reader on arbitrary bytes: the streaming [`Deframer`] fed
//! in chunks, every frame's records through [`StreamBase`] and through
//! [`Record::decode`] directly.
//!
//! Besides "never panics", it checks what a reader relies on:
//! - the deframer consumes input, and the offsets it reports are in order and
//!   inside the input;
//! - `StreamBase::records` yields the same records as decoding by hand;
//! - every record that decodes re-encodes (`Record::encode`, against the same
//!   base) to bytes that decode to the same record and the same next base:
//!   encoder and decoder agree on everything the decoder accepts;
//! - every frame and damaged span is what a reference reader finds: the
//!   input cut at each 0x00, each piece decoded by the `cobs` crate and
//!   checked by the `crc` crate (the deframer's own COBS decoding, CRC and
//!   delimiter search are faster rewrites of exactly that);
//! - a frame written by `encode_frame` comes back from the deframer intact;
//! - `split_seq` takes a frame number off only as a whole record: what it
//!   leaves is a suffix of the records, and the number re-encodes
//!   (`encode_seq`) to a record that splits the same way.
//!
//! Input: one control byte (chunk size, deframer buffer size, frame
//! round-trip on/off), then the byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memscope_core::frame::{
    encode_frame, encode_seq, max_frame_len, split_seq, Damage, Deframer, FrameEvent, MAX_HEAD_LEN,
    MAX_SEQ_LEN,
};
use memscope_core::wire::{EncodeError, Record, StreamBase};

const STREAMS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    // Small chunks exercise frames split across pushes; a small buffer the
    // "too long" path.
    let chunk = match ctl & 0x3f {
        0 => input.len().max(1),
        n => usize::from(n),
    };
    let buf_len = if ctl & 0x40 != 0 { 48 } else { 4096 };
    let mut buf = vec![0u8; buf_len];
    let mut deframer = Deframer::new(&mut buf);
    let mut bases = [StreamBase::new(); STREAMS];
    let mut next_free = 0u64; // no frame or damage may start before this
    let mut seen: Vec<Found> = Vec::new();
    for piece in input.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, ev) = deframer.push(rest);
            assert!(
                n > 0 && n <= rest.len(),
                "push consumed {n} of {}",
                rest.len()
            );
            rest = &rest[n..];
            match ev {
                Some(FrameEvent::Frame {
                    stream,
                    records,
                    offset,
                }) => {
                    assert!(offset >= next_free, "frame at {offset} before {next_free}");
                    assert!(offset < input.len() as u64);
                    next_free = offset + 1;
                    seen.push(Found::Frame(stream, records.to_vec(), offset));
                    let records = check_frame_number(records);
                    check_records(&mut bases[stream as usize % STREAMS], records);
                }
                Some(FrameEvent::Damaged {
                    offset,
                    len,
                    reason,
                }) => {
                    assert!(offset >= next_free, "damage at {offset} before {next_free}");
                    assert!(offset + len <= input.len() as u64);
                    next_free = offset + len;
                    seen.push(Found::Damaged(offset, len, reason));
                    bases.iter_mut().for_each(StreamBase::desync);
                }
                None => {}
            }
        }
    }
    assert_eq!(deframer.offset(), input.len() as u64);
    if let Some(FrameEvent::Damaged {
        offset,
        len,
        reason,
    }) = deframer.finish()
    {
        assert_eq!(offset + len, input.len() as u64);
        seen.push(Found::Damaged(offset, len, reason));
    }
    assert_eq!(
        seen,
        reference(input, buf_len),
        "deframer vs reference reader"
    );
    if ctl & 0x80 != 0 {
        frame_round_trip(input);
    }
});

/// Takes the frame number off (as memscope-decode does) and checks it.
fn check_frame_number(records: &[u8]) -> &[u8] {
    let (seq, rest) = split_seq(records);
    assert!(records.ends_with(rest), "split_seq left something else");
    match seq {
        None => assert_eq!(rest.len(), records.len()),
        Some(n) => {
            assert!(rest.len() < records.len());
            let mut b = [0u8; MAX_SEQ_LEN];
            let k = encode_seq(n, &mut b);
            let mut again = b[..k].to_vec();
            again.extend_from_slice(rest);
            assert_eq!(split_seq(&again), (Some(n), rest));
        }
    }
    rest
}

/// Decodes a frame's records two ways and re-encodes each record.
fn check_records(base: &mut StreamBase, records: &[u8]) {
    let mut by_hand = Vec::new();
    let mut out = vec![0u8; 1 << 15];
    let mut delta = base.delta;
    let mut rest = records;
    while !rest.is_empty() {
        let before = delta;
        let Ok((rec, used)) = Record::decode(rest, &mut delta) else {
            break;
        };
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        match rec.encode(before, &mut out) {
            Ok((n, next)) => {
                let mut again = before;
                let (back, used2) =
                    Record::decode(&out[..n], &mut again).expect("a re-encoded record decodes");
                assert_eq!(back, rec, "re-encoded record differs");
                assert_eq!(used2, n);
                assert_eq!(again, next, "encoder and decoder disagree on the next base");
                assert_eq!(again, delta, "re-encoding moved the base elsewhere");
            }
            // Unknown extension kinds and bodies over 16 KiB are not
            // written by this version; nothing else may fail.
            Err(EncodeError::Unrepresentable) => {}
            Err(EncodeError::NoSpace) => panic!("{rec:?} needs more than 32 KiB"),
        }
        by_hand.push(rec);
    }
    let mut i = 0;
    for r in base.records(records) {
        let Ok((rec, _resolved)) = r else { break };
        assert_eq!(
            Some(&rec),
            by_hand.get(i),
            "StreamBase and Record::decode differ"
        );
        i += 1;
    }
    assert_eq!(i, by_hand.len());
}

/// `input` as one frame's records (checked and not): the deframer returns them.
/// A frame (stream, records, offset) or a damaged span (offset, length, why).
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Frame(u32, Vec<u8>, u64),
    Damaged(u64, u64, Damage),
}

/// What the deframer (without sticky checksums) must find in `input`, the
/// slow way: cut at each 0x00, `cobs::decode_in_place`, the `crc` crate.
fn reference(input: &[u8], buf_len: usize) -> Vec<Found> {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
    let mut out = Vec::new();
    let mut start = 0;
    let mut pieces: Vec<(usize, &[u8], bool)> = Vec::new();
    for (i, &b) in input.iter().enumerate() {
        if b == 0 {
            pieces.push((start, &input[start..i], true));
            start = i + 1;
        }
    }
    if start < input.len() {
        pieces.push((start, &input[start..], false));
    }
    for (at, piece, closed) in pieces {
        let (at, len) = (at as u64, piece.len() as u64);
        if piece.is_empty() {
            continue;
        }
        if !closed {
            out.push(Found::Damaged(at, len, Damage::Truncated));
            continue;
        }
        if piece.len() > buf_len {
            out.push(Found::Damaged(at, len, Damage::TooLong));
            continue;
        }
        let mut payload = piece.to_vec();
        let Ok(n) = cobs::decode_in_place(&mut payload) else {
            out.push(Found::Damaged(at, len, Damage::Cobs));
            continue;
        };
        payload.truncate(n);
        let Ok((head, head_len)) = memscope_core::varint::read_u64(&payload) else {
            out.push(Found::Damaged(at, len, Damage::Head));
            continue;
        };
        let Ok(stream) = u32::try_from(head >> 1) else {
            out.push(Found::Damaged(at, len, Damage::Head));
            continue;
        };
        if head & 1 == 1 {
            if payload.len() < head_len + 2 {
                out.push(Found::Damaged(at, len, Damage::Checksum));
                continue;
            }
            let (body, crc) = payload.split_at(payload.len() - 2);
            if CRC.checksum(body).to_le_bytes() != crc {
                out.push(Found::Damaged(at, len, Damage::Checksum));
                continue;
            }
            out.push(Found::Frame(stream, body[head_len..].to_vec(), at));
        } else {
            out.push(Found::Frame(stream, payload[head_len..].to_vec(), at));
        }
    }
    out
}

fn frame_round_trip(input: &[u8]) {
    for checked in [false, true] {
        let stream = input.len() as u32;
        let mut wire = vec![0u8; max_frame_len(MAX_HEAD_LEN + input.len() + 2)];
        let n = encode_frame(stream, checked, &[input], &mut wire).expect("sized by max_frame_len");
        let mut buf = vec![0u8; n];
        let mut d = Deframer::new(&mut buf);
        let (used, ev) = d.push(&wire[..n]);
        assert_eq!(used, n);
        match ev {
            Some(FrameEvent::Frame {
                stream: s,
                records,
                offset,
            }) => {
                assert_eq!((s, records, offset), (stream, input, 0));
            }
            other => panic!("own frame not read back: {other:?}"),
        }
    }
}
