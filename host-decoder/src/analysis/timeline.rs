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
}

impl Series {
    /// Live bytes were `bytes` after the event at `x`.
    #[inline]
    pub fn add(&mut self, x: u64, bytes: u64) {
        // Nearly every event lands in an existing bucket: that path is small
        // enough to inline into the per-event loop (twice per event).
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
    #[cold]
    #[inline(never)]
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
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// By timestamp (ticks).
    pub by_ts: Series,
    /// By event number in the merged stream.
    pub by_event: Series,
}

impl Timeline {
    /// After event number `seq` at `ts`, `bytes` were live.
    #[inline]
    pub fn add(&mut self, seq: u64, ts: u64, bytes: u64) {
        self.by_ts.add(ts, bytes);
        self.by_event.add(seq, bytes);
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
        let clocked = ticks_per_second > 0 && self.by_ts.slots.len() > 1;
        let (axis, s, peak_x) = if clocked {
            ("ticks", &self.by_ts, peak.map(|p| p.0))
        } else {
            ("events", &self.by_event, peak.map(|p| p.1))
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
