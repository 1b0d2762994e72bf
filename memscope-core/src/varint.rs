//! Variable-length integers, byte-for-byte identical to postcard's.
//!
//! Unsigned values are LEB128 (7 bits a byte, least significant group first,
//! high bit set on every byte but the last); signed values are zigzag-mapped
//! first (`0, -1, 1, -2 …` → `0, 1, 2, 3 …`). The hot record path writes these
//! by hand because its fields depend on tag bits; the tests check every value
//! against postcard's own serializer so the two can never drift apart.

/// The most bytes a `u64` varint takes.
pub const MAX_U64: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than ten bytes, or bits above the 64th set.
    Overflow,
}

/// Maps a signed value onto an unsigned one so that small magnitudes stay small.
#[inline]
pub const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Number of bytes [`write_u64`] uses for `v`.
#[inline]
pub const fn len_u64(v: u64) -> usize {
    // 64 - lz bits of payload, 7 per byte, at least one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `v` at the start of `out` and returns the bytes used, or `None` when
/// `out` is too short (nothing meaningful is written then).
#[inline]
pub fn write_u64(out: &mut [u8], mut v: u64) -> Option<usize> {
    let mut i = 0;
    loop {
        let byte = out.get_mut(i)?;
        if v < 0x80 {
            *byte = v as u8;
            return Some(i + 1);
        }
        *byte = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
}

/// Reads an unsigned varint from the start of `input`; returns it and the bytes used.
#[inline]
pub fn read_u64(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v: u64 = 0;
    for (i, &b) in input.iter().enumerate() {
        if i == MAX_U64 - 1 && b > 1 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
        if i + 1 == MAX_U64 {
            return Err(VarintError::Overflow);
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Few cases under Miri (slow), and no failure files (Miri's isolation
        // forbids the file system; a failing seed is printed instead).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn unsigned_matches_postcard(v: u64) {
            let mut ours = [0u8; MAX_U64];
            let n = write_u64(&mut ours, v).unwrap();
            let mut theirs = [0u8; 16];
            let theirs = postcard::to_slice(&v, &mut theirs).unwrap();
            prop_assert_eq!(&ours[..n], &theirs[..]);
            prop_assert_eq!(n, len_u64(v));
            prop_assert_eq!(read_u64(&ours[..n]), Ok((v, n)));
        }

        #[test]
        fn signed_matches_postcard(v: i64) {
            let mut ours = [0u8; MAX_U64];
            let n = write_u64(&mut ours, zigzag(v)).unwrap();
            let mut theirs = [0u8; 16];
            let theirs = postcard::to_slice(&v, &mut theirs).unwrap();
            prop_assert_eq!(&ours[..n], &theirs[..]);
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }

        #[test]
        fn truncation_is_reported(v in 128u64.., cut in 0usize..9) {
            let mut buf = [0u8; MAX_U64];
            let n = write_u64(&mut buf, v).unwrap();
            let cut = cut.min(n - 1);
            prop_assert_eq!(read_u64(&buf[..cut]), Err(VarintError::Truncated));
        }
    }

    #[test]
    fn overlong_input_is_an_overflow() {
        assert_eq!(read_u64(&[0xff; 11]), Err(VarintError::Overflow));
        // Ten bytes whose last carries more than the 64th bit.
        let mut b = [0xffu8; 10];
        b[9] = 0x02;
        assert_eq!(read_u64(&b), Err(VarintError::Overflow));
        b[9] = 0x01;
        assert_eq!(read_u64(&b), Ok((u64::MAX, 10)));
    }

    #[test]
    fn short_output_is_refused() {
        let mut b = [0u8; 1];
        assert_eq!(write_u64(&mut b, 300), None);
        assert_eq!(write_u64(&mut b, 5), Some(1));
    }
}
