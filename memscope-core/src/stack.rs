//! Call stacks for a [`Stream`](crate::Stream)'s heap events: where they come
//! from ([`StackSource`]) and how each distinct one is sent only once
//! ([`StackTable`]).
//!
//! A stack goes out once as a [`Record::Stack`](crate::wire::Record::Stack)
//! with a new id; later events with the same stack carry just the id. The
//! default, [`NoStacks`], captures nothing and costs nothing.

/// The most return addresses a [`Stream`](crate::Stream) asks a source for.
pub const MAX_CAPTURE: usize = 16;

/// Captures and interns call stacks for a [`Stream`](crate::Stream).
///
/// Every method runs inside the recorder's critical section, after the inner
/// allocator call: it must not allocate, block or panic, and it has exclusive
/// access (`&mut self`) without locking of its own.
pub trait StackSource {
    /// `false` lets the compiler drop the stack path of the recorder entirely.
    const ENABLED: bool = true;

    /// Writes the return addresses of the allocating call, innermost first,
    /// into `out`; returns how many.
    fn capture(&mut self, out: &mut [u64]) -> usize;

    /// The id of `frames` and whether a record defining it was sent already.
    /// Call [`sent`](Self::sent) once a new id's record is in the stream.
    fn intern(&mut self, frames: &[u64]) -> Interned;

    /// The record defining `interned` is in the stream.
    fn sent(&mut self, interned: Interned);
}

/// What [`StackSource::intern`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interned {
    /// The stack's id.
    pub id: u32,
    /// Whether a [`Record::Stack`](crate::wire::Record::Stack) with this id
    /// was sent before.
    pub known: bool,
    /// Hash of the frames (for [`StackTable`]).
    pub hash: u32,
}

/// Captures nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStacks;

impl StackSource for NoStacks {
    const ENABLED: bool = false;

    #[inline]
    fn capture(&mut self, _out: &mut [u64]) -> usize {
        0
    }

    fn intern(&mut self, _frames: &[u64]) -> Interned {
        Interned {
            id: 0,
            known: false,
            hash: 0,
        }
    }

    fn sent(&mut self, _interned: Interned) {}
}

/// A fixed table of the stacks sent so far: `N` slots of (hash, id), 8 bytes
/// each, direct-mapped by hash.
///
/// A stack whose slot another stack took is sent again under a new id, which
/// costs bytes, never correctness. Two different stacks with the same 32-bit
/// hash would share an id; with `N` live stacks the chance is about
/// `N² / 2³³`, and the host cannot detect it.
#[derive(Clone, Debug)]
pub struct StackTable<const N: usize> {
    slots: [(u32, u32); N],
    next_id: u32,
}

impl<const N: usize> StackTable<N> {
    /// An empty table. Usable in a `static`.
    pub const fn new() -> Self {
        StackTable {
            // id 0 marks an empty slot: ids start at 1.
            slots: [(0, 0); N],
            next_id: 1,
        }
    }

    /// See [`StackSource::intern`].
    pub fn intern(&mut self, frames: &[u64]) -> Interned {
        let hash = fnv1a(frames);
        if let Some(&(h, id)) = self.slots.get(hash as usize % N.max(1)) {
            if h == hash && id != 0 {
                return Interned {
                    id,
                    known: true,
                    hash,
                };
            }
        }
        Interned {
            id: self.next_id,
            known: false,
            hash,
        }
    }

    /// See [`StackSource::sent`].
    pub fn sent(&mut self, interned: Interned) {
        if interned.id == self.next_id {
            self.next_id = self.next_id.wrapping_add(1).max(1);
        }
        if let Some(slot) = self.slots.get_mut(interned.hash as usize % N.max(1)) {
            *slot = (interned.hash, interned.id);
        }
    }
}

impl<const N: usize> Default for StackTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a over whole 32-bit words (the low half of each address: enough on
/// 32-bit targets, and a Cortex-M0 has no 64-bit multiply), then a final mix
/// so the slot index (`hash % N`) depends on every bit. One multiply per
/// frame instead of four.
fn fnv1a(frames: &[u64]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &f in frames {
        h = (h ^ f as u32).wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^ (h >> 13)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_new_until_sent_then_known() {
        let mut t = StackTable::<8>::new();
        let a = [0x100, 0x200];
        let first = t.intern(&a);
        assert!(!first.known);
        assert_eq!(t.intern(&a).id, first.id, "unsent stacks keep their id");
        t.sent(first);
        let again = t.intern(&a);
        assert!(again.known);
        assert_eq!(again.id, first.id);
        let b = t.intern(&[0x300]);
        assert!(!b.known);
        assert_ne!(b.id, first.id);
    }

    /// A source that reports one fixed stack, through a real table.
    struct Fixed(StackTable<4>);

    impl StackSource for Fixed {
        fn capture(&mut self, out: &mut [u64]) -> usize {
            out[..3].copy_from_slice(&[0x1001, 0x2002, 0x3003]);
            3
        }
        fn intern(&mut self, frames: &[u64]) -> Interned {
            self.0.intern(frames)
        }
        fn sent(&mut self, interned: Interned) {
            self.0.sent(interned)
        }
    }

    #[test]
    fn a_stream_sends_each_stack_once_and_tags_allocations() {
        extern crate std;
        use crate::frame::{Deframer, FrameEvent};
        use crate::wire::{Delta, Record, Records};
        use crate::{NoClock, Recorder, RingSink, Stream, StreamInfo};
        use core::alloc::Layout;
        use std::vec::Vec;

        let rec = Stream::with_stacks(
            RingSink::<4096>::new(),
            NoClock,
            StreamInfo::new("t"),
            Fixed(StackTable::new()),
        );
        assert!(rec.set_heap(0x2000_0000, 1024));
        let l = Layout::from_size_align(16, 4).unwrap();
        rec.alloc(l, false, || 0x2000_0010 as *mut u8);
        rec.alloc(l, false, || 0x2000_0020 as *mut u8);
        rec.dealloc(0x2000_0010 as *mut u8, l, || ());
        assert!(!rec.set_heap(0, 0), "the header is out");

        let mut bytes = Vec::new();
        rec.sink().drain(|a, b| {
            bytes.extend_from_slice(a);
            bytes.extend_from_slice(b);
            a.len() + b.len()
        });
        let mut buf = [0u8; 512];
        let mut de = Deframer::new(&mut buf);
        let mut delta = Delta::default();
        let (mut stacks, mut tagged, mut heap) = (Vec::new(), Vec::new(), None);
        let mut input = &bytes[..];
        while !input.is_empty() {
            let (n, ev) = de.push(input);
            input = &input[n..];
            if let Some(FrameEvent::Frame { records, .. }) = ev {
                for r in Records::new(records, &mut delta) {
                    match r.unwrap() {
                        Record::Stack(s) => {
                            stacks.push((s.id, s.frames.iter().collect::<Vec<_>>()))
                        }
                        Record::Alloc(a) => tagged.push(a.stack),
                        Record::HeapRegion(h) => heap = Some((h.start, h.len)),
                        _ => {}
                    }
                }
            }
        }
        assert_eq!(heap, Some((0x2000_0000, 1024)));
        assert_eq!(stacks.len(), 1, "sent once");
        assert_eq!(stacks[0].1, [0x1001, 0x2002, 0x3003]);
        assert_eq!(tagged, [Some(stacks[0].0), Some(stacks[0].0)]);
    }

    #[test]
    fn an_evicted_stack_gets_a_fresh_id() {
        let mut t = StackTable::<1>::new();
        let a = t.intern(&[1]);
        t.sent(a);
        let b = t.intern(&[2]);
        t.sent(b);
        let a2 = t.intern(&[1]);
        assert!(!a2.known);
        assert!(a2.id != a.id && a2.id != b.id, "ids are never reused");
    }
}
