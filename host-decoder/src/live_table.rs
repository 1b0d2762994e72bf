//! The live table: blocks by address, as an open-addressing hash table with
//! linear probing, built for the decoder's hot loop.
//!
//! Why not a `HashMap`: looking a block up is the one unavoidable cache miss
//! per event, and the merge knows which addresses come next. This table can
//! [`prefetch`](LiveTable::prefetch) an address's slot a few events ahead,
//! so the miss overlaps with other work. Keys sit in their own array (eight
//! bytes a probe, several probes a cache line), blocks in a parallel one that
//! is touched once per hit. The hash is one multiply (Fibonacci hashing):
//! addresses are not attacker-chosen here, and their low bits (alignment)
//! carry little, which the multiply's top bits mix away.
//!
//! Removal shifts the following entries back (no tombstones), so lookups stay
//! short however many blocks come and go. The table keeps at most half its
//! slots full and grows by doubling; it never shrinks during a session.

use crate::state::Block;

/// Marks an empty slot; address 0 is kept aside in [`LiveTable::zero`].
const EMPTY: u64 = 0;
/// Slots at first (a power of two).
const MIN_SLOTS: usize = 1 << 10;

/// Blocks by address.
#[derive(Clone)]
pub struct LiveTable {
    keys: Vec<u64>,
    blocks: Vec<Block>,
    /// `64 - log2(slots)`: the multiply's top bits pick the slot.
    shift: u32,
    len: usize,
    /// A block at address 0 (only a broken or hostile trace has one).
    zero: Option<Block>,
}

impl Default for LiveTable {
    fn default() -> Self {
        LiveTable::with_slots(MIN_SLOTS)
    }
}

impl std::fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl LiveTable {
    fn with_slots(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        LiveTable {
            keys: vec![EMPTY; slots],
            blocks: vec![Block::default(); slots],
            shift: 64 - slots.trailing_zeros(),
            len: 0,
            zero: None,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len() - 1
    }

    #[inline]
    fn home(&self, addr: u64) -> usize {
        (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Live blocks.
    #[inline]
    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    /// No block is live.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the CPU to start loading the slot `addr` hashes to (its key and
    /// its block), because a lookup of `addr` is coming. Only a hint.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let i = self.home(addr);
            // SAFETY: `i` is within both arrays (home() is below the slot
            // count), and a prefetch neither reads memory architecturally nor
            // faults.
            unsafe {
                _mm_prefetch(self.keys.as_ptr().add(i).cast::<i8>(), _MM_HINT_T0);
                _mm_prefetch(self.blocks.as_ptr().add(i).cast::<i8>(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// The slot holding `addr`, if it is live (`addr` is not 0).
    #[inline]
    fn find(&self, addr: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let k = self.keys[i];
            if k == addr {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The block at `addr`.
    #[inline]
    pub fn get(&self, addr: &u64) -> Option<&Block> {
        if *addr == EMPTY {
            return self.zero.as_ref();
        }
        self.find(*addr).map(|i| &self.blocks[i])
    }

    /// The block at `addr`, to change it.
    #[inline]
    pub fn get_mut(&mut self, addr: &u64) -> Option<&mut Block> {
        if *addr == EMPTY {
            return self.zero.as_mut();
        }
        self.find(*addr).map(|i| &mut self.blocks[i])
    }

    /// Puts `block` at `addr`; returns the block that was there.
    #[inline]
    pub fn insert(&mut self, addr: u64, block: Block) -> Option<Block> {
        if addr == EMPTY {
            return self.zero.replace(block);
        }
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let k = self.keys[i];
            if k == addr {
                return Some(std::mem::replace(&mut self.blocks[i], block));
            }
            if k == EMPTY {
                self.keys[i] = addr;
                self.blocks[i] = block;
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Takes the block at `addr` out.
    #[inline]
    pub fn remove(&mut self, addr: &u64) -> Option<Block> {
        if *addr == EMPTY {
            return self.zero.take();
        }
        let mut hole = self.find(*addr)?;
        let block = self.blocks[hole];
        self.len -= 1;
        // Backward shift: every entry after the hole in its probe run moves
        // into the hole unless the hole lies before its home slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.keys[j];
            if k == EMPTY {
                break;
            }
            let home = self.home(k);
            // Distance from home to j versus from the hole to j, cyclically.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.keys[hole] = k;
                self.blocks[hole] = self.blocks[j];
                hole = j;
            }
        }
        self.keys[hole] = EMPTY;
        Some(block)
    }

    fn grow(&mut self) {
        let mut bigger = LiveTable::with_slots(self.keys.len() * 2);
        bigger.zero = self.zero.take();
        for (k, b) in self.keys.iter().zip(&self.blocks) {
            if *k != EMPTY {
                bigger.insert(*k, *b);
            }
        }
        *self = bigger;
    }

    /// Every live block with its address, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Block)> {
        const ZERO: u64 = 0;
        self.zero.as_ref().map(|b| (&ZERO, b)).into_iter().chain(
            self.keys
                .iter()
                .zip(&self.blocks)
                .filter(|(k, _)| **k != EMPTY),
        )
    }

    /// Every live block, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Block> {
        self.iter().map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn block(size: u64) -> Block {
        Block {
            size,
            ..Block::default()
        }
    }

    /// Many pseudo-random inserts and removes leave the same content as a
    /// `HashMap`, including colliding addresses (few distinct values, and
    /// multiples of large powers of two) and address 0.
    #[test]
    fn behaves_like_a_hash_map() {
        let mut t = LiveTable::default();
        let mut m: HashMap<u64, Block> = HashMap::new();
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..200_000u64 {
            // xorshift64: reproducible without a dependency.
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let a = r % 3000;
            let addr = a << ((r >> 40) % 4 * 20);
            if (r >> 32) % 3 < 2 - u64::from(step > 100_000) {
                assert_eq!(t.insert(addr, block(a)), m.insert(addr, block(a)));
            } else {
                assert_eq!(t.remove(&addr), m.remove(&addr));
            }
            assert_eq!(t.len(), m.len());
        }
        assert!(m.len() > 1000, "the table grew: {}", m.len());
        for (a, b) in &m {
            assert_eq!(t.get(a), Some(b));
        }
        let mut seen: Vec<_> = t.iter().map(|(a, b)| (*a, *b)).collect();
        seen.sort_by_key(|x| x.0);
        let mut want: Vec<_> = m.into_iter().collect();
        want.sort_by_key(|x| x.0);
        assert_eq!(seen, want);
    }

    #[test]
    fn grows_past_its_first_size() {
        let mut t = LiveTable::default();
        for a in 1..=10_000u64 {
            assert_eq!(t.insert(a * 16, block(a)), None);
        }
        assert_eq!(t.len(), 10_000);
        for a in (1..=10_000u64).step_by(2) {
            assert_eq!(t.remove(&(a * 16)), Some(block(a)));
        }
        for a in 1..=10_000u64 {
            assert_eq!(t.get(&(a * 16)).is_some(), a % 2 == 0);
        }
        t.get_mut(&32).unwrap().size = 7;
        assert_eq!(t.get(&32).unwrap().size, 7);
    }
}
