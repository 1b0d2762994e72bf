//! The frames' CRC-16/IBM-SDLC (the X.25 CRC), computed two ways.
//!
//! By default a 256-entry table (512 B of flash), one byte a step: what a
//! microcontroller, which checks its frames (if at all) a few bytes at a
//! time, wants. With the `fast-frames` feature (hosts: memscope-std's writer
//! and memscope-decode check every byte of a trace) long inputs are folded
//! 16 bytes a step by carry-less multiplication (x86_64 with PCLMULQDQ,
//! detected at run time), else 16 bytes a step through 16 tables (8 KiB).
//! All give the same checksum; the tests compare them on random inputs.

/// CRC-16/IBM-SDLC, one table. A static, reached only through the pointer
/// [`Crc16::new`] stores: an image that never starts a checksum (a
/// microcontroller's `Stream` writes unchecked frames) links no table.
static TABLE1: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

/// A running CRC-16/IBM-SDLC.
#[derive(Clone, Copy, Debug)]
pub struct Crc16 {
    /// The reflected register, before the final XOR.
    reg: u16,
    /// `TABLE1`'s table.
    table: &'static [u16; 256],
}

impl Default for Crc16 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc16 {
    /// An empty checksum.
    pub fn new() -> Self {
        Crc16 {
            // Initial value 0xFFFF (reflected, it stays 0xFFFF).
            reg: 0xFFFF,
            table: &TABLE1.table()[0],
        }
    }

    /// Adds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(feature = "fast-frames")]
        {
            self.reg = fast::update(self.table, self.reg, bytes);
        }
        #[cfg(not(feature = "fast-frames"))]
        {
            self.reg = update_table(self.table, self.reg, bytes);
        }
    }

    /// The checksum of the bytes added.
    pub fn finish(self) -> u16 {
        self.reg ^ 0xFFFF
    }

    /// The checksum of `bytes`.
    pub fn checksum(bytes: &[u8]) -> u16 {
        let mut c = Crc16::new();
        c.update(bytes);
        c.finish()
    }
}

/// One byte a step through the 256-entry table.
#[inline]
fn update_table(table: &[u16; 256], mut reg: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        reg = table[usize::from((reg as u8) ^ b)] ^ (reg >> 8);
    }
    reg
}

#[cfg(feature = "fast-frames")]
mod fast {
    extern crate std;

    /// Below this many bytes the table is as quick as folding's set-up.
    const FOLD_MIN: usize = 48;

    /// CRC-16/IBM-SDLC, sixteen tables (the fallback without PCLMULQDQ).
    const TABLE16: crc::Crc<u16, crc::Table<16>> =
        crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_IBM_SDLC);

    #[inline]
    pub(super) fn update(table: &[u16; 256], reg: u16, bytes: &[u8]) -> u16 {
        if bytes.len() < FOLD_MIN {
            return super::update_table(table, reg, bytes);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: the CPU has PCLMULQDQ (just detected) and SSE2 (every
            // x86_64 does): the only features `clmul::update` is built with.
            return unsafe { clmul::update(table, reg, bytes) };
        }
        slice16(reg, bytes)
    }

    /// Sixteen bytes a step through the crc crate's sixteen tables. The
    /// crate's digest takes the register as it is, so the state is carried
    /// over by XORing it into the first two bytes (the register is linear in
    /// its input: a reflected register `r` before bytes `b0 b1 …` acts as
    /// `b0 ^ r, b1 ^ r >> 8` on a zero register).
    fn slice16(reg: u16, bytes: &[u8]) -> u16 {
        let [r0, r1] = reg.to_le_bytes();
        let head = [bytes[0] ^ r0, bytes[1] ^ r1];
        // A digest starting at 0 in the reflected domain, i.e. register 0.
        let mut d = TABLE16.digest_with_initial(0);
        d.update(&head);
        d.update(&bytes[2..]);
        // `finalize` XORs 0xFFFF out: put it back to get the register.
        d.finalize() ^ 0xFFFF
    }

    /// Folding by carry-less multiplication (the method of Intel's "Fast CRC
    /// Computation for Generic Polynomials Using PCLMULQDQ", for a 16-bit
    /// reflected CRC).
    ///
    /// In the reflected bit order a little-endian 128-bit block holds a
    /// polynomial whose highest term is bit 0. With the register XORed into
    /// the first two bytes, the register after the message `M` is
    /// `M(x)·x^16 mod P`. Folding keeps a 128-bit `A ≡ M (mod P)` of the
    /// bytes so far: a new block `B` makes `A·x^128 + B`, and with
    /// `A = H·x^64 + L`, `A·x^128 ≡ H·(x^192 mod P) + L·(x^128 mod P)`, both
    /// products under 80 bits. A carry-less product of two reflected 64-bit
    /// values is the reflected product times `x`, hence the constants
    /// `x^191 mod P` and `x^127 mod P` (`pair(128)`). Long inputs
    /// keep four such values, each taking every fourth block (moved 512 bits
    /// a step), so the multiplications do not wait on each other; they are
    /// folded into one at the end. The last 128-bit `A` and the bytes after
    /// the last whole block go through the table.
    #[cfg(target_arch = "x86_64")]
    mod clmul {
        use core::arch::x86_64::{
            __m128i, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_unpackhi_epi64,
            _mm_xor_si128,
        };

        /// `x^n mod P` in the normal bit order (P = x^16 + x^12 + x^5 + 1).
        const fn x_pow_mod_p(n: u32) -> u16 {
            // Start from x^0 and multiply by x n times, reducing by 0x1021.
            let mut r: u16 = 1;
            let mut i = 0;
            while i < n {
                let top = r & 0x8000 != 0;
                r <<= 1;
                if top {
                    r ^= 0x1021;
                }
                i += 1;
            }
            r
        }

        /// A polynomial of degree < 16 as a reflected 64-bit value (the
        /// coefficient of `x^i` at bit `63 - i`).
        const fn reflect64(k: u16) -> u64 {
            (k as u64).reverse_bits()
        }

        /// A pair of constants: the low half multiplies a 128-bit value's
        /// first 8 bytes (`H`), the high half its last 8 (`L`), so that
        /// [`fold`] moves the value `n` bits further: `x^(n+63)` and
        /// `x^(n-1)`, reduced.
        const fn pair(n: u32) -> (u64, u64) {
            (
                reflect64(x_pow_mod_p(n + 63)),
                reflect64(x_pow_mod_p(n - 1)),
            )
        }

        /// Moves a value 128 bits on (one block).
        const BY_128: (u64, u64) = pair(128);
        /// Moves a value 512 bits on (four blocks).
        const BY_512: (u64, u64) = pair(512);

        #[inline]
        #[target_feature(enable = "pclmulqdq")]
        fn constants(k: (u64, u64)) -> __m128i {
            _mm_set_epi64x(k.1 as i64, k.0 as i64)
        }

        #[inline]
        #[target_feature(enable = "pclmulqdq")]
        fn load(block: &[u8; 16]) -> __m128i {
            let v = u128::from_le_bytes(*block);
            _mm_set_epi64x((v >> 64) as i64, v as i64)
        }

        /// `a·x^n + b`, reduced to 128 bits, for the `n` of `k`.
        #[inline]
        #[target_feature(enable = "pclmulqdq")]
        fn fold(a: __m128i, k: __m128i, b: __m128i) -> __m128i {
            let h = _mm_clmulepi64_si128::<0x00>(a, k);
            let l = _mm_clmulepi64_si128::<0x11>(a, k);
            _mm_xor_si128(_mm_xor_si128(h, l), b)
        }

        #[target_feature(enable = "pclmulqdq")]
        pub(super) fn update(table: &[u16; 256], reg: u16, bytes: &[u8]) -> u16 {
            let (blocks, tail) = bytes.as_chunks::<16>();
            if blocks.is_empty() {
                return super::super::update_table(table, reg, bytes);
            }
            let start = _mm_set_epi64x(0, i64::from(reg));
            let by_128 = constants(BY_128);
            // Four values side by side, each taking every fourth block: four
            // independent chains of multiplications, then folded into one.
            let (groups, rest) = blocks.as_chunks::<4>();
            let mut a = match groups.split_first() {
                Some((first, groups)) => {
                    let by_512 = constants(BY_512);
                    let mut v = [
                        _mm_xor_si128(load(&first[0]), start),
                        load(&first[1]),
                        load(&first[2]),
                        load(&first[3]),
                    ];
                    for g in groups {
                        v[0] = fold(v[0], by_512, load(&g[0]));
                        v[1] = fold(v[1], by_512, load(&g[1]));
                        v[2] = fold(v[2], by_512, load(&g[2]));
                        v[3] = fold(v[3], by_512, load(&g[3]));
                    }
                    let a = fold(v[0], by_128, v[1]);
                    let a = fold(a, by_128, v[2]);
                    fold(a, by_128, v[3])
                }
                None => _mm_xor_si128(load(&rest[0]), start),
            };
            let rest = if groups.is_empty() { &rest[1..] } else { rest };
            for b in rest {
                a = fold(a, by_128, load(b));
            }
            let lo = _mm_cvtsi128_si64(a) as u64;
            let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(a, a)) as u64;
            let folded = (u128::from(hi) << 64 | u128::from(lo)).to_le_bytes();
            let reg = super::super::update_table(table, 0, &folded);
            super::super::update_table(table, reg, tail)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        extern crate std;
        use std::vec::Vec;

        fn bytes(seed: u64, len: usize) -> Vec<u8> {
            let mut x = seed | 1;
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        }

        #[test]
        fn every_path_agrees_with_the_table() {
            // Under Miri (slow) the lengths that reach every path once.
            let lens: Vec<usize> = if cfg!(miri) {
                (0..80).step_by(7).chain([130, 1000]).collect()
            } else {
                (0..300).chain([1000, 4093, 32 * 1024 + 7]).collect()
            };
            for len in lens {
                let data = bytes(len as u64 + 1, len);
                for reg in [0u16, 0xFFFF, 0x1234, 0x8001] {
                    let table = &super::super::TABLE1.table()[0];
                    let want = super::super::update_table(table, reg, &data);
                    assert_eq!(update(table, reg, &data), want, "len {len} reg {reg:#x}");
                    if len >= 2 {
                        assert_eq!(slice16(reg, &data), want, "slice16 len {len}");
                    }
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("pclmulqdq") {
                        // SAFETY: detected just above.
                        assert_eq!(
                            unsafe { clmul::update(table, reg, &data) },
                            want,
                            "clmul {len}"
                        );
                    }
                }
            }
        }

        #[test]
        fn known_check_value() {
            // The catalogue's check value for "123456789".
            assert_eq!(super::super::Crc16::checksum(b"123456789"), 0x906E);
            let mut long = Vec::new();
            for _ in 0..20 {
                long.extend_from_slice(b"123456789");
            }
            assert_eq!(
                super::super::Crc16::checksum(&long),
                super::TABLE16.checksum(&long)
            );
        }
    }
}

/// The table path, as a microcontroller build (no `fast-frames`) runs it:
/// round trips between encoder and decoder cannot tell a wrong table, the
/// catalogue's check value can.
#[cfg(test)]
mod table_tests {
    use super::Crc16;

    #[test]
    fn known_check_value_in_pieces() {
        assert_eq!(Crc16::checksum(b"123456789"), 0x906E);
        // As the writer calls it: in pieces, short and long.
        let mut long = [0u8; 200];
        for (i, b) in long.iter_mut().enumerate() {
            *b = b"123456789"[i % 9];
        }
        let whole = Crc16::checksum(&long);
        for cut in [0, 1, 9, 47, 48, 49, 100, 199, 200] {
            let mut c = Crc16::new();
            c.update(&long[..cut]);
            c.update(&long[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
    }
}
