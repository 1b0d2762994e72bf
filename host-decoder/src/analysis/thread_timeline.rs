//! Live bytes over time per thread (the blocks each thread allocated and
//! still holds), each one a bounded [`Series`] like the session's timeline.
//! Threads past [`MAX_THREADS`] (by stream id) are not followed; the report
//! says so.

use crate::analysis::timeline::{self, Series, Slot};

/// Streams followed (stream ids from 0).
pub const MAX_THREADS: usize = 64;

/// One series per stream.
///
/// Nearly every update of a stream's series lands in its last bucket: such
/// updates are summed up in the stream's `Run` (least, most and last
/// bytes), kept in a fixed array that the per-event path reaches with one
/// bounds check and no pointer to follow, and folded into the series' last
/// bucket only when an update falls elsewhere, or when the series are read
/// (as [`Timeline`](super::timeline::Timeline) does for the session's
/// series). On the 1-thread churn trace the per-thread series took 116M of
/// the analysing thread's 1.71G instructions (callgrind) when each update
/// followed its stream's `Vec` of buckets to the last one; 72M with runs.
pub struct ThreadTimelines {
    series: Vec<Series>,
    runs: [Run; MAX_THREADS],
    /// A stream past [`MAX_THREADS`] had events.
    pub overflow: bool,
}

/// A stream's last bucket, `[start, start + width)` (empty while `width`
/// is 0: no bucket yet), and what was added there since it was last folded.
#[derive(Clone, Copy)]
struct Run {
    start: u64,
    width: u64,
    /// Least `u64::MAX` and most 0 while nothing is pending.
    sum: Slot,
}

const NO_RUN: Run = Run {
    start: 0,
    width: 0,
    sum: timeline::NO_RUN,
};

impl Default for ThreadTimelines {
    fn default() -> Self {
        ThreadTimelines {
            series: Vec::new(),
            runs: [NO_RUN; MAX_THREADS],
            overflow: false,
        }
    }
}

impl ThreadTimelines {
    /// `stream` holds `bytes` after the event at `ts`.
    #[inline]
    pub fn add(&mut self, stream: u32, ts: u64, bytes: u64) {
        if let Some(r) = self.runs.get_mut(stream as usize) {
            if ts.wrapping_sub(r.start) < r.width {
                r.sum.min = r.sum.min.min(bytes);
                r.sum.max = r.sum.max.max(bytes);
                r.sum.last = bytes;
                return;
            }
        }
        self.add_elsewhere(stream, ts, bytes);
    }

    /// [`add`](Self::add) outside the stream's last bucket (or of a stream
    /// seen for the first time): the run folded, the series updated, and
    /// the run set to its last bucket.
    #[cold]
    #[inline(never)]
    fn add_elsewhere(&mut self, stream: u32, ts: u64, bytes: u64) {
        let i = stream as usize;
        if i >= MAX_THREADS {
            self.overflow = true;
            return;
        }
        if self.series.len() <= i {
            self.series.resize_with(i + 1, Series::default);
        }
        let s = &mut self.series[i];
        let r = &mut self.runs[i];
        fold(s, &r.sum);
        s.add(ts, bytes);
        (r.start, r.width) = s.last_bucket();
        r.sum = timeline::NO_RUN;
    }

    /// The series of every stream with events, by timestamp; empty without a clock.
    pub fn out(&self, ticks_per_second: u64) -> ThreadTimelinesOut {
        let threads = if ticks_per_second == 0 {
            Vec::new()
        } else {
            self.series
                .iter()
                .zip(&self.runs)
                .enumerate()
                .filter_map(|(i, (s, r))| {
                    let mut s = s.clone();
                    fold(&mut s, &r.sum);
                    Some(ThreadTimelineOut {
                        stream: i as u32,
                        start: s.origin?,
                        bucket_width: s.width.max(1),
                        buckets: s.slots,
                    })
                })
                .collect()
        };
        ThreadTimelinesOut {
            threads,
            streams_not_followed: self.overflow,
        }
    }
}

/// Folds a run's pending sum (if any) into the last bucket of `s`.
fn fold(s: &mut Series, sum: &Slot) {
    if sum.min <= sum.max {
        s.fold_last(sum);
    }
}

/// One thread's live bytes over time.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ThreadTimelineOut {
    /// Stream id.
    pub stream: u32,
    /// Timestamp of its first bucket (ticks).
    pub start: u64,
    /// Ticks per bucket.
    pub bucket_width: u64,
    /// Least, most and last bytes the thread held in each bucket.
    pub buckets: Vec<Slot>,
}

/// Per-thread timelines as reported.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ThreadTimelinesOut {
    /// By stream (empty when the trace has no clock).
    pub threads: Vec<ThreadTimelineOut>,
    /// Streams with ids past the first 64 were not followed.
    pub streams_not_followed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs change nothing: every stream's series reads as one that
    /// took each update directly, whatever the order of updates, with time
    /// going back now and then (late events of a merge), gaps, halvings,
    /// streams seen late, and reads between updates.
    #[test]
    fn runs_read_as_updates_made_one_by_one() {
        let mut t = ThreadTimelines::default();
        let mut reference: Vec<Series> = (0..5).map(|_| Series::default()).collect();
        let mut r = 0x9E37_79B9_7F4A_7C15u64;
        let (mut now, mut bytes) = (5_000u64, [0u64; 5]);
        for n in 0..300_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            now = match r % 200 {
                0 => now.saturating_sub(r >> 52),
                1 => now + (r >> 40),
                _ => now + (r >> 61),
            };
            // Stream 4 starts late; stream 3 is rare.
            let stream = match (r >> 8) % 16 {
                0 if n > 100_000 => 4,
                1 => 3,
                k => (k % 3) as u32,
            };
            let b = &mut bytes[stream as usize];
            *b = if r & 1 << 20 != 0 {
                *b + (r >> 48)
            } else {
                b.saturating_sub(r >> 49)
            };
            t.add(stream, now, *b);
            reference[stream as usize].add(now, *b);
            if n % 60_001 == 0 || n == 299_999 {
                let out = t.out(1);
                for (i, s) in reference.iter().enumerate() {
                    let got = out.threads.iter().find(|o| o.stream == i as u32);
                    match s.origin {
                        None => assert!(got.is_none(), "stream {i} at {n}"),
                        Some(start) => {
                            let got = got.expect("a stream with updates is out");
                            assert_eq!(got.start, start, "stream {i} at {n}");
                            assert_eq!(got.bucket_width, s.width.max(1), "stream {i} at {n}");
                            assert_eq!(got.buckets, s.slots, "stream {i} at {n}");
                        }
                    }
                }
            }
        }
        assert!(reference.iter().all(|s| s.width > 1), "halved");
        // Past the streams followed: counted as not followed.
        t.add(MAX_THREADS as u32, now, 1);
        assert!(t.out(1).streams_not_followed);
    }
}
