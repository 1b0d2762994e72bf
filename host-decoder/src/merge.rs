//! Merge: the per-thread streams put back into one order.
//!
//! Within a stream, events keep their recorded order. Across streams they are
//! ordered by timestamp, frees before allocations at equal timestamps: an
//! allocation's timestamp is read after the allocator returned and a free's is
//! a lower bound of its moment, so "the free of an address before the
//! allocation that reuses it" holds in the merged order whatever thread did
//! either (a realloc's release half is ordered at the stream's previous
//! timestamp for the same reason).
//!
//! A writer drains per-thread rings in turns, so the file holds stretches of
//! each thread. The merge buffers events per stream and releases the earliest
//! head once no open stream could still deliver an earlier one: a stream with
//! nothing buffered can only continue at or after the last timestamp it
//! delivered. A stream that stays silent without ending would hold everything
//! back, so the buffer is bounded ([`MAX_BUFFERED`]); past it the earliest
//! event is released anyway, and an event that later turns out to be earlier
//! than one already released is counted in [`Merger::late`]. A stream seen for
//! the first time cannot be waited for; [`HOLD_BACK`] events stay buffered so
//! that a new thread's first events still sort in.
//!
//! Memory: bounded by [`MAX_BUFFERED`] events, whatever the trace's length.

use crate::records::Event;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Most events buffered before the earliest is released regardless.
pub const MAX_BUFFERED: usize = 1 << 20;
/// Events kept buffered while input keeps coming, so that a stream seen for
/// the first time still sorts in. A writer that drains many busy threads can
/// put a new thread's first frame thousands of events after records that are
/// later in time (4096 was measured too small on a 4-thread trace: its late
/// events showed as spurious unknown frees); 2^18 events is about 16 MiB.
pub const HOLD_BACK: usize = 1 << 18;
/// How far ahead [`Merger::drain_ahead`] shows an event: far enough that a
/// prefetch started now lands before the event is applied.
pub const LOOKAHEAD: usize = 8;

struct Lane {
    queue: VecDeque<Event>,
    /// Ended streams cannot deliver more.
    closed: bool,
    last_ts: u64,
}

/// Key of a lane's head in the heap: timestamp, frees first, stream order.
type HeadKey = Reverse<(u64, u8, u32)>;

/// Merges per-stream events into one stream.
#[derive(Default)]
pub struct Merger {
    lanes: Vec<Lane>,
    lane_of: FxHashMap<u32, u32>,
    heads: BinaryHeap<HeadKey>,
    buffered: usize,
    /// Events that arrived earlier than one already released.
    pub late: u64,
    /// The last stream pushed and its lane: a frame's events share a stream.
    last: Option<(u32, u32)>,
    released_ts: u64,
}

/// Asks the CPU to load the buffered event `e` (both cache lines it may
/// span). Only a hint.
#[inline]
fn prefetch_event(e: Option<&Event>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = e {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (e as *const Event).cast::<i8>();
        // SAFETY: `p` and `p + size_of::<Event>() - 1` lie within the event;
        // a prefetch neither reads memory architecturally nor faults.
        unsafe {
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p.add(std::mem::size_of::<Event>() - 1), _MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = e;
}

#[inline]
fn key(ev: &Event, lane: u32) -> HeadKey {
    Reverse((ev.ts, u8::from(!ev.op.is_release()), lane))
}

impl Merger {
    /// An empty merger.
    pub fn new() -> Self {
        Merger::default()
    }

    #[inline]
    fn lane(&mut self, stream: u32) -> u32 {
        if let Some((s, l)) = self.last {
            if s == stream {
                return l;
            }
        }
        if let Some(&l) = self.lane_of.get(&stream) {
            self.last = Some((stream, l));
            return l;
        }
        let l = self.lanes.len() as u32;
        self.lanes.push(Lane {
            queue: VecDeque::new(),
            closed: false,
            last_ts: 0,
        });
        self.lane_of.insert(stream, l);
        l
    }

    /// Nothing is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }

    /// Adds an event of its stream, in stream order.
    #[inline]
    pub fn push(&mut self, ev: Event) {
        let l = self.lane(ev.stream);
        let lane = &mut self.lanes[l as usize];
        lane.last_ts = lane.last_ts.max(ev.ts);
        if lane.queue.is_empty() {
            self.heads.push(key(&ev, l));
        }
        lane.queue.push_back(ev);
        self.buffered += 1;
    }

    /// The stream ended: it will deliver nothing more.
    pub fn close(&mut self, stream: u32) {
        let l = self.lane(stream);
        self.lanes[l as usize].closed = true;
    }

    /// Releases, in merged order, every event that can no longer be preceded
    /// by one still to come.
    pub fn drain(&mut self, mut each: impl FnMut(&Event)) {
        self.drain_ahead(|e, _| each(e));
    }

    /// [`drain`](Self::drain), also showing each event's successor
    /// [`LOOKAHEAD`] places on in its stream (likely released soon), so that
    /// its lookup can be prefetched.
    pub fn drain_ahead(&mut self, mut each: impl FnMut(&Event, Option<&Event>)) {
        if self.buffered <= HOLD_BACK {
            return;
        }
        // Computed once per call: during the loop a lane only ever becomes
        // empty (its last timestamp then lowers the bound, below).
        let mut bound = self
            .lanes
            .iter()
            .filter(|x| x.queue.is_empty() && !x.closed)
            .map(|x| x.last_ts)
            .min()
            .unwrap_or(u64::MAX);
        // An open stream with nothing buffered may still deliver an event at
        // `bound`; frees sort before allocations at equal timestamps.
        let blocked = |k: &(u64, u8, u32), bound: u64, buffered: usize| {
            buffered <= MAX_BUFFERED && (k.0 > bound || (k.0 == bound && k.1 != 0))
        };
        // The earliest lane releases a run of events while its head stays
        // ahead of the runner-up (the heap's next top): a writer drains each
        // thread in stretches, so most events leave without touching the heap.
        // Keys are unique (they end with the lane), so the order is exactly
        // that of releasing one heap top at a time.
        while self.buffered > HOLD_BACK {
            let Some(Reverse(k)) = self.heads.pop() else {
                return;
            };
            if blocked(&k, bound, self.buffered) {
                self.heads.push(Reverse(k));
                return;
            }
            let l = k.2;
            let runner_up = self.heads.peek().map(|r| r.0);
            let lane = &mut self.lanes[l as usize];
            while let Some(ev) = lane.queue.pop_front() {
                self.buffered -= 1;
                if ev.ts < self.released_ts {
                    self.late += 1;
                }
                self.released_ts = self.released_ts.max(ev.ts);
                // The buffered events were written a window ago and have
                // left the cache: fetch the ones a lookahead further on, so
                // that the lookahead's own read (next call) finds them.
                prefetch_event(lane.queue.get(2 * LOOKAHEAD));
                each(&ev, lane.queue.get(LOOKAHEAD));
                let Some(next) = lane.queue.front() else {
                    if !lane.closed {
                        bound = bound.min(lane.last_ts);
                    }
                    break;
                };
                let Reverse(nk) = key(next, l);
                if self.buffered <= HOLD_BACK
                    || runner_up.is_some_and(|r| nk > r)
                    || blocked(&nk, bound, self.buffered)
                {
                    self.heads.push(Reverse(nk));
                    break;
                }
            }
        }
    }

    /// Releases everything (end of input, or a session reset).
    pub fn flush(&mut self, mut each: impl FnMut(&Event)) {
        while let Some(Reverse((_, _, l))) = self.heads.pop() {
            let lane = &mut self.lanes[l as usize];
            let Some(ev) = lane.queue.pop_front() else {
                continue;
            };
            self.buffered -= 1;
            if let Some(next) = lane.queue.front() {
                let k = key(next, l);
                self.heads.push(k);
            }
            if ev.ts < self.released_ts {
                self.late += 1;
            }
            self.released_ts = self.released_ts.max(ev.ts);
            each(&ev);
        }
        self.lanes.clear();
        self.lane_of.clear();
        self.last = None;
        self.released_ts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Op, NO_STACK};

    fn ev(stream: u32, ts: u64, free: bool) -> Event {
        let op = if free {
            Op::Dealloc {
                addr: ts,
                size: 1,
                align: 1,
                ts_exact: false,
            }
        } else {
            Op::Alloc {
                addr: ts,
                size: 1,
                align: 1,
                zeroed: false,
            }
        };
        Event {
            ts,
            stream,
            stack: NO_STACK,
            op,
        }
    }

    #[test]
    fn merges_by_time_keeps_stream_order_and_frees_first() {
        let mut m = Merger::new();
        // Stream 1 in order; stream 2 delivered later but earlier in time.
        for (ts, free) in [(1, false), (5, false), (5, true), (9, false)] {
            m.push(ev(1, ts, free));
        }
        for (ts, free) in [(2, false), (5, false), (5, true)] {
            m.push(ev(2, ts, free));
        }
        let mut out = Vec::new();
        m.flush(|e| out.push((e.stream, e.ts, e.op.is_release())));
        assert_eq!(
            out,
            vec![
                (1, 1, false),
                (2, 2, false),
                (1, 5, false),
                (1, 5, true),
                (2, 5, false),
                (2, 5, true),
                (1, 9, false)
            ]
        );
        assert_eq!(m.late, 0);
    }

    #[test]
    fn an_idle_open_stream_holds_back_later_events() {
        let mut m = Merger::new();
        m.push(ev(2, 100, false));
        let mut out = Vec::new();
        for ts in 0..(HOLD_BACK as u64 + 100) {
            m.push(ev(1, 200 + ts, false));
        }
        m.drain(|e| out.push(e.ts));
        // Stream 2's event goes first; then stream 2 is open with nothing
        // buffered and may still deliver something at ts 100: all of stream 1
        // waits.
        assert_eq!(out, vec![100]);
        // Once it ends, stream 1 flows down to the hold-back window.
        m.close(2);
        m.push(ev(1, 10_000, false));
        m.drain(|e| out.push(e.ts));
        assert_eq!(out.len(), 1 + 101);
        assert_eq!(out[1], 200);
        assert_eq!(m.late, 0);
        // Past the bound on buffered events, the earliest goes anyway.
        let mut m = Merger::new();
        m.push(ev(2, 5, false));
        m.push(ev(3, 1, false));
        let mut n = 0;
        m.drain(|_| n += 1);
        for ts in 0..MAX_BUFFERED as u64 {
            m.push(ev(1, 10 + ts, false));
        }
        m.drain(|_| n += 1);
        assert!(n >= 2);
        let mut rest = 0;
        m.flush(|_| rest += 1);
        assert_eq!(n + rest, 2 + MAX_BUFFERED);
    }
}
