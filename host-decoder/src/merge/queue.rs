//! A lane's buffered events: a queue of segments that come from, and go
//! back to, one pool shared by all lanes of a merge.
//!
//! Why not a `VecDeque<Event>` per lane: the merge buffers up to
//! [`MAX_BUFFERED`](super::MAX_BUFFERED) events (40 MiB), mostly in one or
//! two lanes, and a deque grows by doubling — copying everything and holding
//! the old and the new buffer at once, so the merge's peak was about twice
//! what it buffered, and every growth touched fresh pages. Segments are never
//! copied: a lane that drains one hands it to the pool, and the lane that
//! fills next takes it from there, so the memory is that of the events
//! buffered at the busiest moment plus one partly used segment per lane.
//!
//! A long run of one stream (a decoded batch, see `pipeline.rs`) joins a
//! lane as it is: the queue takes the vector the decoding thread filled and
//! hands back an emptied one for it to fill next
//! ([`take_whole`](EventQueue::take_whole)). Copying the events instead cost
//! the analysing thread a third of its cache misses (callgrind: 10.5M of
//! 29M L1 misses on the 1-thread churn trace), since the copy's source was
//! written on the other core and its destination last used a window ago.
//! Short runs are copied into segments of [`SEG`] events; a long run that
//! follows them first tops up the last one (so that no segment is left
//! partly used), and the rest of it joins as it is. A vector taken whole is
//! freed only once its last event is released, so the merge takes whole
//! only while few lanes hold events (`WHOLE_LANES` in `merge.rs`): the
//! memory is then that of the buffered events, one partly used segment per
//! lane, and at most one batch per lane for those few lanes.
//!
//! A vector taken whole leaves whole too when the merge releases all of it
//! at once into an empty batch ([`take_front_whole`](EventQueue::take_front_whole)):
//! the merge waits for that moment rather than release part of it (a
//! single-threaded trace is then never copied on the way), and the batch's
//! emptied vector comes back to the pool in exchange.

use crate::records::Event;

/// Events in a segment the queue fills by copying (40 KiB of them: a short
/// trace, or a lane that holds few events, does not pay for much more).
const SEG: usize = 1 << 10;
/// A run at least this long joins a lane as it is instead of being copied...
const TAKE_WHOLE: usize = SEG;
/// ... if it fills at least this share of its vector (in eighths): the
/// merge holds a window's worth of segments, and each keeps the pages its
/// fullest use touched, so a segment held a quarter full would hold four
/// times the memory of its events.
const TAKE_FILL_EIGHTHS: usize = 6;
/// Emptied segments of [`SEG`] events the pool keeps (2.5 MiB); more are
/// freed. A trace whose runs turn from short (copied) to long (taken)
/// would otherwise keep a window's worth of each kind.
const POOL_KEEP: usize = 64;
/// Emptied larger segments the pool keeps for the input side, which takes
/// them back one per run taken whole and whenever it needs a vector to fill
/// (`Merger::spare`). The merge's window swells and shrinks by several
/// batches at a time: keeping 4, and handing them back only for runs taken
/// whole, dropped 32 of the 2-thread churn trace's 37 batch vectors during
/// its decode and made new ones in fresh pages (page faults 26K; 21K now,
/// in 0.95-0.99 of the time on the 2-thread traces, interleaved runs).
const POOL_KEEP_BIG: usize = 8;

/// A segment: events in stream order from `start` on, written only at its
/// end.
struct Seg {
    v: Vec<Event>,
    start: usize,
}

impl Seg {
    #[inline]
    fn len(&self) -> usize {
        self.v.len() - self.start
    }

    fn room(&self) -> usize {
        self.v.capacity() - self.v.len()
    }
}

/// Emptied segments, shared by the lanes of one merge.
#[derive(Default)]
pub struct Pool {
    /// Of [`SEG`] events, for copies.
    small: Vec<Vec<Event>>,
    /// Larger ones (runs taken whole), to hand back to the input side.
    big: Vec<Vec<Event>>,
}

impl Pool {
    #[cold]
    fn take(&mut self) -> Seg {
        let v = self.small.pop().unwrap_or_else(|| Vec::with_capacity(SEG));
        Seg { v, start: 0 }
    }

    fn give(&mut self, seg: Seg) {
        let mut v = seg.v;
        v.clear();
        let (kind, keep) = match v.capacity() {
            c if c > SEG => (&mut self.big, POOL_KEEP_BIG),
            SEG => (&mut self.small, POOL_KEEP),
            // A vector handed in for one taken whole (see
            // `take_front_whole`) may be smaller: a segment to copy into
            // must have room.
            _ => return,
        };
        if kind.len() < keep {
            kind.push(v);
        }
    }

    /// The last emptied large segment, if one is free (whatever its size:
    /// the input side grows it as it needs, and a pool that kept the ones
    /// too small for its next run would only grow).
    pub(super) fn take_big(&mut self) -> Option<Vec<Event>> {
        self.big.pop()
    }
}

/// One lane's events in stream order.
#[derive(Default)]
pub struct EventQueue {
    /// Front segment first, none empty. A plain vector: dropping the front
    /// segment moves the others' pointers (a few hundred at most, once per
    /// segment of events), and indexing stays a plain index.
    segs: Vec<Seg>,
    len: usize,
}

impl EventQueue {
    /// Events buffered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Event slots its segments hold (buffered or not).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.segs.iter().map(|s| s.v.capacity()).sum()
    }

    /// Segments it took whole (larger than the ones it copies into).
    #[cfg(test)]
    pub fn taken(&self) -> usize {
        self.segs.iter().filter(|s| s.v.capacity() > SEG).count()
    }

    /// The last segment, if it has room for another event.
    #[inline]
    fn tail_with_room(&mut self) -> Option<&mut Seg> {
        self.segs.last_mut().filter(|s| s.room() > 0)
    }

    /// Appends `ev`, taking a segment from `pool` when the last one is full.
    #[inline(always)]
    pub fn push_back(&mut self, ev: Event, pool: &mut Pool) {
        match self.tail_with_room() {
            Some(s) => s.v.push(ev),
            None => {
                let mut s = pool.take();
                s.v.push(ev);
                self.segs.push(s);
            }
        }
        self.len += 1;
    }

    /// Appends `events`, a segment-sized copy at a time.
    pub fn extend_from_slice(&mut self, mut events: &[Event], pool: &mut Pool) {
        while !events.is_empty() {
            if self.tail_with_room().is_none() {
                self.segs.push(pool.take());
            }
            let Some(tail) = self.segs.last_mut() else {
                unreachable!("a segment was just added")
            };
            let n = events.len().min(tail.room());
            let (now, rest) = events.split_at(n);
            tail.v.extend_from_slice(now);
            self.len += n;
            events = rest;
        }
    }

    /// Appends `events`. A run of at least [`TAKE_WHOLE`] that fills most
    /// of its vector joins as it is (after topping up a partly filled
    /// segment the queue copied into), and `events` becomes an emptied
    /// vector from `pool` (or a new empty one); another run is copied and
    /// `events` left as it was.
    pub fn take_whole(&mut self, events: &mut Vec<Event>, pool: &mut Pool) {
        if events.len() < TAKE_WHOLE || events.len() * 8 < events.capacity() * TAKE_FILL_EIGHTHS {
            self.extend_from_slice(events, pool);
            return;
        }
        let top_up = match self.segs.last() {
            Some(s) if s.v.capacity() <= SEG => s.room(),
            _ => 0,
        };
        self.extend_from_slice(&events[..top_up], pool);
        let spare = pool.take_big().unwrap_or_default();
        let v = std::mem::replace(events, spare);
        self.len += v.len() - top_up;
        self.segs.push(Seg { v, start: top_up });
    }

    /// The first event.
    #[inline]
    pub fn front(&self) -> Option<&Event> {
        self.segs.first().map(|s| &s.v[s.start])
    }

    /// Events from the first on that sit in one segment (0 when empty):
    /// those [`front_at`](Self::front_at) reads.
    #[inline]
    pub fn front_len(&self) -> usize {
        self.segs.first().map_or(0, Seg::len)
    }

    /// The event `i` places after the first, `i` below
    /// [`front_len`](Self::front_len).
    #[inline]
    pub fn front_at(&self, i: usize) -> &Event {
        let s = &self.segs[0];
        &s.v[s.start + i]
    }

    /// The first `n` events, `n` at most [`front_len`](Self::front_len).
    #[inline]
    pub fn front_slice(&self, n: usize) -> &[Event] {
        match self.segs.first() {
            Some(s) => &s.v[s.start..s.start + n],
            None => &[],
        }
    }

    /// Whether the front segment is a vector taken whole that none of its
    /// events has left yet.
    #[inline]
    pub fn front_is_whole(&self) -> bool {
        self.segs
            .first()
            .is_some_and(|s| s.start == 0 && s.v.capacity() > SEG)
    }

    /// Offers the front segment's vector, all of whose events are to go, to
    /// `take`, which may swap it for an empty one (then returning true): the
    /// segment is dropped, its events gone without a copy.
    pub fn take_front_whole(
        &mut self,
        take: impl FnOnce(&mut Vec<Event>) -> bool,
        pool: &mut Pool,
    ) -> bool {
        let Some(s) = self.segs.first_mut() else {
            return false;
        };
        let n = s.len();
        if s.start != 0 || !take(&mut s.v) {
            return false;
        }
        self.len -= n;
        pool.give(self.segs.remove(0));
        true
    }

    /// Drops the first `n` events (at most [`front_len`](Self::front_len));
    /// a segment left empty goes back to `pool`.
    #[inline]
    pub fn pop_n(&mut self, n: usize, pool: &mut Pool) {
        debug_assert!(n <= self.front_len());
        if n == 0 {
            return;
        }
        self.len -= n;
        self.segs[0].start += n;
        if self.len == 0 {
            // An empty lane keeps no segment: a trace may have many threads.
            for s in self.segs.drain(..) {
                pool.give(s);
            }
        } else if self.segs[0].len() == 0 {
            // Not the last segment (events follow), so nothing more is
            // appended to it.
            pool.give(self.segs.remove(0));
        }
    }

    /// The event `i` places after the first.
    #[cfg(test)]
    pub fn get(&self, mut i: usize) -> Option<&Event> {
        if i >= self.len {
            return None;
        }
        for s in &self.segs {
            if i < s.len() {
                return Some(&s.v[s.start + i]);
            }
            i -= s.len();
        }
        None
    }

    /// Drops the first event; a segment left empty goes back to `pool`.
    #[cfg(test)]
    pub fn pop_front(&mut self, pool: &mut Pool) {
        self.pop_n(usize::from(self.len != 0), pool);
    }

    /// The events from the `start`-th on (without stepping over the ones
    /// before it one by one).
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &Event> + '_ {
        let mut skip = start;
        let mut first = 0;
        while let Some(s) = self.segs.get(first).filter(|s| skip >= s.len()) {
            skip -= s.len();
            first += 1;
        }
        self.segs[first.min(self.segs.len())..]
            .iter()
            .flat_map(|s| &s.v[s.start..])
            .skip(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Op;
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
    /// keep the order of a `VecDeque`, and drained segments are reused.
    #[test]
    fn keeps_order_across_segments_and_reuses_them() {
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
            // Bursts of pushes, then of pops, so queues span several segments
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
            for k in [0, 1, 8, 16, SEG - 1, SEG, SEG + 3] {
                assert_eq!(q[l].get(k), want[l].get(k), "step {step} k {k}");
            }
        }
        for l in 0..2 {
            assert!(q[l].iter_from(0).eq(want[l].iter()));
            assert!(q[l].iter_from(5).eq(want[l].iter().skip(5)));
        }
        let in_use: usize = q.iter().map(|x| x.segs.len()).sum();
        let held: usize = want.iter().map(|w| w.len().div_ceil(SEG)).sum();
        assert!(in_use <= held + 2, "{in_use} segments for {held}");
        assert!(
            in_use + pool.small.len() < 60_000 / SEG,
            "segments are reused"
        );
    }

    /// Runs appended at once land where single pushes would, across segment
    /// boundaries and after pops.
    #[test]
    fn extending_by_a_run_equals_pushing_each() {
        let mut pool = Pool::default();
        let (mut q, mut want) = (EventQueue::default(), VecDeque::new());
        let mut ts = 0;
        for (round, n) in [0usize, 1, 5, SEG - 7, SEG, 3 * SEG + 2, 9]
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
    fn an_emptied_queue_holds_no_segment() {
        let mut pool = Pool::default();
        let mut q = EventQueue::default();
        for t in 0..(SEG as u64 + 5) {
            q.push_back(ev(t), &mut pool);
        }
        for _ in 0..(SEG + 5) {
            q.pop_front(&mut pool);
        }
        assert!(q.is_empty() && q.front().is_none() && q.get(0).is_none());
        assert_eq!(q.segs.len(), 0);
        assert_eq!(pool.small.len(), 2);
        q.pop_front(&mut pool);
        assert!(q.is_empty());
    }

    /// Runs taken whole, runs copied and single pushes, popped in between,
    /// keep the order of a `VecDeque`. A run is taken whole when it is long
    /// and fills most of its vector, after topping up the segment the queue
    /// copied into last (no copied segment but the last is left partly
    /// used); the vector handed back is one the queue drained, once there
    /// is one.
    #[test]
    fn runs_taken_whole_keep_the_order_and_come_back() {
        let mut pool = Pool::default();
        let (mut q, mut want) = (EventQueue::default(), VecDeque::new());
        let mut ts = 0;
        let mut batch: Vec<Event> = Vec::new();
        // (run length, drain the lane completely after it, taken whole?)
        let script = [
            (3 * SEG, false, true),
            (3 * SEG - 5, false, true),
            // A third of its vector: copied.
            (SEG, false, false),
            // After the copy: tops up the copied segment, then taken.
            (3 * SEG, false, true),
            (5, false, false),
            // Two thirds: copied.
            (2 * SEG, true, false),
            (3 * SEG, false, true),
        ];
        let mut handed_back = Vec::new();
        for (round, (n, drain, taken)) in script.into_iter().enumerate() {
            batch.reserve_exact(3 * SEG);
            batch.extend((0..n).map(|i| ev(ts + i as u64)));
            ts += n as u64;
            let before = batch.as_ptr();
            q.take_whole(&mut batch, &mut pool);
            want.extend((ts - n as u64..ts).map(ev));
            if taken {
                assert!(batch.is_empty(), "round {round}");
                assert_ne!(batch.as_ptr(), before, "round {round}: taken");
                handed_back.push(batch.capacity() >= 3 * SEG);
            } else {
                assert_eq!(batch.len(), n, "round {round}: copied");
                assert_eq!(batch.as_ptr(), before, "round {round}: copied");
                batch.clear();
            }
            q.push_back(ev(ts), &mut pool);
            want.push_back(ev(ts));
            ts += 1;
            let copied = |s: &Seg| s.v.capacity() <= SEG;
            let n_segs = q.segs.len();
            assert!(
                q.segs[..n_segs.saturating_sub(1)]
                    .iter()
                    .all(|s| !copied(s) || s.room() == 0),
                "round {round}: a copied segment left partly used"
            );
            for k in [0, 1, 7, SEG - 1, SEG, 2 * SEG + 1, 4 * SEG] {
                assert_eq!(q.get(k), want.get(k), "round {round} k {k}");
            }
            assert!(q.iter_from(3).eq(want.iter().skip(3)), "round {round}");
            // Drain most of it (or all), a front run at a time.
            let keep = if drain { 0 } else { 10 };
            while q.len() > keep {
                let n = q.front_len().min(700).min(q.len() - keep);
                for i in 0..n {
                    assert_eq!(Some(q.front_at(i)), want.get(i));
                }
                q.pop_n(n, &mut pool);
                want.drain(..n);
            }
            assert_eq!(q.len(), want.len());
        }
        // Nothing came back for the first two runs taken (the queue had
        // drained none yet); drained vectors did for the later ones.
        assert_eq!(handed_back, [false, false, true, true]);
        assert!(q.iter_from(0).eq(want.iter()));
    }

    /// The pool keeps at most [`POOL_KEEP`] emptied segments of a kind.
    #[test]
    fn the_pool_keeps_a_bounded_number_of_segments() {
        let mut pool = Pool::default();
        let mut q = EventQueue::default();
        for t in 0..(3 * POOL_KEEP * SEG) as u64 {
            q.push_back(ev(t), &mut pool);
        }
        while !q.is_empty() {
            q.pop_n(q.front_len(), &mut pool);
        }
        assert_eq!(pool.small.len(), POOL_KEEP);
    }
}
