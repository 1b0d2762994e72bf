//! The live set as the merge's hold checks see it: the size of the block
//! live at each address, updated by every merged event exactly as the
//! state's live table is (an allocation or a realloc's new half makes its
//! address live with its size, replacing what was there; a free or a
//! realloc's release half makes it free, whatever was there).
//!
//! Why a copy: the checks run where the merge runs, on the decoding thread,
//! while the state lives on the analysing thread. Asking the state meant a
//! lookup per event on the analysing thread, the busier one; this table
//! costs the same on the thread that has time to spare, and the state's
//! table is left to the analyses. The two stay equal because both are a
//! function of the merged events alone.
//!
//! The table is open addressing with linear probing, one multiply as the
//! hash (Fibonacci hashing: addresses are not attacker-chosen, and the
//! product's top bits mix away their aligned low bits) and removal by
//! backward shift (no tombstones), like the state's live table; a slot is an
//! address and a size, so a check and the update after it touch one cache
//! line.

use crate::records::{Event, Op};

/// Marks an empty slot; a block at address 0 is kept aside.
const EMPTY: u64 = 0;
/// Slots at first (a power of two).
const MIN_SLOTS: usize = 1 << 10;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    addr: u64,
    size: u64,
}

/// Sizes of the live blocks by address.
#[derive(Debug)]
pub struct LiveSizes {
    slots: Vec<Slot>,
    /// `64 - log2(slots)`: the multiply's top bits pick the slot.
    shift: u32,
    len: usize,
    /// The block at address 0 (only a broken or hostile trace has one).
    zero: Option<u64>,
}

impl Default for LiveSizes {
    fn default() -> Self {
        LiveSizes::with_slots(MIN_SLOTS)
    }
}

impl LiveSizes {
    fn with_slots(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        LiveSizes {
            slots: vec![Slot::default(); n],
            shift: 64 - n.trailing_zeros(),
            len: 0,
            zero: None,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, addr: u64) -> usize {
        (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// The slot holding `addr`, or the empty slot ending its probe run.
    #[inline]
    fn probe(&self, addr: u64) -> usize {
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let k = self.slots[i].addr;
            if k == addr || k == EMPTY {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The size of the block live at `addr`, if one is.
    #[inline]
    pub fn get(&self, addr: u64) -> Option<u64> {
        if addr == EMPTY {
            return self.zero;
        }
        let s = self.slots[self.probe(addr)];
        (s.addr == addr).then_some(s.size)
    }

    /// Makes `addr` live with `size`, replacing what was there.
    #[inline]
    pub fn insert(&mut self, addr: u64, size: u64) {
        if addr == EMPTY {
            self.zero = Some(size);
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.probe(addr);
        let s = &mut self.slots[i];
        if s.addr == EMPTY {
            self.len += 1;
        }
        *s = Slot { addr, size };
    }

    /// Makes `addr` live with `size` if it is free; says whether it was.
    #[inline]
    pub fn insert_if_free(&mut self, addr: u64, size: u64) -> bool {
        if addr == EMPTY {
            let free = self.zero.is_none();
            if free {
                self.zero = Some(size);
            }
            return free;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.probe(addr);
        let s = &mut self.slots[i];
        if s.addr != EMPTY {
            return false;
        }
        *s = Slot { addr, size };
        self.len += 1;
        true
    }

    /// Makes `addr` free if a block of `size` is live there; says whether
    /// one was.
    #[inline]
    pub fn remove_if_live(&mut self, addr: u64, size: u64) -> bool {
        if addr == EMPTY {
            let live = self.zero == Some(size);
            if live {
                self.zero = None;
            }
            return live;
        }
        let i = self.probe(addr);
        let s = self.slots[i];
        if s.addr != addr || s.size != size {
            return false;
        }
        self.remove_at(i);
        true
    }

    /// Makes `addr` free.
    #[inline]
    pub fn remove(&mut self, addr: u64) {
        if addr == EMPTY {
            self.zero = None;
            return;
        }
        let i = self.probe(addr);
        if self.slots[i].addr != EMPTY {
            self.remove_at(i);
        }
    }

    /// Empties the full slot `hole`.
    #[inline]
    fn remove_at(&mut self, mut hole: usize) {
        self.len -= 1;
        // Backward shift: every slot after the hole in its probe run moves
        // into the hole unless the hole lies before its home slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.addr == EMPTY {
                break;
            }
            let home = self.home(s.addr);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole].addr = EMPTY;
    }

    #[cold]
    fn grow(&mut self) {
        let old = std::mem::replace(self, LiveSizes::with_slots(self.slots.len() * 2));
        self.zero = old.zero;
        for s in old.slots.into_iter().filter(|s| s.addr != EMPTY) {
            self.insert(s.addr, s.size);
        }
    }

    /// The address `ev` makes live and its size, if it makes one live.
    #[inline]
    pub fn made_live(ev: &Event) -> Option<(u64, u64)> {
        match ev.op {
            Op::Alloc { addr, size, .. } => Some((addr, size)),
            Op::Realloc {
                new_addr, new_size, ..
            } => Some((new_addr, new_size)),
            _ => None,
        }
    }

    /// Takes the merged event `ev` into account.
    #[inline]
    pub fn apply(&mut self, ev: &Event) {
        match ev.op {
            Op::Alloc { addr, size, .. } => self.insert(addr, size),
            Op::Realloc {
                new_addr, new_size, ..
            } => self.insert(new_addr, new_size),
            Op::Dealloc { addr, .. } => self.remove(addr),
            Op::ReallocRelease { old_addr, .. } => self.remove(old_addr),
            _ => {}
        }
    }

    /// Forgets every block (a new session).
    pub fn clear(&mut self) {
        *self = LiveSizes::default();
    }

    /// Live blocks.
    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    /// No block is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Pseudo-random inserts and removes, with colliding addresses (few
    /// distinct values, multiples of large powers of two) and address 0,
    /// leave what a `HashMap` holds.
    #[test]
    fn behaves_like_a_hash_map() {
        let mut t = LiveSizes::default();
        let mut m: HashMap<u64, u64> = HashMap::new();
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..200_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let a = r % 3000;
            let addr = a << ((r >> 40) % 4 * 20);
            if (r >> 32) % 3 < 2 - u64::from(step > 100_000) {
                t.insert(addr, step);
                m.insert(addr, step);
            } else {
                t.remove(addr);
                m.remove(&addr);
            }
            assert_eq!(t.len(), m.len());
            assert_eq!(t.get(addr), m.get(&addr).copied());
        }
        assert!(m.len() > 1000, "the table grew: {}", m.len());
        for a in 0..3000u64 {
            for shift in [0, 20, 40, 60] {
                let addr = a << shift;
                assert_eq!(t.get(addr), m.get(&addr).copied(), "{addr:#x}");
            }
        }
        // The conditional forms do what they say and nothing else.
        for addr in [0, 0x40, 0x40 << 40] {
            t.remove(addr);
            assert!(!t.remove_if_live(addr, 8));
            assert!(t.insert_if_free(addr, 8));
            assert!(!t.insert_if_free(addr, 16));
            assert!(!t.remove_if_live(addr, 16));
            assert_eq!(t.get(addr), Some(8));
            assert!(t.remove_if_live(addr, 8));
            assert_eq!(t.get(addr), None);
        }
        t.clear();
        assert!(t.is_empty() && t.get(0).is_none());
    }
}
