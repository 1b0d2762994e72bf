//! Analyses: everything computed from the merged stream, in one streaming
//! pass over it (the exact peak's live set needs a second pass over a file, see
//! [`peak`]). Each submodule holds one view; [`Analyses::apply`] feeds an event
//! to the live [`State`] and to every view. Memory grows with live blocks,
//! sites, threads, scopes and names — never with the number of events.

pub mod attribution;
pub mod errors;
pub mod fragmentation;
pub mod histograms;
pub mod peak;
pub mod sites;
pub mod stream_map;
pub mod temporaries;
pub mod thread_timeline;
pub mod timeline;
pub mod totals;

use crate::records::{Align, Event, Op};
use crate::state::{Block, State, NONE};
use attribution::Attribution;
use errors::{ErrorKind, Errors, HeapError};
use histograms::Log2Histogram;
use peak::Peak;
use sites::Sites;
use temporaries::Temporaries;
use totals::Totals;

/// A user mark (`mark!`), with what was live then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkAt {
    /// Interned name.
    pub name: u32,
    /// Timestamp.
    pub ts: u64,
    /// Live bytes then.
    pub live_bytes: u64,
    /// Live blocks then.
    pub live_blocks: u64,
}

/// Most marks kept.
pub const MAX_MARKS: usize = 1000;

/// All views of one session.
#[derive(Default)]
pub struct Analyses {
    /// Calls and bytes.
    pub totals: Totals,
    /// Current and peak.
    pub peak: Peak,
    /// Per call site.
    pub sites: Sites,
    /// Temporaries.
    pub temporaries: Temporaries,
    /// Requested sizes of successful allocs.
    pub sizes: Log2Histogram,
    /// Lifetimes of freed blocks (ticks).
    pub lifetimes: Log2Histogram,
    /// Threads, scopes, names, cross-thread frees.
    pub attribution: Attribution,
    /// Heap errors.
    pub errors: Errors,
    /// User marks.
    pub marks: Vec<MarkAt>,
    /// Live bytes over time, downsampled to a fixed number of buckets.
    pub timeline: timeline::Timeline,
    /// Live bytes over time per thread (blocks it allocated), downsampled.
    pub thread_timelines: thread_timeline::ThreadTimelines,
    /// Whether the live set must be copied at each new peak (input that can
    /// be read only once), whatever it costs.
    pub incremental_peak: bool,
    /// Site counters copied so far for the one-pass peak live set.
    snapshot_cost: u64,
    /// A file's one-pass copies cost more than their budget: the second pass
    /// will collect the live set instead.
    pub snapshot_abandoned: bool,
    /// Events applied so far.
    events_seen: u64,
    /// The live set at the peak, by site: `(site, bytes, blocks)`.
    pub peak_sites: Option<Vec<(u32, u64, u64)>>,
    /// Timestamp of the session's first heap event.
    pub first_ts: Option<u64>,
    /// Stashed old blocks between a realloc's release and allocation halves.
    pending_realloc: stream_map::StreamMap<Option<Released>>,
}

/// What a realloc's release half leaves for its allocation half, the next
/// event of its stream.
#[derive(Clone, Copy)]
struct Released {
    /// The old address and the size passed in.
    addr: u64,
    size: u64,
    /// The block that was live there, if any.
    block: Option<Block>,
}

impl Analyses {
    /// Empty views.
    pub fn new(incremental_peak: bool) -> Self {
        Analyses {
            incremental_peak,
            ..Analyses::default()
        }
    }

    /// Sets the short-lived threshold from the trace's clock.
    pub fn set_clock(&mut self, ticks_per_second: u64, short_lived_ns: u64) {
        self.temporaries.threshold_ns = short_lived_ns;
        if ticks_per_second > 0 {
            let t =
                (u128::from(ticks_per_second) * u128::from(short_lived_ns) / 1_000_000_000) as u64;
            self.temporaries.threshold_ticks = Some(t.max(1));
        }
    }

    /// Before live bytes decrease: in incremental mode, a maximum reached since
    /// the last decrease is the newest peak, and the live set is still as it was.
    ///
    /// A file could be read a second time instead, so there the copies are
    /// made only while they stay cheap: at most one site counter copied per
    /// event on average (after a first million). Past that budget (a trace
    /// that reaches a new peak between most of its frees, with many sites)
    /// the copy is abandoned and the second pass does the work.
    #[inline]
    fn before_decrease(&mut self) {
        if self.peak.pending_capture {
            self.peak.pending_capture = false;
            if self.snapshot_abandoned {
                return;
            }
            self.snapshot_cost += self.sites.len() as u64;
            if !self.incremental_peak && self.snapshot_cost > self.events_seen + 1_000_000 {
                self.snapshot_abandoned = true;
                self.peak_sites = None;
                return;
            }
            self.peak_sites = Some(self.sites.live());
        }
    }

    /// End of the session: capture a peak reached by the last events.
    pub fn finish(&mut self, state: &State) {
        self.before_decrease();
        for b in state.live.values() {
            self.sites
                .end_chain(b.origin_site, b.reallocs, b.first_size, b.size);
        }
    }

    /// Feeds one event of the merged stream. `state.seq` is its sequence number.
    #[inline]
    pub fn apply(&mut self, state: &mut State, ev: &Event) {
        let seq = state.seq;
        self.begin();
        match ev.op {
            Op::Alloc {
                addr,
                size,
                align,
                zeroed,
            } => {
                self.count_alloc(ev.ts, size, zeroed);
                let block = state.new_block(ev, size, align);
                // The block's site, thread and scope are the event's: the
                // allocation is counted where its block is.
                self.on_new_block(state, ev, addr, block, size, true);
            }
            Op::AllocFailed { .. } => {
                self.first_alloc(ev.ts);
                self.totals.allocations += 1;
                self.totals.failed_allocs += 1;
                self.sites.get(ev.stack).failed += 1;
            }
            Op::Dealloc {
                addr,
                size,
                align,
                ts_exact,
            } => {
                self.count_free(ts_exact);
                // The freeing thread's `frees` is counted by on_freed (in
                // the lookup it makes anyway) or below.
                match state.remove(addr, ev.stack, ev.stream) {
                    Some(b) => self.freed(ev, seq, addr, b, (size, align), ts_exact),
                    None => {
                        self.attribution.threads.entry(ev.stream).frees += 1;
                        let (kind, block, first) = match state.recently_freed(addr) {
                            Some(f) => (
                                ErrorKind::DoubleFree,
                                Some(f.block),
                                Some((f.free_stack, f.free_stream)),
                            ),
                            None => (ErrorKind::UnknownFree, None, None),
                        };
                        self.error(kind, ev, seq, addr, (size, align), block, first);
                    }
                }
            }
            Op::ReallocRelease {
                old_addr,
                old_size,
                align,
            } => {
                let old = state.take(old_addr);
                match &old {
                    Some(b) => {
                        if b.size != old_size || b.align() != align {
                            self.error(
                                ErrorKind::ReallocLayoutMismatch,
                                ev,
                                seq,
                                old_addr,
                                (old_size, align),
                                Some(b.info()),
                                None,
                            );
                        }
                        self.before_decrease();
                        self.on_block_gone(b, ev.ts);
                    }
                    None => {
                        let (block, first) = match state.recently_freed(old_addr) {
                            Some(f) => (Some(f.block), Some((f.free_stack, f.free_stream))),
                            None => (None, None),
                        };
                        self.error(
                            ErrorKind::ReallocUnknown,
                            ev,
                            seq,
                            old_addr,
                            (old_size, align),
                            block,
                            first,
                        );
                    }
                }
                *self.pending_realloc.entry(ev.stream) = Some(Released {
                    addr: old_addr,
                    size: old_size,
                    block: old,
                });
            }
            Op::Realloc {
                new_addr,
                new_size,
                align,
            } => {
                self.totals.reallocations += 1;
                // The release half is the previous event of this stream (the
                // merge and the holds keep a stream's order); without it
                // (never decoded so) the old block is unknown.
                let Released {
                    addr: old_addr,
                    size: old_size,
                    block: old,
                } = self
                    .pending_realloc
                    .get_mut(ev.stream)
                    .and_then(Option::take)
                    .unwrap_or(Released {
                        addr: new_addr,
                        size: 0,
                        block: None,
                    });
                let old_len = old.map_or(old_size, |b| b.size);
                self.totals.bytes_allocated = self
                    .totals
                    .bytes_allocated
                    .saturating_add(new_size.saturating_sub(old_len));
                self.totals.bytes_freed = self
                    .totals
                    .bytes_freed
                    .saturating_add(old_len.saturating_sub(new_size));
                let mut block = state.new_block(ev, new_size, align);
                if let Some(o) = old {
                    block.origin_site = o.origin_site;
                    block.origin_ts = o.origin_ts;
                    block.first_size = o.first_size;
                    block.reallocs = o.reallocs.saturating_add(1);
                    block.scope = o.scope;
                    block.name = o.name;
                    if new_addr != old_addr {
                        let g = self.sites.get(o.origin_site);
                        g.moved += 1;
                        g.copied_bytes = g.copied_bytes.saturating_add(old_len.min(new_size));
                    }
                    if o.name != NONE {
                        if let Some(n) = self.attribution.names.get_mut(&o.name) {
                            n.reallocs += 1;
                            n.max_size = n.max_size.max(new_size);
                        }
                    }
                } else {
                    block.reallocs = 1;
                    block.first_size = old_size;
                }
                self.on_new_block(state, ev, new_addr, block, new_size, false);
                let s = self.sites.get(ev.stack);
                s.reallocs += 1;
                s.bytes = s.bytes.saturating_add(new_size.saturating_sub(old_len));
                s.max_size = s.max_size.max(new_size);
                let t = self.attribution.threads.entry(ev.stream);
                t.bytes = t.bytes.saturating_add(new_size.saturating_sub(old_len));
            }
            Op::ReallocFailed { .. } => {
                self.totals.reallocations += 1;
                self.totals.failed_reallocs += 1;
                self.sites.get(ev.stack).failed += 1;
            }
            Op::Name { addr, name } => {
                let mut n = attribution::NameStats::default();
                if let Some(b) = state.live.get_mut(&addr) {
                    b.name = name;
                    n.resolved = true;
                    n.site = b.origin_site;
                    n.size_at_naming = b.size;
                    n.max_size = b.size;
                }
                self.attribution.names.insert(name, n);
            }
            Op::ScopeEnter { name } => {
                self.attribution.scopes.entry(name).or_default().entered += 1;
                state.apply_scope(ev);
            }
            Op::ScopeExit => state.apply_scope(ev),
            Op::Mark { name } => {
                if self.marks.len() < MAX_MARKS {
                    self.marks.push(MarkAt {
                        name,
                        ts: ev.ts,
                        live_bytes: self.peak.current_bytes,
                        live_blocks: self.peak.current_blocks,
                    });
                }
            }
        }
        self.end(state, ev);
    }

    /// [`apply`](Self::apply) of an event that may be out of step with the
    /// live set (see `merge.rs`): an allocation over a live block, a free of
    /// a block that is not live with its size. Such an event changes
    /// nothing and `Some(false)` is returned. Allocations and frees are
    /// checked by the lookup that applies them (the merge's own check took
    /// a lookup of its own: a fifth of the analysing thread's
    /// instructions); for other events `None` says to check and apply them
    /// as usual.
    #[inline]
    pub fn apply_checked(&mut self, state: &mut State, ev: &Event) -> Option<bool> {
        match ev.op {
            Op::Alloc {
                addr,
                size,
                align,
                zeroed,
            } => {
                let block = state.new_block(ev, size, align);
                if !state.insert_vacant(addr, block) {
                    return Some(false);
                }
                self.begin();
                self.count_alloc(ev.ts, size, zeroed);
                self.count_new_block(state, ev, block, size, true);
                self.end(state, ev);
            }
            Op::Dealloc {
                addr,
                size,
                align,
                ts_exact,
            } => {
                let seq = state.seq;
                let Some(b) = state.remove_sized(addr, Some(size), ev.stack, ev.stream) else {
                    return Some(false);
                };
                self.begin();
                self.count_free(ts_exact);
                self.freed(ev, seq, addr, b, (size, align), ts_exact);
                self.end(state, ev);
            }
            _ => return None,
        }
        Some(true)
    }

    /// What every event counts first.
    #[inline(always)]
    fn begin(&mut self) {
        self.events_seen += 1;
    }

    /// An allocation (successful or not) at `ts`: the session's first one
    /// sets [`first_ts`](Self::first_ts). Checked in the allocations' arms,
    /// not for every event.
    #[inline(always)]
    fn first_alloc(&mut self, ts: u64) {
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
    }

    /// What every event counts last; the next event's sequence number.
    #[inline(always)]
    fn end(&mut self, state: &mut State, ev: &Event) {
        self.timeline.add(state.seq, ev.ts, self.peak.current_bytes);
        state.seq += 1;
    }

    #[inline(always)]
    fn count_alloc(&mut self, ts: u64, size: u64, zeroed: bool) {
        self.first_alloc(ts);
        self.totals.allocations += 1;
        self.totals.zeroed += u64::from(zeroed);
        self.totals.bytes_allocated = self.totals.bytes_allocated.saturating_add(size);
        self.sizes.add(size);
    }

    #[inline(always)]
    fn count_free(&mut self, ts_exact: bool) {
        self.totals.deallocations += 1;
        self.totals.exact_free_ts += u64::from(ts_exact);
    }

    /// `ev` freed `b` at `addr`, passing `layout`.
    #[inline(always)]
    fn freed(
        &mut self,
        ev: &Event,
        seq: u64,
        addr: u64,
        b: &Block,
        layout: (u64, Align),
        ts_exact: bool,
    ) {
        if b.size != layout.0 || b.align() != layout.1 {
            self.error(
                ErrorKind::DeallocLayoutMismatch,
                ev,
                seq,
                addr,
                layout,
                Some(b.info()),
                None,
            );
        }
        self.before_decrease();
        self.totals.bytes_freed = self.totals.bytes_freed.saturating_add(b.size);
        self.on_freed(b, ev, ts_exact);
    }

    /// A block became live at `addr` (alloc, or the new half of a realloc);
    /// `alloc`: an allocation, also counted as one at its site, thread and
    /// scope (one lookup of each for both).
    // Always inlined: a call passed the block (72 bytes) by copy and saved
    // and restored registers, about 20 instructions per allocation.
    #[inline(always)]
    fn on_new_block(
        &mut self,
        state: &mut State,
        ev: &Event,
        addr: u64,
        block: Block,
        size: u64,
        alloc: bool,
    ) {
        if let Some(over) = state.insert(addr, block) {
            // The previous block's free was lost or misordered: account it as gone.
            self.error(
                ErrorKind::AllocOverLive,
                ev,
                state.seq,
                addr,
                (size, block.align()),
                Some(over.info()),
                None,
            );
            self.before_decrease();
            self.on_block_gone(&over, ev.ts);
        }
        self.count_new_block(state, ev, block, size, alloc);
    }

    /// What [`on_new_block`](Self::on_new_block) counts once the block is
    /// in the live set.
    #[inline(always)]
    fn count_new_block(&mut self, state: &State, ev: &Event, block: Block, size: u64, alloc: bool) {
        let s = self.sites.get(block.site);
        s.live_bytes = s.live_bytes.saturating_add(size);
        s.live_blocks += 1;
        if s.live_bytes > s.max_live_bytes {
            s.max_live_bytes = s.live_bytes;
            s.max_live_blocks = s.live_blocks;
        }
        if alloc {
            s.allocs += 1;
            s.bytes = s.bytes.saturating_add(size);
            if s.allocs == 1 || size < s.min_size {
                s.min_size = size;
            }
            s.max_size = s.max_size.max(size);
        }
        // `block.stream` is the event's: the block is new.
        let t = self.attribution.threads.entry(block.stream);
        t.last_alloc = Some(block.generation());
        t.live_bytes = t.live_bytes.saturating_add(size);
        t.live_blocks += 1;
        if alloc {
            t.allocs += 1;
            t.bytes = t.bytes.saturating_add(size);
        }
        self.thread_timelines.add(block.stream, ev.ts, t.live_bytes);
        if block.scope != NONE {
            let sc = self.attribution.scopes.entry(block.scope).or_default();
            sc.live_bytes = sc.live_bytes.saturating_add(size);
            sc.live_blocks += 1;
            if alloc {
                sc.allocs += 1;
                sc.bytes = sc.bytes.saturating_add(size);
            }
        }
        self.peak.grow(size, 1, state.seq, ev.ts);
    }

    /// A block stopped being live (freed, or released by a realloc).
    #[inline]
    fn on_block_gone(&mut self, b: &Block, ts: u64) {
        self.peak.shrink(b.size, 1);
        let s = self.sites.get(b.site);
        s.live_bytes -= b.size.min(s.live_bytes);
        s.live_blocks = s.live_blocks.saturating_sub(1);
        if let Some(t) = self.attribution.threads.get_mut(b.stream) {
            t.live_bytes = t.live_bytes.saturating_sub(b.size);
            t.live_blocks = t.live_blocks.saturating_sub(1);
            self.thread_timelines.add(b.stream, ts, t.live_bytes);
        }
        if b.scope != NONE {
            if let Some(sc) = self.attribution.scopes.get_mut(&b.scope) {
                sc.live_bytes = sc.live_bytes.saturating_sub(b.size);
                sc.live_blocks = sc.live_blocks.saturating_sub(1);
            }
        }
    }

    /// A block was freed by `ev` (a dealloc, not a realloc): what
    /// [`on_block_gone`](Self::on_block_gone) does, and what only a free
    /// tells (lifetime, temporaries, cross-thread frees), with one lookup of
    /// the block's site and thread for both.
    #[inline(always)]
    fn on_freed(&mut self, b: &Block, ev: &Event, ts_exact: bool) {
        self.peak.shrink(b.size, 1);
        let lifetime = ev.ts.saturating_sub(b.origin_ts);
        self.lifetimes.add(lifetime);
        if b.reallocs != 0 {
            self.sites
                .end_chain(b.origin_site, b.reallocs, b.first_size, b.size);
        }
        let cross = b.stream != ev.stream;
        // The block's thread has an entry (made when it allocated the block).
        let mut temporary = false;
        if let Some(t) = self.attribution.threads.get_mut(b.stream) {
            temporary = !cross && t.last_alloc == Some(b.generation());
            t.frees += u64::from(!cross);
            t.live_bytes = t.live_bytes.saturating_sub(b.size);
            t.live_blocks = t.live_blocks.saturating_sub(1);
            self.thread_timelines.add(b.stream, ev.ts, t.live_bytes);
        }
        let short = self
            .temporaries
            .threshold_ticks
            .is_some_and(|t| lifetime < t);
        if temporary {
            self.temporaries.count += 1;
            self.temporaries.bytes = self.temporaries.bytes.saturating_add(b.size);
        }
        if short {
            self.temporaries.short_lived += 1;
            self.temporaries.short_lived_exact += u64::from(ts_exact);
        }
        let s = self.sites.get(b.site);
        s.live_bytes -= b.size.min(s.live_bytes);
        s.live_blocks = s.live_blocks.saturating_sub(1);
        s.freed += 1;
        s.lifetime_sum = s.lifetime_sum.saturating_add(lifetime);
        s.temporaries += u64::from(temporary);
        s.short_lived += u64::from(short);
        s.cross_thread_frees += u64::from(cross);
        if b.scope != NONE {
            if let Some(sc) = self.attribution.scopes.get_mut(&b.scope) {
                sc.live_bytes = sc.live_bytes.saturating_sub(b.size);
                sc.live_blocks = sc.live_blocks.saturating_sub(1);
            }
        }
        if cross {
            let c = &mut self.attribution.cross_thread;
            c.count += 1;
            c.bytes = c.bytes.saturating_add(b.size);
            let p = c.pairs.entry((b.stream, ev.stream)).or_default();
            p.0 += 1;
            p.1 = p.1.saturating_add(b.size);
            let t = self.attribution.threads.entry(ev.stream);
            t.frees += 1;
            t.foreign_frees += 1;
        }
        if b.name != NONE {
            if let Some(n) = self.attribution.names.get_mut(&b.name) {
                n.freed = true;
                n.lifetime = Some(lifetime);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn error(
        &mut self,
        kind: ErrorKind,
        ev: &Event,
        seq: u64,
        addr: u64,
        layout: (u64, Align),
        block: Option<(u32, u32, u64, u64)>,
        first_free: Option<(u32, u32)>,
    ) {
        self.errors.push(HeapError {
            kind,
            addr,
            ts: ev.ts,
            seq,
            stream: ev.stream,
            stack: ev.stack,
            layout: (layout.0, layout.1.bytes()),
            block,
            first_free,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::NO_STACK;

    fn ev(stream: u32, ts: u64, op: Op) -> Event {
        Event {
            ts,
            stream,
            stack: NO_STACK,
            op,
        }
    }

    fn alloc(addr: u64, size: u64) -> Op {
        Op::Alloc {
            addr,
            size,
            align: Align::new(8),
            zeroed: false,
        }
    }

    fn free(addr: u64, size: u64) -> Op {
        Op::Dealloc {
            addr,
            size,
            align: Align::new(8),
            ts_exact: false,
        }
    }

    /// `apply_checked` refuses, changing nothing, exactly what the merge's
    /// check holds (an allocation over a live block, a free of a block not
    /// live with its size), and otherwise does what `apply` does.
    #[test]
    fn a_checked_apply_refuses_what_is_out_of_step_and_otherwise_applies() {
        let events = [
            ev(1, 10, alloc(0x100, 16)),
            ev(1, 11, alloc(0x200, 32)),
            ev(2, 12, free(0x100, 16)),
            ev(1, 13, alloc(0x100, 8)),
            ev(1, 14, free(0x200, 32)),
        ];
        let (mut plain, mut plain_state) = (Analyses::new(false), State::new());
        let (mut checked, mut checked_state) = (Analyses::new(false), State::new());
        for e in &events {
            plain.apply(&mut plain_state, e);
            assert_eq!(checked.apply_checked(&mut checked_state, e), Some(true));
            // Whichever of these is out of step now is refused.
            for probe in [
                alloc(0x100, 8),
                free(0x100, 16),
                free(0x100, 8),
                free(0x300, 8),
            ] {
                let out_of_step = match probe {
                    Op::Alloc { addr, .. } => checked_state.live.get(&addr).is_some(),
                    Op::Dealloc { addr, size, .. } => {
                        checked_state.live.get(&addr).map(|b| b.size) != Some(size)
                    }
                    _ => unreachable!(),
                };
                if out_of_step {
                    assert_eq!(
                        checked.apply_checked(&mut checked_state, &ev(3, 20, probe)),
                        Some(false)
                    );
                }
            }
            assert_eq!(checked_state.seq, plain_state.seq);
            assert_eq!(checked_state.live_bytes, plain_state.live_bytes);
            assert_eq!(checked.totals, plain.totals);
            assert_eq!(checked.peak, plain.peak);
            assert_eq!(checked.events_seen, plain.events_seen);
        }
        assert!(checked.errors.examples.is_empty() && plain.errors.examples.is_empty());
        // Other events are left to the caller's own check.
        let mark = ev(1, 30, Op::ScopeExit);
        assert_eq!(checked.apply_checked(&mut checked_state, &mark), None);
    }
}
