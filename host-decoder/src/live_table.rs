//! The live table: blocks by address, as an open-addressing hash table with
//! linear probing, built for the decoder's hot loop.
//!
//! Why not a `HashMap`: looking a block up is the one unavoidable cache miss
//! per event, and the merge knows which addresses come next. This table can
//! [`prefetch`](LiveTable::prefetch) an address's slot a few events ahead,
//! so the miss overlaps with other work. A slot is 8 bytes: a 32-bit key of
//! the address (the top half of its hash, whose top bits are also its home
//! slot) and the index of its block (eight slots a cache line); a key that
//! matches is checked against the address the block holds, which a free
//! loads anyway. The blocks sit in a slab whose freed entries are reused
//! last-freed first, so the blocks of a churning program stay in a few hot
//! cache lines, and the table's own arrays stay small: at most a quarter of
//! the slots are full, and an empty slot costs 8 bytes, not the size of a
//! block. (Slots were 16 bytes, the whole address: a page's first touch
//! costs about 0.8 ms a MiB here, and the slots' growth was a fifth of the
//! analysing thread's time on the 2-thread churn trace.) The hash is one
//! multiply (Fibonacci hashing): addresses are not attacker-chosen here, and
//! their low bits (alignment) carry little, which the multiply's top bits mix
//! away.
//!
//! Removal shifts the following slots back (no tombstones), so lookups stay
//! short however many blocks come and go; only slots move, never blocks. The
//! table grows by doubling, from the keys alone, and never shrinks during a
//! session.

use crate::state::Block;

/// Slots at first (a power of two).
const MIN_SLOTS: usize = 1 << 10;
/// Most slots: a key's 32 bits name the home slot (a `u64`, so that a
/// 32-bit host builds too).
const MAX_SLOTS: u64 = 1 << 32;
/// At most one slot in this many is full. Linear probing's runs, which a
/// lookup of an absent address and every removal's backward shift walk to
/// their end, grow fast with the load: at a quarter they are about half as
/// long as at a half (a churning program's live set sits right below the
/// limit most of the time), for 8 more bytes per live block.
const MAX_LOAD: usize = 4;

/// One slot: the address's key and where its block is in the slab.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u32,
    /// The block's index in the slab plus one; 0: an empty slot.
    block: u32,
}

/// The hash of `addr`'s top half: the slot key.
#[inline(always)]
fn key(addr: u64) -> u32 {
    (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// Blocks by address.
#[derive(Clone)]
pub struct LiveTable {
    slots: Vec<Slot>,
    /// The blocks, by the index a slot holds; entries listed in `free` are
    /// unused.
    blocks: Vec<Block>,
    /// Unused entries of `blocks`, the last freed last.
    free: Vec<u32>,
    /// `32 - log2(slots)`: a key's top bits pick the slot.
    shift: u32,
    len: usize,
    /// A block at address 0 (only a broken or hostile trace has one).
    zero: Option<Block>,
    /// The last block removed from address 0 (what `remove` refers to).
    zero_gone: Option<Block>,
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
            slots: vec![Slot::default(); slots],
            blocks: Vec::new(),
            free: Vec::new(),
            shift: 32 - slots.trailing_zeros(),
            len: 0,
            zero: None,
            zero_gone: None,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The home slot of a key.
    #[inline(always)]
    fn home(&self, key: u32) -> usize {
        // `shift` is below 32 (there are at least two slots).
        (key >> self.shift) as usize
    }

    /// Whether slot `s`, full, holds `addr` (whose key is `k`).
    #[inline(always)]
    fn holds(&self, s: Slot, k: u32, addr: u64) -> bool {
        s.key == k && self.blocks[(s.block - 1) as usize].addr == addr
    }

    /// Slot `i`, which is a home (below the slot count: the multiply's top
    /// `log2(slots)` bits) or a position masked with [`mask`](Self::mask).
    /// Unchecked: the probe loops index a slot a few times per event, and
    /// the compiler cannot see that a masked index is in bounds.
    #[inline(always)]
    fn slot(&self, i: usize) -> Slot {
        debug_assert!(i < self.slots.len());
        // SAFETY: every caller passes home() or a value masked with
        // mask() = slots.len() - 1 (slots.len() is a power of two), both
        // below slots.len().
        unsafe { *self.slots.get_unchecked(i) }
    }

    /// Slot `i` to change (same condition as [`slot`](Self::slot)).
    #[inline(always)]
    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        debug_assert!(i < self.slots.len());
        // SAFETY: as in slot(): `i` is home() or masked with mask().
        unsafe { self.slots.get_unchecked_mut(i) }
    }

    /// Asks the CPU to start loading the block live at `addr`, whose
    /// removal is coming, when its slot (prefetched earlier, see
    /// [`prefetch`](Self::prefetch)) is its home: a freed block's first
    /// load was the analysing thread's most frequent stall. Only a hint.
    #[inline]
    pub fn prefetch_block(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let k = key(addr);
            let s = self.slot(self.home(k));
            // A key that matches is likely the block; this is a hint.
            if s.key == k && s.block != 0 {
                if let Some(b) = self.blocks.get((s.block - 1) as usize) {
                    // SAFETY: a prefetch neither reads memory
                    // architecturally nor faults; the pointer is to an
                    // element of `blocks`.
                    unsafe { _mm_prefetch(std::ptr::from_ref(b).cast::<i8>(), _MM_HINT_T0) }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
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

    /// Asks the CPU to start loading the slot `addr` hashes to, because a
    /// lookup of `addr` is coming. Only a hint.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let i = self.home(key(addr));
            // SAFETY: `i` is within the slots (home() is below the slot
            // count), and a prefetch neither reads memory architecturally nor
            // faults.
            unsafe {
                _mm_prefetch(self.slots.as_ptr().add(i).cast::<i8>(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// The slot holding `addr`, if it is live (`addr` is not 0).
    #[inline(always)]
    fn find(&self, addr: u64) -> Option<usize> {
        let mask = self.mask();
        let k = key(addr);
        let mut i = self.home(k);
        loop {
            let s = self.slot(i);
            if s.block == 0 {
                return None;
            }
            if self.holds(s, k, addr) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The block at `addr`.
    #[inline]
    pub fn get(&self, addr: &u64) -> Option<&Block> {
        if *addr == 0 {
            return self.zero.as_ref();
        }
        self.find(*addr)
            .map(|i| &self.blocks[(self.slots[i].block - 1) as usize])
    }

    /// The block at `addr`, to change it.
    #[inline]
    pub fn get_mut(&mut self, addr: &u64) -> Option<&mut Block> {
        if *addr == 0 {
            return self.zero.as_mut();
        }
        self.find(*addr)
            .map(|i| &mut self.blocks[(self.slots[i].block - 1) as usize])
    }

    /// Puts `block` at `addr`; returns the block that was there.
    #[inline(always)]
    pub fn insert(&mut self, addr: u64, mut block: Block) -> Option<Block> {
        block.addr = addr;
        if addr == 0 {
            return self.zero.replace(block);
        }
        match self.probe_to_insert(addr) {
            Ok(i) => {
                let b = (self.slot(i).block - 1) as usize;
                Some(std::mem::replace(&mut self.blocks[b], block))
            }
            Err(i) => {
                self.fill(i, addr, block);
                None
            }
        }
    }

    /// Puts `block` at `addr` if no block is there; returns whether it did
    /// (one probe where a lookup and an insert take two).
    #[inline(always)]
    pub fn insert_vacant(&mut self, addr: u64, mut block: Block) -> bool {
        block.addr = addr;
        if addr == 0 {
            if self.zero.is_some() {
                return false;
            }
            self.zero = Some(block);
            return true;
        }
        match self.probe_to_insert(addr) {
            Ok(_) => false,
            Err(i) => {
                self.fill(i, addr, block);
                true
            }
        }
    }

    /// The slot holding `addr` (not 0), or else the empty slot where it
    /// goes, the table grown first if one more block would fill it past
    /// [`MAX_LOAD`].
    #[inline(always)]
    fn probe_to_insert(&mut self, addr: u64) -> Result<usize, usize> {
        if (self.len + 1) * MAX_LOAD > self.slots.len() {
            self.grow();
        }
        let mask = self.mask();
        let k = key(addr);
        let mut i = self.home(k);
        loop {
            let s = self.slot(i);
            if s.block == 0 {
                return Err(i);
            }
            if self.holds(s, k, addr) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts `block` (whose `addr` is set) in the empty slot `i` for `addr`.
    #[inline(always)]
    fn fill(&mut self, i: usize, addr: u64, block: Block) {
        let b = match self.free.pop() {
            Some(b) => {
                self.blocks[b as usize] = block;
                b
            }
            None => {
                // At most a quarter of the slots are full and the slot count
                // is far below 2^32 (a slot per byte of a 64 GiB table): the
                // index fits.
                let b = self.blocks.len() as u32;
                if self.blocks.len() == self.blocks.capacity() {
                    self.grow_blocks();
                }
                self.blocks.push(block);
                b
            }
        };
        // At most 2^32 slots, a quarter of them full: `b + 1` fits.
        *self.slot_mut(i) = Slot {
            key: key(addr),
            block: b + 1,
        };
        self.len += 1;
    }

    /// Takes the block at `addr` out. The block is returned by reference:
    /// it stays where it was in the slab until the next insert (copying it
    /// out cost more than anything else in a removal).
    #[inline(always)]
    pub fn remove(&mut self, addr: &u64) -> Option<&Block> {
        self.remove_if(*addr, |_| true)
    }

    /// [`remove`](Self::remove) of the block at `addr` only if `keep_out`
    /// says so of it (one probe where a lookup and a removal take two).
    #[inline(always)]
    pub fn remove_if(
        &mut self,
        addr: u64,
        keep_out: impl FnOnce(&Block) -> bool,
    ) -> Option<&Block> {
        if addr == 0 {
            if !self.zero.as_ref().is_some_and(keep_out) {
                return None;
            }
            let b = self.zero.take()?;
            // Address 0: the block is kept aside until the next insert.
            return Some(&*self.zero_gone.insert(b));
        }
        let mut hole = self.find(addr)?;
        let b = self.slot(hole).block - 1;
        if !keep_out(&self.blocks[b as usize]) {
            return None;
        }
        self.free.push(b);
        self.len -= 1;
        // Backward shift: every slot after the hole in its probe run moves
        // into the hole unless the hole lies before its home slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slot(j);
            if s.block == 0 {
                break;
            }
            let home = self.home(s.key);
            // Distance from home to j versus from the hole to j, cyclically.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                *self.slot_mut(hole) = s;
                hole = j;
            }
        }
        self.slot_mut(hole).block = 0;
        Some(&self.blocks[b as usize])
    }

    /// Twice the slots, placed from their keys; blocks stay where they are.
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        // Never reached: 2^30 live blocks take 64 GiB of slab first.
        if n as u64 > MAX_SLOTS {
            return;
        }
        let mut slots = Vec::with_capacity(n);
        huge_pages(&slots);
        slots.resize(n, Slot::default());
        let old = std::mem::replace(&mut self.slots, slots);
        self.shift = 32 - n.trailing_zeros();
        let mask = self.mask();
        for s in old.into_iter().filter(|s| s.block != 0) {
            let mut i = self.home(s.key);
            while self.slots[i].block != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Eight times the slab's room, in memory that may be backed by huge
    /// pages. Room is only address space until a block is written there
    /// (the slab fills from its start), so a large step costs nothing until
    /// it is used, while each step writes every block so far into fresh
    /// memory: doubling wrote the slab about twice in all, at 0.8 ms a MiB
    /// of first touches.
    #[cold]
    #[inline(never)]
    fn grow_blocks(&mut self) {
        let mut blocks = Vec::with_capacity((self.blocks.capacity() * 8).max(1 << 10));
        huge_pages(&blocks);
        blocks.extend_from_slice(&self.blocks);
        self.blocks = blocks;
    }

    /// Every live block with its address, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Block)> {
        const ZERO: u64 = 0;
        self.zero.as_ref().map(|b| (&ZERO, b)).into_iter().chain(
            self.slots.iter().filter(|s| s.block != 0).map(|s| {
                let b = &self.blocks[(s.block - 1) as usize];
                (&b.addr, b)
            }),
        )
    }

    /// Every live block, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Block> {
        self.iter().map(|(_, b)| b)
    }
}

/// Asks Linux to back `v`'s allocation, whose pages are not touched yet,
/// with transparent huge pages where whole 2 MiB pages fit in it. The slots
/// and the slab are read at random, one or two lines a lookup: with 4 KiB
/// pages nearly every lookup of a large live set also missed the TLB: the
/// churn traces (1 and 2 threads) decode about 10 % faster, with the same
/// peak RSS. Only a hint: where THP is off or the call fails nothing
/// changes.
fn huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let len = v.capacity() * std::mem::size_of::<T>();
        let (from, to) = (start.next_multiple_of(HUGE), (start + len) / HUGE * HUGE);
        if to > from {
            // SAFETY: [from, to) lies within `v`'s allocation (rounded
            // inwards to whole huge pages), which stays mapped while `v`
            // lives; MADV_HUGEPAGE changes only how the kernel backs those
            // pages, never their contents, and a failure is ignored.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A block of `size` at `addr` (as the table stores it).
    fn block(addr: u64, size: u64) -> Block {
        let mut b = Block::default();
        (b.size, b.addr) = (size, addr);
        b
    }

    /// Many pseudo-random inserts and removes leave the same content as a
    /// `HashMap`, including colliding addresses (few distinct values, and
    /// multiples of large powers of two) and address 0.
    #[test]
    fn behaves_like_a_hash_map() {
        let mut t = LiveTable::default();
        let mut m: HashMap<u64, Block> = HashMap::new();
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        let mut most = 0;
        for step in 0..200_000u64 {
            // xorshift64: reproducible without a dependency.
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let a = r % 3000;
            let addr = a << ((r >> 40) % 4 * 20);
            if (r >> 32) % 3 < 2 - u64::from(step > 100_000) {
                assert_eq!(
                    t.insert(addr, block(addr, a)),
                    m.insert(addr, block(addr, a))
                );
            } else {
                assert_eq!(t.remove(&addr).copied(), m.remove(&addr));
            }
            assert_eq!(t.len(), m.len());
            most = most.max(m.len());
        }
        assert!(m.len() > 1000, "the table grew: {}", m.len());
        // Freed slab entries are reused: the slab holds no more blocks than
        // were ever live at once.
        assert!(
            t.blocks.len() <= most,
            "{} blocks for {most}",
            t.blocks.len()
        );
        assert_eq!(t.blocks.len() - t.free.len(), t.len);
        for (a, b) in &m {
            assert_eq!(t.get(a), Some(b));
        }
        let mut seen: Vec<_> = t.iter().map(|(a, b)| (*a, *b)).collect();
        seen.sort_by_key(|x| x.0);
        let mut want: Vec<_> = m.into_iter().collect();
        want.sort_by_key(|x| x.0);
        assert_eq!(seen, want);
    }

    /// Two addresses with the same 32-bit key (found by search) are told
    /// apart by the address each block holds: each is found, replaced and
    /// removed on its own, before and after the table grows, and a third
    /// address with that key is absent.
    #[test]
    fn addresses_with_one_key_are_told_apart() {
        let mut seen = HashMap::new();
        let mut pairs = Vec::new();
        // Consecutive addresses spread evenly (no two of the first 2M share
        // a key): random ones meet by the birthday bound, about 10 pairs
        // in 300,000.
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2_000_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let addr = (r & 0x7fff_ffff_fff0) | 16;
            if let Some(&other) = seen.get(&key(addr)) {
                pairs.push((other, addr));
                if pairs.len() == 2 {
                    break;
                }
            } else {
                seen.insert(key(addr), addr);
            }
        }
        let [(a, b), (c, _)] = pairs[..] else {
            panic!("two colliding pairs among 2M random addresses: {pairs:?}")
        };
        let mut t = LiveTable::default();
        assert_eq!(t.insert(a, block(0, 1)), None);
        assert!(t.insert_vacant(b, block(0, 2)));
        assert!(!t.insert_vacant(a, block(0, 3)));
        assert_eq!(t.get(&a).map(|x| x.size), Some(1));
        assert_eq!(t.get(&b).map(|x| x.size), Some(2));
        assert_eq!(t.get(&c), None);
        // Grown (from the keys alone), both are still found.
        for i in 1..=5_000u64 {
            t.insert(0x7000_0000_0000 + i * 64, block(0, i));
        }
        assert_eq!(t.get(&a).map(|x| (x.addr, x.size)), Some((a, 1)));
        assert_eq!(t.get(&b).map(|x| (x.addr, x.size)), Some((b, 2)));
        assert_eq!(t.insert(b, block(0, 4)).map(|x| x.size), Some(2));
        assert_eq!(t.remove_if(a, |x| x.size == 9).copied(), None);
        assert_eq!(t.remove(&a).copied(), Some(block(a, 1)));
        assert_eq!(t.get(&a), None);
        assert_eq!(t.get(&b).map(|x| x.size), Some(4));
        assert_eq!(t.len(), 5_001);
    }

    #[test]
    fn grows_past_its_first_size() {
        let mut t = LiveTable::default();
        for a in 1..=10_000u64 {
            assert_eq!(t.insert(a * 16, block(0, a)), None);
        }
        assert_eq!(t.len(), 10_000);
        for a in (1..=10_000u64).step_by(2) {
            assert_eq!(t.remove(&(a * 16)).copied(), Some(block(a * 16, a)));
        }
        for a in 1..=10_000u64 {
            assert_eq!(t.get(&(a * 16)).is_some(), a % 2 == 0);
        }
        t.get_mut(&32).unwrap().size = 7;
        assert_eq!(t.get(&32).unwrap().size, 7);
    }
}
