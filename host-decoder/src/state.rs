//! State: the blocks live at the current point of the merged stream.
//!
//! The live table is keyed by address. Each allocation gets a generation (the
//! event's sequence number in the merged stream), so a block and a later block
//! at the same address are never confused — by the double-free check, by
//! `track!` names, by temporaries. Memory is proportional to the live blocks
//! plus a bounded memory of recent frees.

use crate::live_table::LiveTable;
use crate::records::{Align, Event, Op, NO_STACK};
use rustc_hash::FxHashMap;

/// No name / no scope.
pub const NONE: u32 = u32::MAX;

/// A live block. One cache line, aligned to one: the live table keeps
/// them in a slab, and a free's load of its block is the analysing
/// thread's most frequent miss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(64))]
pub struct Block {
    /// Requested size.
    pub size: u64,
    /// Its address: the live table's slots hold a 32-bit key of it and
    /// check a match here (set by the table when the block goes in).
    pub addr: u64,
    /// Stack of the call that produced this block (alloc, or the realloc that moved or resized it).
    pub site: u32,
    /// Stack of the first allocation of its realloc chain.
    pub origin_site: u32,
    /// Stream (thread) that allocated it.
    pub stream: u32,
    /// Reallocs since the first allocation.
    pub reallocs: u32,
    /// Timestamp of the first allocation of its realloc chain.
    pub origin_ts: u64,
    /// The generation (low [`GENERATION_BITS`] bits) and the alignment's
    /// exponent (the top six): the address took the room the alignment had.
    gen_align: u64,
    /// Size at the first allocation.
    pub first_size: u64,
    /// Innermost scope open on its thread when first allocated, or [`NONE`].
    pub scope: u32,
    /// `track!` name, or [`NONE`].
    pub name: u32,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Block>() == 64);

/// Bits of a block's generation: 2^58 events, 90 years at 10^8 a second.
pub const GENERATION_BITS: u32 = 58;

/// The generation's bits of [`Block`]'s word shared with the alignment.
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

impl Block {
    /// Site, stream, size and alignment: what error reports need of a block.
    #[inline]
    pub fn info(&self) -> (u32, u32, u64, u64) {
        (self.site, self.stream, self.size, self.align().bytes())
    }

    /// Requested alignment.
    #[inline]
    pub fn align(&self) -> Align {
        Align::from_exponent((self.gen_align >> GENERATION_BITS) as u8)
    }

    /// Generation: merged-stream sequence number of the allocation.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.gen_align & GENERATION_MASK
    }

    /// Sets the generation (its low [`GENERATION_BITS`] bits) and the
    /// alignment.
    #[inline]
    pub fn set_generation_align(&mut self, generation: u64, align: Align) {
        self.gen_align =
            (generation & GENERATION_MASK) | u64::from(align.exponent()) << GENERATION_BITS;
    }
}

/// What a recent free left behind, to tell a double free from a free of an
/// address never allocated.
#[derive(Clone, Copy, Debug, Default)]
pub struct Freed {
    /// The freed block's address (0: empty slot).
    pub addr: u64,
    /// The freed block: site, stream, size, align.
    pub block: (u32, u32, u64, u64),
    /// Stack of the free.
    pub free_stack: u32,
    /// Stream of the free.
    pub free_stream: u32,
}

/// Slots of the memory of recent frees, for double-free detection. It is a
/// direct-mapped table: a free is remembered until a later free of an address
/// that hashes to the same slot replaces it (after about this many frees on
/// average). A double free whose first free was forgotten is reported as a
/// free of an address that is not live. Every free writes one slot, so the
/// table is kept small enough to stay in cache.
pub const FREED_MEMORY: usize = 1 << 14;

/// The live table and what goes with it.
#[derive(Default)]
pub struct State {
    /// Live blocks by address.
    pub live: LiveTable,
    /// Live bytes now.
    pub live_bytes: u64,
    freed: Vec<Freed>,
    /// Open scopes per stream, innermost last.
    pub scopes: FxHashMap<u32, Vec<u32>>,
    /// Events applied (the next event's sequence number).
    pub seq: u64,
}

impl State {
    /// Empty.
    pub fn new() -> Self {
        State::default()
    }

    /// The innermost scope open on `stream`.
    #[inline]
    pub fn scope_of(&self, stream: u32) -> u32 {
        if self.scopes.is_empty() {
            return NONE;
        }
        self.scopes
            .get(&stream)
            .and_then(|s| s.last().copied())
            .unwrap_or(NONE)
    }

    /// Adds a block. Returns the block it displaced when the address was
    /// already live (an allocation over a live block: a lost free, or a
    /// misordered trace).
    #[inline]
    pub fn insert(&mut self, addr: u64, block: Block) -> Option<Block> {
        self.live_bytes = self.live_bytes.saturating_add(block.size);
        // A remembered free of this address stays: it is only consulted for
        // addresses that are not live, and the next free overwrites it.
        let old = self.live.insert(addr, block);
        if let Some(o) = &old {
            self.live_bytes = self.live_bytes.saturating_sub(o.size);
        }
        old
    }

    /// Adds a block where none is live; returns whether it did (see
    /// [`LiveTable::insert_vacant`]).
    #[inline]
    pub fn insert_vacant(&mut self, addr: u64, block: Block) -> bool {
        let done = self.live.insert_vacant(addr, block);
        if done {
            self.live_bytes = self.live_bytes.saturating_add(block.size);
        }
        done
    }

    /// Removes the block at `addr`; remembers it as recently freed.
    #[inline]
    pub fn remove(&mut self, addr: u64, free_stack: u32, free_stream: u32) -> Option<&Block> {
        self.remove_sized(addr, None, free_stack, free_stream)
    }

    /// [`remove`](Self::remove), only if the block is of `size` (when one
    /// is given).
    #[inline(always)]
    pub fn remove_sized(
        &mut self,
        addr: u64,
        size: Option<u64>,
        free_stack: u32,
        free_stream: u32,
    ) -> Option<&Block> {
        let block = self
            .live
            .remove_if(addr, |b| size.is_none_or(|s| s == b.size))?;
        self.live_bytes = self.live_bytes.saturating_sub(block.size);
        match self.freed.get_mut(freed_slot(addr)) {
            // Field by field: a `Freed` built whole went through the stack,
            // where an 8-byte load of two 4-byte stores could not be
            // forwarded (9 % of the analysing thread's samples).
            Some(slot) => {
                slot.addr = addr;
                slot.block = block.info();
                slot.free_stack = free_stack;
                slot.free_stream = free_stream;
            }
            None => first_free(
                &mut self.freed,
                Freed {
                    addr,
                    block: block.info(),
                    free_stack,
                    free_stream,
                },
            ),
        }
        Some(block)
    }

    /// Removes a block whose release is not a free (the old half of a realloc
    /// that moved): not remembered as freed, since the address was handed back
    /// as part of a resize.
    #[inline]
    pub fn take(&mut self, addr: u64) -> Option<Block> {
        let block = *self.live.remove(&addr)?;
        self.live_bytes = self.live_bytes.saturating_sub(block.size);
        Some(block)
    }

    /// A lookup of the address `ev` touches is coming (see
    /// [`LiveTable::prefetch`]).
    #[inline]
    pub fn prefetch(&self, ev: &Event) {
        match ev.op {
            Op::Alloc { addr, .. } | Op::Dealloc { addr, .. } | Op::Name { addr, .. } => {
                self.live.prefetch(addr)
            }
            Op::ReallocRelease { old_addr, .. } => self.live.prefetch(old_addr),
            Op::Realloc { new_addr, .. } => self.live.prefetch(new_addr),
            _ => {}
        }
    }

    /// The event `ev`, a free or a realloc, comes after the next few: its
    /// block (whose slot [`prefetch`](Self::prefetch) asked for earlier)
    /// and, for a free, the slot of the memory of recent frees it will
    /// write (a miss as often: the memory is larger than the L2 cache).
    #[inline]
    pub fn prefetch_free(&self, ev: &Event) {
        let addr = match ev.op {
            Op::Dealloc { addr, .. } => addr,
            Op::ReallocRelease { old_addr, .. } => old_addr,
            _ => return,
        };
        self.live.prefetch_block(addr);
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = self.freed.get(freed_slot(addr)) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch neither reads memory architecturally nor
            // faults; the pointer is to an element of `freed`.
            unsafe { _mm_prefetch(std::ptr::from_ref(f).cast::<i8>(), _MM_HINT_T0) }
        }
    }

    /// The recent free of `addr`, if it is remembered.
    pub fn recently_freed(&self, addr: u64) -> Option<&Freed> {
        self.freed
            .get(freed_slot(addr))
            .filter(|f| f.addr == addr && addr != 0)
    }

    /// A new block for `ev`, which allocated `size` bytes of `align`.
    #[inline]
    pub fn new_block(&self, ev: &Event, size: u64, align: Align) -> Block {
        let mut b = Block {
            size,
            addr: 0,
            site: ev.stack,
            origin_site: ev.stack,
            stream: ev.stream,
            reallocs: 0,
            origin_ts: ev.ts,
            gen_align: 0,
            first_size: size,
            scope: self.scope_of(ev.stream),
            name: NONE,
        };
        b.set_generation_align(self.seq, align);
        b
    }

    /// Applies scope changes of `ev` (the only state they touch).
    pub fn apply_scope(&mut self, ev: &Event) {
        match ev.op {
            Op::ScopeEnter { name } => self.scopes.entry(ev.stream).or_default().push(name),
            Op::ScopeExit => {
                if let Some(s) = self.scopes.get_mut(&ev.stream) {
                    s.pop();
                }
            }
            _ => {}
        }
    }
}

/// The session's first free: the memory of recent frees is made (not
/// before, so a state that never sees a free costs nothing).
#[cold]
#[inline(never)]
fn first_free(freed: &mut Vec<Freed>, f: Freed) {
    freed.resize(FREED_MEMORY, Freed::default());
    freed[freed_slot(f.addr)] = f;
}

#[inline]
fn freed_slot(addr: u64) -> usize {
    // Fibonacci hashing: the top bits of the product mix every address bit.
    (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FREED_MEMORY.trailing_zeros())) as usize
}

/// Whether a site id names a recorded stack.
pub fn has_stack(site: u32) -> bool {
    site != NO_STACK
}
