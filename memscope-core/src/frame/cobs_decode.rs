//! COBS decoding in place, a block at a time.
//!
//! The [`Deframer`](super::Deframer) cuts its input at each 0x00, so the bytes
//! of a frame hold no zero: decoding is walking the chain of code bytes and
//! moving each block's bytes down over the code bytes before it, one
//! `copy_within` (a `memmove`) per block instead of a loop per byte. Blocks
//! of a memscope trace average tens of bytes, so this costs a fraction of a
//! byte loop (the `cobs` crate's `decode_in_place`, whose results it
//! reproduces exactly; the tests compare the two).

/// Decodes the COBS bytes in `buf` (no delimiter) in place; returns the
/// decoded length, or `None` when `buf` is not valid COBS: empty, or a code
/// byte that points past its end. A zero byte, which the deframer never
/// leaves in a frame, is invalid as a code byte.
pub(super) fn in_place(buf: &mut [u8]) -> Option<usize> {
    if buf.is_empty() {
        return None;
    }
    let end = buf.len();
    let mut src = 0;
    let mut dst = 0;
    // `dst <= src` throughout: a block moves down by the code bytes before it.
    while src < end {
        let code = usize::from(buf[src]);
        let next = src + code;
        if code == 0 || next > end {
            return None;
        }
        buf.copy_within(src + 1..next, dst);
        dst += code - 1;
        src = next;
        // A block ends in a zero unless it is full (code 0xFF) or the last.
        if code != 0xFF && src < end {
            buf[dst] = 0;
            dst += 1;
        }
    }
    Some(dst)
}

#[cfg(test)]
mod tests {
    use super::in_place;
    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The `cobs` crate's answer on the same bytes.
    fn reference(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut b = bytes.to_vec();
        let n = cobs::decode_in_place(&mut b).ok()?;
        b.truncate(n);
        Some(b)
    }

    fn ours(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut b = bytes.to_vec();
        let n = in_place(&mut b)?;
        b.truncate(n);
        Some(b)
    }

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; data.len() + data.len() / 254 + 2];
        let n = cobs::encode(data, &mut out);
        out.truncate(n);
        out
    }

    proptest! {
        // Few cases under Miri (slow), and no failure files (Miri's isolation
        // forbids the file system; a failing seed is printed instead).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 500 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Encoded payloads (zeros rare, frequent, or in runs past a full
        /// block) decode to themselves, as the crate decodes them.
        #[test]
        fn round_trips_like_the_cobs_crate(
            data in prop::collection::vec(
                prop_oneof![4 => 1u8..=255, 1 => Just(0u8)], 0..if cfg!(miri) { 300 } else { 1200 }),
        ) {
            let wire = encode(&data);
            prop_assert_eq!(ours(&wire), Some(data.clone()));
            prop_assert_eq!(ours(&wire), reference(&wire));
        }

        /// Arbitrary zero-free bytes (what a damaged frame holds): valid or
        /// not exactly when the crate says so, with the same bytes.
        #[test]
        fn damaged_frames_match_the_cobs_crate(
            bytes in prop::collection::vec(1u8..=255, 0..if cfg!(miri) { 300 } else { 700 }),
        ) {
            prop_assert_eq!(ours(&bytes), reference(&bytes));
        }

        /// A valid frame with a code byte changed or the tail cut.
        #[test]
        fn edited_frames_match_the_cobs_crate(
            data in prop::collection::vec(
                prop_oneof![8 => 1u8..=255, 1 => Just(0u8)], 1..if cfg!(miri) { 300 } else { 900 }),
            at in any::<prop::sample::Index>(),
            to in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = encode(&data);
            let i = at.index(wire.len());
            wire[i] = to;
            prop_assert_eq!(ours(&wire), reference(&wire));
            let c = cut.index(wire.len());
            prop_assert_eq!(ours(&wire[..c]), reference(&wire[..c]));
        }
    }

    #[test]
    fn full_blocks_and_edges() {
        for len in [0usize, 1, 253, 254, 255, 507, 508, 509, 1000] {
            for fill in [0x5Au8, 0] {
                let data = std::vec![fill; len];
                let wire = encode(&data);
                assert_eq!(ours(&wire), Some(data.clone()), "{len} x {fill:#x}");
            }
        }
        assert_eq!(ours(&[]), None);
        assert_eq!(ours(&[0]), None);
        assert_eq!(ours(&[3, 1]), None);
        assert_eq!(ours(&[1]), Some(Vec::new()));
        assert_eq!(ours(&[0xFF]), reference(&[0xFF]));
    }
}
