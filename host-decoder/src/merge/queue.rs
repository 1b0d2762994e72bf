//! A lane's buffered events: a queue made of fixed-size chunks that come
//! from, and go back to, one pool shared by all lanes of a merge.
//!
//! Why not a `VecDeque<Event>` per lane: the merge buffers up to
//! [`MAX_BUFFERED`](super::MAX_BUFFERED) events (64 MiB), mostly in one or
//! two lanes, and a deque grows by doubling — copying everything and holding
//! the old and the new buffer at once, so the merge's peak was about twice
//! what it buffered, and every growth touched fresh pages. Chunks are never
//! copied: a lane that drains one hands it to the pool, and the lane that
//! fills next takes it from there, so the memory is that of the events
//! buffered at the busiest moment plus one partly used chunk per lane.

use crate::records::{Event, Op};

/// log2 of the events in a chunk.
const CHUNK_SHIFT: u32 = 10;
/// Events in a chunk (64 KiB of them: a short trace, or a lane that holds
/// few events, does not pay for much more).
const CHUNK: usize = 1 << CHUNK_SHIFT;

/// [`CHUNK`] event slots. A boxed slice, not a `Vec` filled by pushes:
/// writing and reading a slot is then a plain index (measured: a `Vec`
/// chunk cost about 30 more instructions per event in the merge).
type Chunk = Box<[Event]>;

/// Free chunks, shared by the lanes of one merge.
#[derive(Default)]
pub struct Pool {
    free: Vec<Chunk>,
}

impl Pool {
    #[cold]
    fn take(&mut self) -> Chunk {
        self.free.pop().unwrap_or_else(|| {
            // Filler only: a slot is read only after it was written.
            let filler = Event {
                ts: 0,
                stream: 0,
                stack: 0,
                op: Op::ScopeExit,
            };
            vec![filler; CHUNK].into_boxed_slice()
        })
    }

    fn give(&mut self, chunk: Chunk) {
        self.free.push(chunk);
    }
}

/// One lane's events in stream order.
#[derive(Default)]
pub struct EventQueue {
    /// Front chunk first. A plain vector: dropping the front chunk moves the
    /// others' pointers (a few hundred at most, once per chunk of events),
    /// and indexing stays a plain index.
    chunks: Vec<Chunk>,
    /// Position of the first event in the first chunk.
    head: usize,
    len: usize,
}

impl EventQueue {
    /// Events buffered.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `ev`, taking a chunk from `pool` when the last one is full.
    #[inline(always)]
    pub fn push_back(&mut self, ev: Event, pool: &mut Pool) {
        // The first chunk's `head` slots before the queue's front were
        // popped, so event `i` sits at position `head + i`.
        let end = self.head + self.len;
        if end == self.chunks.len() << CHUNK_SHIFT {
            self.chunks.push(pool.take());
        }
        self.chunks[end >> CHUNK_SHIFT][end & (CHUNK - 1)] = ev;
        self.len += 1;
    }

    /// Appends `events`, a chunk-sized copy at a time.
    pub fn extend_from_slice(&mut self, mut events: &[Event], pool: &mut Pool) {
        while !events.is_empty() {
            let end = self.head + self.len;
            if end == self.chunks.len() << CHUNK_SHIFT {
                self.chunks.push(pool.take());
            }
            let at = end & (CHUNK - 1);
            let n = events.len().min(CHUNK - at);
            let (now, rest) = events.split_at(n);
            self.chunks[end >> CHUNK_SHIFT][at..at + n].copy_from_slice(now);
            self.len += n;
            events = rest;
        }
    }

    /// The first event.
    #[inline]
    pub fn front(&self) -> Option<&Event> {
        if self.len == 0 {
            return None;
        }
        self.chunks.first().map(|c| &c[self.head])
    }

    /// Events from the first on that sit in one chunk (0 when empty): those
    /// [`front_at`](Self::front_at) reads.
    #[inline]
    pub fn front_len(&self) -> usize {
        self.len.min(CHUNK - self.head)
    }

    /// The event `i` places after the first, `i` below
    /// [`front_len`](Self::front_len).
    #[inline]
    pub fn front_at(&self, i: usize) -> &Event {
        &self.chunks[0][self.head + i]
    }

    /// Drops the first `n` events (at most [`front_len`](Self::front_len));
    /// a chunk left empty goes back to `pool`.
    #[inline]
    pub fn pop_n(&mut self, n: usize, pool: &mut Pool) {
        debug_assert!(n <= self.front_len());
        if n == 0 {
            return;
        }
        self.len -= n;
        self.head += n;
        if self.len == 0 {
            // An empty lane keeps no chunk: a trace may have many threads.
            for c in self.chunks.drain(..) {
                pool.give(c);
            }
            self.head = 0;
        } else if self.head == CHUNK {
            pool.give(self.chunks.remove(0));
            self.head = 0;
        }
    }

    /// The event `i` places after the first.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Event> {
        if i >= self.len {
            return None;
        }
        let j = self.head + i;
        self.chunks
            .get(j >> CHUNK_SHIFT)
            .map(|c| &c[j & (CHUNK - 1)])
    }

    /// Drops the first event; a chunk left empty goes back to `pool`.
    #[cfg(test)]
    pub fn pop_front(&mut self, pool: &mut Pool) {
        self.pop_n(usize::from(self.len != 0), pool);
    }

    /// The events from the `start`-th on (without stepping over the ones
    /// before it).
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &Event> + '_ {
        (start..self.len).filter_map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn ev(ts: u64) -> Event {
        Event {
            ts,
            stream: 1,
            stack: 0,
            op: Op::ScopeExit,
        }
    }

    /// Pushes and pops across chunk boundaries, in two lanes sharing a pool,
    /// keep the order of a `VecDeque`, and drained chunks are reused.
    #[test]
    fn keeps_order_across_chunks_and_reuses_them() {
        let mut pool = Pool::default();
        let mut q = [EventQueue::default(), EventQueue::default()];
        let mut want = [VecDeque::new(), VecDeque::new()];
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        let mut ts = 0;
        for step in 0..60_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let l = (r >> 33) as usize % 2;
            // Bursts of pushes, then of pops, so queues span several chunks
            // and empty out now and then.
            let push = (step / 9000).is_multiple_of(2) || r.is_multiple_of(7);
            if push {
                ts += 1;
                q[l].push_back(ev(ts), &mut pool);
                want[l].push_back(ev(ts));
            } else if r.is_multiple_of(5) {
                // A run read by index, then dropped at once.
                let n = q[l].front_len().min((r >> 20) as usize % 40);
                for i in 0..n {
                    assert_eq!(Some(q[l].front_at(i)), want[l].get(i));
                }
                q[l].pop_n(n, &mut pool);
                want[l].drain(..n);
            } else {
                assert_eq!(q[l].front(), want[l].front());
                q[l].pop_front(&mut pool);
                want[l].pop_front();
            }
            assert_eq!(q[l].len(), want[l].len());
            for k in [0, 1, 8, 16, CHUNK - 1, CHUNK, CHUNK + 3] {
                assert_eq!(q[l].get(k), want[l].get(k), "step {step} k {k}");
            }
        }
        for l in 0..2 {
            assert!(q[l].iter_from(0).eq(want[l].iter()));
            assert!(q[l].iter_from(5).eq(want[l].iter().skip(5)));
        }
        let in_use: usize = q.iter().map(|x| x.chunks.len()).sum();
        let held: usize = want.iter().map(|w| w.len().div_ceil(CHUNK)).sum();
        assert!(in_use <= held + 2, "{in_use} chunks for {held}");
        assert!(
            in_use + pool.free.len() < 60_000 / CHUNK,
            "chunks are reused"
        );
    }

    /// Runs appended at once land where single pushes would, across chunk
    /// boundaries and after pops.
    #[test]
    fn extending_by_a_run_equals_pushing_each() {
        let mut pool = Pool::default();
        let (mut q, mut want) = (EventQueue::default(), VecDeque::new());
        let mut ts = 0;
        for (round, n) in [0usize, 1, 5, CHUNK - 7, CHUNK, 3 * CHUNK + 2, 9]
            .into_iter()
            .enumerate()
        {
            let run: Vec<Event> = (0..n).map(|i| ev(ts + i as u64)).collect();
            ts += n as u64;
            q.extend_from_slice(&run, &mut pool);
            want.extend(run);
            for _ in 0..round * 100 {
                q.pop_front(&mut pool);
                want.pop_front();
            }
            assert!(q.iter_from(0).eq(want.iter()), "round {round}");
        }
    }

    #[test]
    fn an_emptied_queue_holds_no_chunk() {
        let mut pool = Pool::default();
        let mut q = EventQueue::default();
        for t in 0..(CHUNK as u64 + 5) {
            q.push_back(ev(t), &mut pool);
        }
        for _ in 0..(CHUNK + 5) {
            q.pop_front(&mut pool);
        }
        assert!(q.is_empty() && q.front().is_none() && q.get(0).is_none());
        assert_eq!(q.chunks.len(), 0);
        assert_eq!(pool.free.len(), 2);
        q.pop_front(&mut pool);
        assert!(q.is_empty());
    }
}
