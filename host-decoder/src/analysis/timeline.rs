//! Live bytes over time, bounded: a fixed number of buckets whose width
//! doubles (merging neighbours) whenever the trace outgrows them, so memory
//! stays constant however long the trace is. Each bucket keeps the least,
//! the most and the last live byte count seen in it, so a chart drawn from
//! it never hides a spike.
//!
//! Two series are kept side by side: one by timestamp (what a chart should
//! show when the trace has a clock) and one by event number (the fallback
//! when timestamps only order events, e.g. firmware without a clock).

/// Buckets per series.
pub const BUCKETS: usize = 512;

/// One bucket: least, most and last live bytes in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Slot {
    /// Least live bytes seen in the bucket.
    pub min: u64,
    /// Most live bytes seen in the bucket.
    pub max: u64,
    /// Live bytes after the bucket's last event.
    pub last: u64,
}

/// One downsampled series.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// x of the first event.
    pub origin: Option<u64>,
    /// x units per bucket (a power of two).
    pub width: u64,
    /// Buckets, from `origin`.
    pub slots: Vec<Slot>,
    /// x where the last bucket begins (meaningful once `width` is not 0):
    /// nearly every event lands in the last bucket, and this makes telling
    /// so one subtraction and one comparison.
    last_start: u64,
}

impl Series {
    /// Live bytes were `bytes` after the event at `x`.
    #[inline]
    pub fn add(&mut self, x: u64, bytes: u64) {
        // Nearly every event lands in the last bucket: that path is small
        // enough to inline into the per-event loop. (`width` is 0 until the
        // first bucket exists, so an empty series never takes it.)
        if x.wrapping_sub(self.last_start) < self.width {
            if let Some(s) = self.slots.last_mut() {
                s.min = s.min.min(bytes);
                s.max = s.max.max(bytes);
                s.last = bytes;
                return;
            }
        }
        self.add_elsewhere(x, bytes);
        self.last_start = self.starts_at(self.slots.len().saturating_sub(1));
    }

    /// The x where bucket `i` begins.
    #[inline]
    fn starts_at(&self, i: usize) -> u64 {
        self.origin
            .unwrap_or(0)
            .wrapping_add((i as u64).wrapping_mul(self.width))
    }

    /// Whether `x` falls in the last bucket (`width` is 0 until the first
    /// bucket exists, and there is always one after).
    #[inline]
    fn in_last(&self, x: u64) -> bool {
        x.wrapping_sub(self.last_start) < self.width
    }

    /// Where the last bucket begins and its width (0: no bucket yet):
    /// an `x` with `x - start < width` (wrapping) falls in it.
    pub(crate) fn last_bucket(&self) -> (u64, u64) {
        (self.last_start, self.width)
    }

    /// Folds a run of events that all fell in the last bucket (see
    /// [`Timeline`]): as if each had been [`add`](Self::add)ed.
    #[inline]
    pub(crate) fn fold_last(&mut self, run: &Slot) {
        if let Some(s) = self.slots.last_mut() {
            s.min = s.min.min(run.min);
            s.max = s.max.max(run.max);
            s.last = run.last;
        }
    }

    /// [`add`](Self::add) of an `x` outside the last bucket: an earlier
    /// bucket (late events of a merge), or a new one.
    #[cold]
    #[inline(never)]
    fn add_elsewhere(&mut self, x: u64, bytes: u64) {
        if let (Some(origin), true) = (self.origin, self.width != 0) {
            let i = x.saturating_sub(origin) >> self.width.trailing_zeros();
            if let Some(s) = usize::try_from(i).ok().and_then(|i| self.slots.get_mut(i)) {
                s.min = s.min.min(bytes);
                s.max = s.max.max(bytes);
                s.last = bytes;
                return;
            }
        }
        self.add_new_bucket(x, bytes);
    }

    /// [`add`](Self::add) past the last bucket: gaps filled, buckets merged.
    fn add_new_bucket(&mut self, x: u64, bytes: u64) {
        let origin = *self.origin.get_or_insert(x);
        if self.width == 0 {
            self.width = 1;
        }
        // Out-of-order x (late events of a merge) land in the first bucket they can.
        let off = x.saturating_sub(origin);
        // `width` is a power of two: a shift, not a division (this runs twice
        // per event).
        let mut i = off >> self.width.trailing_zeros();
        while i >= BUCKETS as u64 {
            self.halve();
            i = off >> self.width.trailing_zeros();
        }
        let i = i as usize;
        if let Some(s) = self.slots.get_mut(i) {
            s.min = s.min.min(bytes);
            s.max = s.max.max(bytes);
            s.last = bytes;
            return;
        }
        // A gap: nothing happened, the level stayed where it was.
        let level = self.slots.last().map_or(0, |s| s.last);
        self.slots.resize(
            i + 1,
            Slot {
                min: level,
                max: level,
                last: level,
            },
        );
        self.slots[i] = Slot {
            min: bytes.min(level),
            max: bytes.max(level),
            last: bytes,
        };
    }

    fn halve(&mut self) {
        let merged = self
            .slots
            .chunks(2)
            .map(|c| match c {
                [a, b] => Slot {
                    min: a.min.min(b.min),
                    max: a.max.max(b.max),
                    last: b.last,
                },
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        self.slots = merged;
        self.width = self.width.saturating_mul(2);
    }
}

/// Both series.
///
/// Every event adds to both, and nearly every event lands in the last
/// bucket of both: such a run of events is summed up in `run` (least, most
/// and last bytes) and folded into the two last buckets only when an event
/// falls elsewhere, or when the timeline is read. Each event then costs two
/// range checks and three register-sized updates, for both series.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// By timestamp (ticks).
    pub by_ts: Series,
    /// By event number in the merged stream.
    pub by_event: Series,
    /// Least, most and last bytes of the events added to the last buckets
    /// of both series and not yet folded into them (least `u64::MAX` and
    /// most 0 when there are none: folding them changes nothing).
    run: Slot,
    /// Whether `run` holds any event (its `last` then counts).
    pending: bool,
}

/// A run with no event in it (folding it changes nothing but `last`).
pub(crate) const NO_RUN: Slot = Slot {
    min: u64::MAX,
    max: 0,
    last: 0,
};

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            by_ts: Series::default(),
            by_event: Series::default(),
            run: NO_RUN,
            pending: false,
        }
    }
}

impl Timeline {
    /// After event number `seq` at `ts`, `bytes` were live.
    #[inline]
    pub fn add(&mut self, seq: u64, ts: u64, bytes: u64) {
        if self.by_event.in_last(seq) && self.by_ts.in_last(ts) {
            self.run.min = self.run.min.min(bytes);
            self.run.max = self.run.max.max(bytes);
            self.run.last = bytes;
            self.pending = true;
            return;
        }
        self.add_elsewhere(seq, ts, bytes);
    }

    #[cold]
    #[inline(never)]
    fn add_elsewhere(&mut self, seq: u64, ts: u64, bytes: u64) {
        self.fold();
        self.by_ts.add(ts, bytes);
        self.by_event.add(seq, bytes);
    }

    /// Folds the pending run into both last buckets.
    fn fold(&mut self) {
        if self.pending {
            self.by_ts.fold_last(&self.run);
            self.by_event.fold_last(&self.run);
            self.pending = false;
        }
        self.run = NO_RUN;
    }
}

/// The timeline as reported: one series, with its x axis named.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TimelineOut {
    /// "ticks" (timestamps, see `ticks_per_second`) or "events" (event
    /// number in the merged stream: the trace has no usable clock).
    pub axis: &'static str,
    /// Ticks per second when `axis` is "ticks" (0 otherwise).
    pub ticks_per_second: u64,
    /// x of the first event.
    pub start: u64,
    /// x units per bucket.
    pub bucket_width: u64,
    /// Buckets from `start`: least, most and last live bytes in each.
    pub buckets: Vec<Slot>,
    /// x of the exact peak (from `start`), when there was one.
    pub peak_offset: Option<u64>,
}

impl Timeline {
    /// The series to show: by timestamp when there is a clock and time
    /// passed, else by event number. `peak` is the peak's (ts, seq).
    pub fn out(&self, ticks_per_second: u64, peak: Option<(u64, u64)>) -> TimelineOut {
        let mut folded = self.clone();
        folded.fold();
        let clocked = ticks_per_second > 0 && folded.by_ts.slots.len() > 1;
        let (axis, s, peak_x) = if clocked {
            ("ticks", &folded.by_ts, peak.map(|p| p.0))
        } else {
            ("events", &folded.by_event, peak.map(|p| p.1))
        };
        let start = s.origin.unwrap_or(0);
        TimelineOut {
            axis,
            ticks_per_second: if clocked { ticks_per_second } else { 0 },
            start,
            bucket_width: s.width.max(1),
            buckets: s.slots.clone(),
            peak_offset: peak_x.map(|x| x.saturating_sub(start)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_the_maximum() {
        let mut s = Series::default();
        let mut max = 0;
        for i in 0..100_000u64 {
            let b = (i * 7919) % 10_007;
            max = max.max(b);
            s.add(i, b);
        }
        assert!(s.slots.len() <= BUCKETS);
        assert_eq!(s.slots.iter().map(|x| x.max).max(), Some(max));
        assert_eq!(s.slots.last().unwrap().last, (99_999 * 7919) % 10_007);
    }

    /// The per-event reference: each event looked up in its bucket, as
    /// before the last-bucket shortcuts.
    fn reference(s: &mut Series, x: u64, bytes: u64) {
        s.add_elsewhere(x, bytes);
    }

    /// A timeline fed events whose timestamps sometimes go back (late events
    /// of a merge) and jump ahead (gaps, halvings) equals two series fed
    /// event by event without the shortcuts, at every point it is read.
    #[test]
    fn the_folded_run_equals_event_by_event() {
        let mut t = Timeline::default();
        let (mut by_ts, mut by_event) = (Series::default(), Series::default());
        let mut r = 0x9E37_79B9_7F4A_7C15u64;
        let (mut ts, mut bytes) = (1_000u64, 0u64);
        for seq in 0..200_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            ts = match r % 100 {
                0 => ts.saturating_sub(r >> 54),
                1 => ts + (r >> 44),
                _ => ts + (r >> 60),
            };
            bytes = if r & 1 << 20 != 0 {
                bytes + (r >> 50)
            } else {
                bytes.saturating_sub(r >> 51)
            };
            t.add(seq, ts, bytes);
            reference(&mut by_ts, ts, bytes);
            reference(&mut by_event, seq, bytes);
            if seq % 49_999 == 0 || seq == 199_999 {
                let out = t.out(1, None);
                assert_eq!(out.buckets, by_ts.slots, "by ts at {seq}");
                assert_eq!(t.out(0, None).buckets, by_event.slots, "by event at {seq}");
            }
        }
        assert!(by_ts.width > 1 && by_event.width > 1, "halved");
    }

    #[test]
    fn gaps_hold_the_level() {
        let mut s = Series::default();
        s.add(0, 10);
        s.add(5, 20);
        assert_eq!(
            s.slots[3],
            Slot {
                min: 10,
                max: 10,
                last: 10
            }
        );
        assert_eq!(
            s.slots[5],
            Slot {
                min: 10,
                max: 20,
                last: 20
            }
        );
    }
}
