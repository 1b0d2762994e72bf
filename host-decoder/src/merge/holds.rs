//! Holds: the merged order's second half, on the side that owns the live set.
//!
//! The merge proper ([`Merger`](super::Merger)) orders events by time alone.
//! A free's timestamp is only a lower bound, so that order can put a free of
//! a block that crossed threads before its allocation (see the parent
//! module's docs). [`Holds`] takes the time-ordered events and, when one is
//! out of step with the live set — a free of a block not live with its size,
//! an allocation over a live address — holds its stream: that event and the
//! stream's later ones wait, while other streams' events go on, until the
//! event it waits for has been applied (the held events then follow at
//! once, each checked again) or the merged order passes the held event's
//! upper bound (for a free: the next event of its stream that read the
//! clock; for an allocation: its own timestamp; each plus the clock's
//! slack), or the input ends. Only then does it go as it is, and the
//! analyses report the error.
//!
//! The order that comes out is the one a merge that held its lanes would
//! give: every held event was released by the merge before the events that
//! arrive after it, so when its wait ends it goes before them, and the
//! events of several streams whose waits end together go in the order they
//! arrived.
//!
//! Split from the merge so that the two run on different threads: the merge
//! (its window of buffered events, the heap of streams, the copies) next to
//! the decoder, the holds next to the analyses, whose live set they ask.
//! Streams are rarely held, so on the common path an event costs nothing
//! more than its apply: [`Target::apply_checked`] checks it with the lookup
//! that applies it. A held stream's events wait here, not in the merge, so
//! they do not count towards its bound on buffered events; a hold ends at
//! the latest when the merge passes its bound, which the stream's next
//! clock reading sets (the old single-stage merge kept them the same
//! way).

use super::{needs, reads_clock, touched, Target, Want, LOOKAHEAD};
use crate::records::Event;
use std::collections::VecDeque;

/// Why a stream's first deferred event waits.
#[derive(Clone, Copy, Debug)]
struct Hold {
    addr: u64,
    want: Want,
    /// Once known: the merged order may pass the event past this timestamp.
    upper: Option<u64>,
    /// Deferred events already searched for that bound.
    scanned: usize,
}

/// A stream with deferred events.
struct Held {
    stream: u32,
    /// Its events from the held one on, each with its arrival number.
    events: VecDeque<(u64, Event)>,
    /// `None`: its wait is over and its events are being released.
    hold: Option<Hold>,
    /// The first event goes without a check (its hold expired).
    pass: bool,
}

/// Holds streams whose events are out of step with a live set (see the
/// module docs).
#[derive(Default)]
pub struct Holds {
    held: Vec<Held>,
    /// The clock's slack in ticks: holds wait this much past a bound.
    slack: u64,
    /// Events that arrived while a stream was held (orders the release of
    /// streams whose waits end together).
    arrived: u64,
    /// Holds ended because the live set changed.
    pub resolved: u64,
    /// Events released by a hold's expiry (reported as they are).
    pub expired: u64,
}

impl Holds {
    /// Holds wait `slack` ticks past their bound (an allocation's clock
    /// reading may be that early).
    pub fn set_slack(&mut self, slack: u64) {
        self.slack = slack;
    }

    /// No stream is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes events of the merged order, in order.
    #[inline]
    pub fn push_all(&mut self, events: &[Event], target: &mut impl Target) {
        let mut i = 0;
        while i < events.len() {
            if !self.held.is_empty() {
                if let Some(near) = events.get(i + LOOKAHEAD / 2) {
                    target.prefetch_near(near);
                }
                self.push_held(&events[i], events.get(i + LOOKAHEAD), target);
                i += 1;
                continue;
            }
            // Nothing held: each event is applied if it is in step with
            // the live set, or else its stream is held, without asking
            // again for each event whether a stream is held (until one is:
            // asking was 3 % of the analysing thread's instructions).
            while let Some(ev) = events.get(i) {
                if let Some(near) = events.get(i + LOOKAHEAD / 2) {
                    target.prefetch_near(near);
                }
                let ahead = events.get(i + LOOKAHEAD);
                i += 1;
                if !target.apply_checked(ev, ahead) {
                    if let Some((addr, want)) = needs(ev) {
                        self.hold(ev, addr, want);
                        break;
                    }
                }
            }
        }
    }

    /// Takes the next event of the merged order while streams are held;
    /// `ahead` is one likely applied soon (see [`Target::apply`]).
    #[inline(never)]
    fn push_held(&mut self, ev: &Event, ahead: Option<&Event>, target: &mut impl Target) {
        self.arrived += 1;
        let own = self.held.iter_mut().find(|h| h.stream == ev.stream);
        let is_held = own.is_some();
        if let Some(h) = own {
            h.events.push_back((self.arrived, *ev));
        }
        // The merge released `ev`, so it passed `ev.ts`: holds whose bound
        // lies before it end, their events going first (`ev`'s own stream's
        // too: its bound is one of its later events). A release may hold a
        // stream anew, and that hold may be over as well: until none is.
        // (Checked only when some stream delivered, a held stream that went
        // on alone stayed held, and buffered, to the end of the input.)
        while self.expire(ev.ts, false, target) {}
        if is_held {
            return;
        }
        // Only a stream held already is held by a release, so `ev`'s is not.
        if let Some((addr, want)) = needs(ev) {
            if target.live_size(addr).is_some_and(|size| !want.met(size)) {
                self.hold(ev, addr, want);
                return;
            }
        }
        target.apply(ev, ahead);
        if self.applied(ev, target) {
            self.release(target);
        }
    }

    /// Holds `ev`'s stream at `ev`.
    fn hold(&mut self, ev: &Event, addr: u64, want: Want) {
        self.arrived += 1;
        let mut events = VecDeque::new();
        events.push_back((self.arrived, *ev));
        self.held.push(Held {
            stream: ev.stream,
            events,
            hold: Some(self.hold_for(ev, addr, want)),
            pass: false,
        });
    }

    fn hold_for(&self, ev: &Event, addr: u64, want: Want) -> Hold {
        Hold {
            addr,
            want,
            // An allocation happened before its own clock reading; a free,
            // before the next reading of its stream (found later).
            upper: (want == Want::Free).then(|| ev.ts.saturating_add(self.slack)),
            scanned: 1,
        }
    }

    /// `ev` was applied: ends the holds of streams that waited for its
    /// address, if it changed what they wait for. Returns whether any
    /// ended (their events are then to be released).
    #[inline]
    fn applied(&mut self, ev: &Event, target: &impl Target) -> bool {
        let Some(a) = touched(ev) else { return false };
        let mut any = false;
        for h in &mut self.held {
            if let Some(w) = h.hold.filter(|w| w.addr == a) {
                if target
                    .live_size(w.addr)
                    .is_some_and(|size| w.want.met(size))
                {
                    // Checked again when it comes out: two streams may have
                    // waited for the same address.
                    h.hold = None;
                    self.resolved += 1;
                    any = true;
                }
            }
        }
        any
    }

    /// Ends the holds whose upper bound lies before `ts` (all of them when
    /// `all`), then releases what they held. Returns whether any ended.
    fn expire(&mut self, ts: u64, all: bool, target: &mut impl Target) -> bool {
        let slack = self.slack;
        let mut any = false;
        for h in &mut self.held {
            let Some(mut w) = h.hold else { continue };
            if w.upper.is_none() {
                w.upper = h
                    .events
                    .iter()
                    .skip(w.scanned)
                    .find(|e| reads_clock(&e.1))
                    .map(|e| e.1.ts.saturating_add(slack));
                w.scanned = h.events.len();
                h.hold = Some(w);
            }
            if all || w.upper.is_some_and(|u| u < ts) {
                h.hold = None;
                h.pass = true;
                self.expired += 1;
                any = true;
            }
        }
        if any {
            self.release(target);
        }
        any
    }

    /// Releases the events of streams no longer held, those that arrived
    /// first first, until none is left or each is held anew. (A loop, not
    /// a recursion: an event it releases may end other holds, whose
    /// streams then join the release.)
    fn release(&mut self, target: &mut impl Target) {
        loop {
            let next = self
                .held
                .iter()
                .enumerate()
                .filter(|(_, h)| h.hold.is_none())
                .min_by_key(|(_, h)| h.events.front().map_or(0, |e| e.0));
            let Some((i, _)) = next else { return };
            let h = &mut self.held[i];
            let Some(&(_, ev)) = h.events.front() else {
                self.held.swap_remove(i);
                continue;
            };
            if !std::mem::take(&mut h.pass) {
                if let Some((addr, want)) = needs(&ev) {
                    if target.live_size(addr).is_some_and(|size| !want.met(size)) {
                        self.held[i].hold = Some(self.hold_for(&ev, addr, want));
                        continue;
                    }
                }
            }
            h.events.pop_front();
            target.apply(&ev, None);
            self.applied(&ev, target);
        }
    }

    /// The input ended (or the session did): every hold ends, in turn,
    /// until nothing is held.
    pub fn flush(&mut self, target: &mut impl Target) {
        while !self.held.is_empty() {
            self.expire(u64::MAX, true, target);
            // Streams left with nothing deferred go.
            self.held.retain(|h| !h.events.is_empty());
        }
    }
}
