//! Frame numbers: which frame of which stream is missing, repeated or out of
//! order.
//!
//! A producer that numbers its frames (memscope-std does; docs/FORMAT.md,
//! "Frame numbers") puts each frame's number in its stream first in the
//! frame. [`Sequencer`] reads it off and hands frames on in each stream's
//! order:
//!
//! - the next number of its stream: handed on at once (the usual case: no
//!   frame is ever delayed while nothing is wrong);
//! - a number already handed on: a **repeat**, skipped, so nothing is counted
//!   twice;
//! - a number past the next one: held back, up to [`HOLD_FRAMES`] frames of
//!   input (and [`HOLD_BYTES`]), in case the frames before it come later. If
//!   they do, the frames are handed on in order and reported **out of
//!   order**; every record is decoded against the right base. If not, the
//!   numbers in between are reported **missing** (with the byte offsets they
//!   should have been between), the stream's delta base is unknown until its
//!   next Sync ([`Issue::desyncs`]), and the held frames go on;
//! - a number reported missing that arrives after all: **late**, decoded
//!   with the stream's base unknown before and after it (its own Sync, if it
//!   has one, makes its later events exact).
//!
//! A frame without a number is handed on as it comes, as before numbers
//! existed. A frame of stream 0 that starts with a Header starts a new session
//! (a target reset): everything held is handed on first and the numbering
//! starts again.

use memscope_core::frame::split_seq;
use memscope_core::wire::ext;
use std::collections::HashMap;
use std::fmt;

/// Frames of input (any stream) after which a held frame stops waiting for
/// the frames before it. memscope-std writes a stream's frames in order, so
/// a wait only happens when the input was edited or damaged; 256 frames is
/// far more than any reordering a copy or a transport makes, and few enough
/// that a gap is reported soon in a live view.
pub const HOLD_FRAMES: u64 = 256;

/// Bytes of held frames after which the oldest stops waiting (memscope-std's
/// frames are at most 32 KiB of payload).
pub const HOLD_BYTES: usize = 8 << 20;

/// Gaps remembered per stream, so that a late frame is told from a repeat.
const GAPS_KEPT: usize = 64;

/// What the frame numbers showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issue {
    /// Frames `first..=last` of `stream` never arrived (within the window):
    /// they belonged between byte offset `after` (the end of the stream's
    /// previous frame, or the session's start) and `before` (the start of the
    /// stream's next frame).
    Missing {
        /// Stream id.
        stream: u32,
        /// First missing frame number.
        first: u64,
        /// Last missing frame number.
        last: u64,
        /// Byte offset after the stream's last frame before the gap.
        after: u64,
        /// Byte offset of the stream's first frame after the gap.
        before: u64,
    },
    /// Frame `seq` of `stream` at `offset` was already read: skipped.
    Repeated {
        /// Stream id.
        stream: u32,
        /// Its number.
        seq: u64,
        /// Byte offset of the copy.
        offset: u64,
    },
    /// Frame `seq` of `stream` at `offset` came before frame `earlier` of
    /// its stream (at `earlier_offset`), which it follows: it was held back
    /// and decoded after it, in its place.
    Reordered {
        /// Stream id.
        stream: u32,
        /// Its number.
        seq: u64,
        /// Its byte offset.
        offset: u64,
        /// The frame it follows, which came after it.
        earlier: u64,
        /// That frame's byte offset.
        earlier_offset: u64,
    },
    /// After damaged input, frame `seq` of `stream` at `offset` is numbered
    /// below the stream's next number `expected`: not taken for a repeat,
    /// since the damage may have held a new session's Header (a target
    /// reset without a 0x00 before its output). The stream's numbering goes
    /// on from it, its base unknown until its next Sync.
    Restarted {
        /// Stream id.
        stream: u32,
        /// Its number.
        seq: u64,
        /// Its byte offset.
        offset: u64,
        /// The number the stream was at.
        expected: u64,
    },
    /// Frame `seq` of `stream`, reported missing, arrived at `offset` after
    /// the frames that follow it had been decoded.
    Late {
        /// Stream id.
        stream: u32,
        /// Its number.
        seq: u64,
        /// Its byte offset.
        offset: u64,
    },
}

impl Issue {
    /// The stream's delta base is unknown from here until its next Sync.
    pub fn desyncs(&self) -> Option<u32> {
        match *self {
            Issue::Missing { stream, .. }
            | Issue::Late { stream, .. }
            | Issue::Restarted { stream, .. } => Some(stream),
            Issue::Repeated { .. } | Issue::Reordered { .. } => None,
        }
    }

    /// Frames of the stream are missing or were decoded without their base:
    /// the session cannot be complete.
    pub fn loses_records(&self) -> bool {
        self.desyncs().is_some()
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Issue::Missing {
                stream,
                first,
                last,
                after,
                before,
            } => {
                if first == last {
                    write!(f, "stream {stream}: frame {first} missing")?;
                } else {
                    write!(f, "stream {stream}: frames {first}-{last} missing")?;
                }
                write!(f, " between byte offsets {after} and {before}")
            }
            Issue::Repeated {
                stream,
                seq,
                offset,
            } => write!(
                f,
                "frame {seq} of stream {stream} repeated at offset {offset} (skipped)"
            ),
            Issue::Reordered {
                stream,
                seq,
                offset,
                earlier,
                earlier_offset,
            } => write!(
                f,
                "frame {seq} of stream {stream} at offset {offset} out of order: it came before frame {earlier} at offset {earlier_offset} (decoded after it)"
            ),
            Issue::Restarted {
                stream,
                seq,
                offset,
                expected,
            } => write!(
                f,
                "stream {stream}: frame {seq} at offset {offset}, after damaged input, is numbered below the stream's next frame {expected}: read as a new start of the stream (a reset whose header was in the damage?), its heap records from its next Sync"
            ),
            Issue::Late {
                stream,
                seq,
                offset,
            } => write!(
                f,
                "frame {seq} of stream {stream} at offset {offset} out of order: it came after the frames that follow it and was reported missing (decoded with the stream's base unknown)"
            ),
        }
    }
}

/// What the frame numbers said, per session: counts and the first issues.
#[derive(Clone, Debug, Default)]
pub struct FrameLog {
    /// Frames reported missing (sum over the gaps).
    pub missing_frames: u64,
    /// Repeated frames skipped.
    pub repeated: u64,
    /// Frames put back in order.
    pub reordered: u64,
    /// Frames that came after they had been reported missing.
    pub late: u64,
    /// Streams whose numbers started again after damage.
    pub restarted: u64,
    /// The first issues, in input order.
    pub examples: Vec<Issue>,
}

/// Issues kept as examples per session.
pub const MAX_ISSUE_EXAMPLES: usize = 50;

impl FrameLog {
    /// Counts `issue` and keeps it if there is room.
    pub fn add(&mut self, issue: Issue) {
        match issue {
            Issue::Missing { first, last, .. } => {
                let n = last.saturating_sub(first).saturating_add(1);
                self.missing_frames = self.missing_frames.saturating_add(n);
            }
            Issue::Repeated { .. } => self.repeated += 1,
            Issue::Reordered { .. } => self.reordered += 1,
            Issue::Late { .. } => self.late += 1,
            Issue::Restarted { .. } => self.restarted += 1,
        }
        if self.examples.len() < MAX_ISSUE_EXAMPLES {
            self.examples.push(issue);
        }
    }

    /// Why the session is incomplete, as far as frame numbers tell: each kept
    /// issue that lost records, and the totals when not all were kept.
    pub fn incomplete_reasons(&self) -> Vec<String> {
        let mut why: Vec<String> = self
            .examples
            .iter()
            .filter(|i| i.loses_records())
            .map(|i| i.to_string())
            .collect();
        let losses = self.missing_frames + self.late + self.restarted;
        if self.examples.len() == MAX_ISSUE_EXAMPLES && losses > 0 {
            why.push(format!(
                "{} frames missing, {} late, {} streams restarted in all (the first {MAX_ISSUE_EXAMPLES} frame-number issues are listed)",
                self.missing_frames, self.late, self.restarted
            ));
        }
        why
    }

    /// Every kept issue as a sentence.
    pub fn messages(&self) -> Vec<String> {
        self.examples.iter().map(|i| i.to_string()).collect()
    }
}

/// What the sequencer hands on, in the order to act on it.
#[derive(Debug, PartialEq, Eq)]
pub enum Out<'a> {
    /// A frame to decode: stream, records (its number taken off), offset.
    Frame(u32, &'a [u8], u64),
    /// Something the numbers showed.
    Issue(Issue),
    /// The stream's delta base is unknown from here until its next Sync.
    Desync(u32),
}

/// A frame held back until the frames before it arrive.
struct Held {
    stream: u32,
    seq: u64,
    offset: u64,
    end: u64,
    /// Frames read when it arrived.
    arrival: u64,
    records: Vec<u8>,
}

/// One stream's numbering.
#[derive(Default)]
struct Track {
    /// Number of the next frame to hand on.
    next: u64,
    /// Byte offset after the last frame handed on; `None` before the first.
    last_end: Option<u64>,
    /// Byte offset of the last frame handed on.
    last_offset: u64,
    /// Gaps reported missing, oldest first (at most [`GAPS_KEPT`]).
    gaps: Vec<(u64, u64)>,
    /// [`Sequencer::damage`] count at the last frame handed on in order.
    damage_seen: u64,
}

/// Puts numbered frames back in their streams' order; see the module doc.
#[derive(Default)]
pub struct Sequencer {
    tracks: HashMap<u32, Track>,
    /// Held frames in arrival order.
    held: Vec<Held>,
    held_bytes: usize,
    /// Frames read so far.
    arrivals: u64,
    /// Byte offset where the current session began.
    session_start: u64,
    /// Damaged spans read so far.
    damage: u64,
}

/// The callback: returns false to stop.
pub type Each<'e> = dyn FnMut(Out<'_>) -> bool + 'e;

impl Sequencer {
    /// No frame seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the frame of `stream` at `offset..end` (its records as the
    /// deframer gave them) and hands on, through `each`, what can be acted
    /// on now, in order. Returns false as soon as `each` does.
    pub fn frame(
        &mut self,
        stream: u32,
        records: &[u8],
        offset: u64,
        end: u64,
        each: &mut Each<'_>,
    ) -> bool {
        self.arrivals += 1;
        // Frames held for more than the window stop waiting before this one
        // is looked at: it is the window's first frame past its end.
        if !self.release_due(each) {
            return false;
        }
        let (seq, rest) = split_seq(records);
        if stream == 0 && starts_with_header(rest) {
            // A new session: its producer numbers from 0 again.
            if !self.release_all(each) {
                return false;
            }
            self.tracks.clear();
            self.session_start = offset;
        }
        let Some(seq) = seq else {
            return each(Out::Frame(stream, rest, offset));
        };
        let damage = self.damage;
        let track = self.tracks.entry(stream).or_default();
        if seq == track.next {
            track.next = track.next.saturating_add(1);
            track.last_end = Some(end);
            track.last_offset = offset;
            track.damage_seen = damage;
            return each(Out::Frame(stream, rest, offset)) && self.release_ready(stream, each);
        }
        if seq < track.next {
            let gap = track.gaps.iter().position(|&(a, b)| (a..=b).contains(&seq));
            if gap.is_none() && track.damage_seen != damage {
                let issue = Issue::Restarted {
                    stream,
                    seq,
                    offset,
                    expected: track.next,
                };
                *track = Track {
                    next: seq + 1,
                    last_end: Some(end),
                    last_offset: offset,
                    gaps: Vec::new(),
                    damage_seen: damage,
                };
                return each(Out::Issue(issue))
                    && each(Out::Desync(stream))
                    && each(Out::Frame(stream, rest, offset));
            }
            let Some(i) = gap else {
                let issue = Issue::Repeated {
                    stream,
                    seq,
                    offset,
                };
                return each(Out::Issue(issue));
            };
            let (a, b) = track.gaps.remove(i);
            if a < seq {
                track.gaps.push((a, seq - 1));
            }
            if seq < b {
                track.gaps.push((seq + 1, b));
            }
            // Its deltas continue a base older than the stream's: unknown
            // before it (unless it has a Sync) and for the frames after it.
            let issue = Issue::Late {
                stream,
                seq,
                offset,
            };
            return each(Out::Issue(issue))
                && each(Out::Desync(stream))
                && each(Out::Frame(stream, rest, offset))
                && each(Out::Desync(stream));
        }
        // Past the next one. After damage the frames before it were most
        // likely in the damaged bytes: no waiting for them.
        if track.damage_seen != damage {
            let issue = Issue::Missing {
                stream,
                first: track.next,
                last: seq - 1,
                after: track.last_end.unwrap_or(self.session_start),
                before: offset,
            };
            if track.gaps.len() == GAPS_KEPT {
                track.gaps.remove(0);
            }
            track.gaps.push((track.next, seq - 1));
            track.next = seq.saturating_add(1);
            track.last_end = Some(end);
            track.last_offset = offset;
            track.damage_seen = damage;
            return each(Out::Issue(issue))
                && each(Out::Desync(stream))
                && each(Out::Frame(stream, rest, offset))
                && self.release_ready(stream, each);
        }
        // Otherwise wait for the frames before it.
        if self.held.iter().any(|h| h.stream == stream && h.seq == seq) {
            let issue = Issue::Repeated {
                stream,
                seq,
                offset,
            };
            return each(Out::Issue(issue));
        }
        self.held_bytes += rest.len();
        self.held.push(Held {
            stream,
            seq,
            offset,
            end,
            arrival: self.arrivals,
            records: rest.to_vec(),
        });
        // Over the byte budget: the oldest stops waiting.
        self.release_due(each)
    }

    /// Bytes were damaged: a frame numbered below its stream's next one may
    /// now be a new session's whose Header was in the damage.
    pub fn damaged(&mut self) {
        self.damage += 1;
    }

    /// The input ended: hands on everything held, reporting the gaps.
    pub fn finish(&mut self, each: &mut Each<'_>) -> bool {
        self.release_all(each)
    }

    fn release_all(&mut self, each: &mut Each<'_>) -> bool {
        while let Some(stream) = self.held.first().map(|h| h.stream) {
            if !self.give_up_waiting(stream, each) {
                return false;
            }
        }
        true
    }

    /// Gives up waiting for streams whose oldest held frame waited long enough.
    fn release_due(&mut self, each: &mut Each<'_>) -> bool {
        while let Some(h) = self.held.first() {
            if self.arrivals - h.arrival <= HOLD_FRAMES && self.held_bytes <= HOLD_BYTES {
                break;
            }
            let stream = h.stream;
            if !self.give_up_waiting(stream, each) {
                return false;
            }
        }
        true
    }

    /// Whether frames are held back, waiting for earlier ones of their
    /// stream.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Reports the frames before `stream`'s lowest held frame missing and
    /// hands on its held frames that follow in order.
    fn give_up_waiting(&mut self, stream: u32, each: &mut Each<'_>) -> bool {
        let Some(lowest) = self
            .held
            .iter()
            .filter(|h| h.stream == stream)
            .map(|h| h.seq)
            .min()
        else {
            return true;
        };
        // The stream's first frame after the gap, in input order.
        let before = self
            .held
            .iter()
            .find(|h| h.stream == stream)
            .map_or(0, |h| h.offset);
        let session_start = self.session_start;
        let track = self.tracks.entry(stream).or_default();
        let issue = Issue::Missing {
            stream,
            first: track.next,
            last: lowest - 1,
            after: track.last_end.unwrap_or(session_start),
            before,
        };
        if track.gaps.len() == GAPS_KEPT {
            track.gaps.remove(0);
        }
        track.gaps.push((track.next, lowest - 1));
        track.next = lowest;
        each(Out::Issue(issue)) && each(Out::Desync(stream)) && self.release_ready(stream, each)
    }

    /// Hands on `stream`'s held frames while the next one is among them.
    fn release_ready(&mut self, stream: u32, each: &mut Each<'_>) -> bool {
        loop {
            let track = self.tracks.entry(stream).or_default();
            let next = track.next;
            let Some(i) = self
                .held
                .iter()
                .position(|h| h.stream == stream && h.seq == next)
            else {
                return true;
            };
            let h = self.held.remove(i);
            self.held_bytes -= h.records.len();
            // It came before the frame handed on just now: out of order.
            let reordered = track.last_end.is_some() && track.last_offset > h.offset;
            let issue = Issue::Reordered {
                stream,
                seq: h.seq,
                offset: h.offset,
                earlier: next.wrapping_sub(1),
                earlier_offset: track.last_offset,
            };
            track.next = track.next.saturating_add(1);
            track.last_end = Some(h.end);
            track.last_offset = h.offset;
            if reordered && !each(Out::Issue(issue)) {
                return false;
            }
            if !each(Out::Frame(stream, &h.records, h.offset)) {
                return false;
            }
        }
    }
}

/// Whether `records` begins with a Header record (tag 0, extension kind 1).
fn starts_with_header(records: &[u8]) -> bool {
    matches!(records, [0, k, ..] if u64::from(*k) == ext::HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memscope_core::frame::{encode_seq, MAX_SEQ_LEN};

    /// A frame of `stream` numbered `seq` whose one record is `Lost { id }`,
    /// at offset `10 * i` (10 bytes long) when it is the `i`-th of the input.
    fn numbered(seq: u64, id: u8) -> Vec<u8> {
        let mut b = [0u8; MAX_SEQ_LEN];
        let n = encode_seq(seq, &mut b);
        let mut v = b[..n].to_vec();
        v.extend_from_slice(&[6, id]);
        v
    }

    /// Feeds `(stream, records)` frames 10 bytes apart; returns what came out.
    fn run(frames: &[(u32, Vec<u8>)]) -> Vec<String> {
        let mut seq = Sequencer::new();
        let mut got = Vec::new();
        let mut each = |o: Out<'_>| {
            got.push(match o {
                Out::Frame(s, r, off) => format!("frame s{s} {:?} @{off}", r),
                Out::Issue(i) => i.to_string(),
                Out::Desync(s) => format!("desync s{s}"),
            });
            true
        };
        for (i, (stream, rec)) in frames.iter().enumerate() {
            let off = 10 * i as u64;
            assert!(seq.frame(*stream, rec, off, off + 10, &mut each));
        }
        assert!(seq.finish(&mut each));
        got
    }

    #[test]
    fn in_order_frames_go_straight_through_with_their_number_off() {
        let got = run(&[
            (1, numbered(0, 1)),
            (2, numbered(0, 2)),
            (1, numbered(1, 3)),
        ]);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0",
                "frame s2 [6, 2] @10",
                "frame s1 [6, 3] @20"
            ]
        );
    }

    #[test]
    fn a_dropped_frame_is_named_with_the_offsets_around_it() {
        let got = run(&[
            (1, numbered(0, 1)),
            (2, numbered(0, 2)),
            (1, numbered(2, 3)),
        ]);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0",
                "frame s2 [6, 2] @10",
                "stream 1: frame 1 missing between byte offsets 10 and 20",
                "desync s1",
                "frame s1 [6, 3] @20",
            ]
        );
    }

    #[test]
    fn a_repeated_frame_is_skipped() {
        let got = run(&[
            (1, numbered(0, 1)),
            (1, numbered(1, 2)),
            (1, numbered(1, 2)),
        ]);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0",
                "frame s1 [6, 2] @10",
                "frame 1 of stream 1 repeated at offset 20 (skipped)",
            ]
        );
    }

    #[test]
    fn swapped_frames_are_decoded_in_their_order() {
        let got = run(&[
            (1, numbered(0, 1)),
            (1, numbered(2, 3)),
            (2, numbered(0, 9)),
            (1, numbered(1, 2)),
        ]);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0",
                "frame s2 [6, 9] @20",
                "frame s1 [6, 2] @30",
                "frame 2 of stream 1 at offset 10 out of order: it came before frame 1 at offset 30 (decoded after it)",
                "frame s1 [6, 3] @10",
            ]
        );
    }

    #[test]
    fn a_frame_later_than_the_window_is_late_and_unsynced_around() {
        let mut frames = vec![(1, numbered(0, 1)), (1, numbered(2, 3))];
        frames.extend((0..HOLD_FRAMES).map(|i| (2, numbered(i, 0))));
        frames.push((1, numbered(1, 2)));
        let got: Vec<String> = run(&frames)
            .into_iter()
            .filter(|l| !l.starts_with("frame s2"))
            .collect();
        let late = 10 * (HOLD_FRAMES + 2);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0".to_owned(),
                "stream 1: frame 1 missing between byte offsets 10 and 10".to_owned(),
                "desync s1".to_owned(),
                "frame s1 [6, 3] @10".to_owned(),
                format!("frame 1 of stream 1 at offset {late} out of order: it came after the frames that follow it and was reported missing (decoded with the stream's base unknown)"),
                "desync s1".to_owned(),
                format!("frame s1 [6, 2] @{late}"),
                "desync s1".to_owned(),
            ]
        );
    }

    #[test]
    fn a_header_restarts_the_numbers_and_ends_waiting() {
        let mut header = numbered(0, 0);
        header.truncate(4);
        header.extend_from_slice(&[0, 1, 0]); // an (empty) Header record
        let got = run(&[
            (0, header.clone()),
            (1, numbered(0, 1)),
            (1, numbered(2, 3)),
            (0, header.clone()),
            (1, numbered(0, 4)),
        ]);
        assert_eq!(
            got,
            [
                "frame s0 [0, 1, 0] @0",
                "frame s1 [6, 1] @10",
                "stream 1: frame 1 missing between byte offsets 20 and 20",
                "desync s1",
                "frame s1 [6, 3] @20",
                "frame s0 [0, 1, 0] @30",
                "frame s1 [6, 4] @40",
            ]
        );
    }

    #[test]
    fn after_damage_a_lower_number_is_a_new_start_not_a_repeat() {
        let mut seq = Sequencer::new();
        let mut got = Vec::new();
        let mut each = |o: Out<'_>| {
            got.push(match o {
                Out::Frame(s, _, off) => format!("frame s{s} @{off}"),
                Out::Issue(i) => i.to_string(),
                Out::Desync(s) => format!("desync s{s}"),
            });
            true
        };
        assert!(seq.frame(1, &numbered(0, 1), 0, 10, &mut each));
        assert!(seq.frame(1, &numbered(1, 1), 10, 20, &mut each));
        seq.damaged();
        assert!(seq.frame(1, &numbered(0, 1), 30, 40, &mut each));
        assert!(seq.frame(1, &numbered(1, 1), 40, 50, &mut each));
        assert!(seq.frame(1, &numbered(1, 1), 50, 60, &mut each));
        // A gap after damage is reported at once: the frame was in the damage.
        seq.damaged();
        assert!(seq.frame(1, &numbered(3, 1), 70, 80, &mut each));
        assert!(seq.finish(&mut each));
        assert_eq!(
            got,
            [
                "frame s1 @0",
                "frame s1 @10",
                "stream 1: frame 0 at offset 30, after damaged input, is numbered below the stream's next frame 2: read as a new start of the stream (a reset whose header was in the damage?), its heap records from its next Sync",
                "desync s1",
                "frame s1 @30",
                "frame s1 @40",
                "frame 1 of stream 1 repeated at offset 50 (skipped)",
                "stream 1: frame 2 missing between byte offsets 50 and 70",
                "desync s1",
                "frame s1 @70",
            ]
        );
    }

    #[test]
    fn the_largest_numbers_do_not_overflow() {
        // Numbers from a hostile trace: u64::MAX past a gap, after damage and
        // held; no arithmetic may overflow.
        let mut seq = Sequencer::new();
        let mut n = 0;
        let mut each = |_: Out<'_>| {
            n += 1;
            true
        };
        assert!(seq.frame(1, &numbered(u64::MAX, 1), 0, 10, &mut each));
        assert!(seq.frame(2, &numbered(0, 1), 10, 20, &mut each));
        seq.damaged();
        assert!(seq.frame(2, &numbered(u64::MAX, 1), 20, 30, &mut each));
        assert!(seq.frame(2, &numbered(u64::MAX, 1), 30, 40, &mut each));
        assert!(seq.frame(1, &numbered(u64::MAX - 1, 1), 40, 50, &mut each));
        assert!(seq.finish(&mut each));
        assert!(n > 5);
    }

    #[test]
    fn frames_without_numbers_and_a_late_start_of_stream() {
        let got = run(&[(1, vec![6, 1]), (1, vec![6, 2]), (3, numbered(4, 5))]);
        assert_eq!(
            got,
            [
                "frame s1 [6, 1] @0",
                "frame s1 [6, 2] @10",
                "stream 3: frames 0-3 missing between byte offsets 0 and 20",
                "desync s3",
                "frame s3 [6, 5] @20",
            ]
        );
    }
}
