//! Live bytes over time per thread (the blocks each thread allocated and
//! still holds), each one a bounded [`Series`] like the session's timeline.
//! Threads past [`MAX_THREADS`] (by stream id) are not followed; the report
//! says so.

use crate::analysis::timeline::{Series, Slot};

/// Streams followed (stream ids from 0).
pub const MAX_THREADS: usize = 64;

/// One series per stream.
#[derive(Default)]
pub struct ThreadTimelines {
    series: Vec<Series>,
    /// Timestamp of the event being applied (frees find it here).
    pub now: u64,
    /// A stream past [`MAX_THREADS`] had events.
    pub overflow: bool,
}

impl ThreadTimelines {
    /// `stream` holds `bytes` after the current event.
    #[inline]
    pub fn add(&mut self, stream: u32, bytes: u64) {
        // `series` never holds more than MAX_THREADS.
        match self.series.get_mut(stream as usize) {
            Some(s) => s.add(self.now, bytes),
            None => self.add_new(stream, bytes),
        }
    }

    #[cold]
    #[inline(never)]
    fn add_new(&mut self, stream: u32, bytes: u64) {
        let i = stream as usize;
        if i >= MAX_THREADS {
            self.overflow = true;
            return;
        }
        self.series.resize_with(i + 1, Series::default);
        self.series[i].add(self.now, bytes);
    }

    /// The series of every stream with events, by timestamp; empty without a clock.
    pub fn out(&self, ticks_per_second: u64) -> ThreadTimelinesOut {
        let threads = if ticks_per_second == 0 {
            Vec::new()
        } else {
            self.series
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    Some(ThreadTimelineOut {
                        stream: i as u32,
                        start: s.origin?,
                        bucket_width: s.width.max(1),
                        buckets: s.slots.clone(),
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
