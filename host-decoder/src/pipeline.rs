//! Runs the stages: source → frames → records → merge → state → analyses,
//! once per pass, per session (a second Header in the input — a target reset —
//! closes one session and opens the next; they are never mixed).

use crate::analysis::fragmentation::{self, Fragmentation};
use crate::analysis::Analyses;
use crate::error::Error;
use crate::frames::{read_frames, DamagedSpan, Flow, Piece};
use crate::live_view::{Figures, LiveView};
use crate::merge::{Holds, Merger, Target, Window, MAX_BUFFERED};
use crate::records::{Decoder, Event, FrameOutcome, Op, Session, NO_STACK};
use crate::source::Source;
use crate::state::State;
use std::cell::Cell;
use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lifetime under which a freed block counts as short-lived (ns).
    pub short_lived_ns: u64,
    /// Show progress on stderr (only drawn when stderr is a terminal): a
    /// progress bar for a file, the live view ([`crate::live_view`]) for a
    /// live source.
    pub progress: bool,
    /// Always collect a file's live set at the peak with a second pass (the
    /// one-pass copy is skipped; for tests comparing the two).
    pub second_pass: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            short_lived_ns: 1_000_000,
            progress: false,
            second_pass: false,
        }
    }
}

/// Damage spans kept as examples per session.
pub const MAX_DAMAGE_EXAMPLES: usize = 50;

/// Damage seen in one session.
#[derive(Clone, Debug, Default)]
pub struct DamageLog {
    /// Damaged spans.
    pub spans: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first ones.
    pub examples: Vec<DamagedSpan>,
    /// Frames missing, repeated or out of order, by their numbers.
    pub frames: crate::frames::sequence::FrameLog,
}

/// What the peak looked like, from the second pass.
#[derive(Clone, Debug, Default)]
pub struct PeakCapture {
    /// Live set by site: `(site, bytes, blocks)`.
    pub sites: Vec<(u32, u64, u64)>,
    /// Heap regions at the peak.
    pub fragmentation: Vec<Fragmentation>,
    /// "two-pass" or "incremental".
    pub method: &'static str,
}

/// One session, analysed.
pub struct SessionRun {
    /// Header, modules, stacks, streams.
    pub session: Session,
    /// The views.
    pub analyses: Analyses,
    /// The live table at the end (the leaks).
    pub state: State,
    /// Damage within the session.
    pub damage: DamageLog,
    /// Events that arrived after later ones had been released by the merge.
    pub late_events: u64,
    /// The live set at the peak.
    pub peak: Option<PeakCapture>,
    /// Heap regions at the end.
    pub fragmentation_end: Vec<Fragmentation>,
    /// Byte offset where the session began.
    pub start_offset: u64,
    clock_set: bool,
    capture_at: Option<u64>,
    /// Heap regions of the session (copied from its header records).
    regions: Vec<(u64, u64)>,
    /// Pass 2: only the live set is replayed.
    replay: Option<crate::analysis::peak::LiveReplay>,
}

impl SessionRun {
    fn new(incremental: bool, start_offset: u64) -> Self {
        SessionRun {
            session: Session::default(),
            analyses: Analyses::new(incremental),
            state: State::new(),
            damage: DamageLog::default(),
            late_events: 0,
            peak: None,
            fragmentation_end: Vec::new(),
            start_offset,
            clock_set: false,
            capture_at: None,
            replay: None,
            regions: Vec::new(),
        }
    }

    /// Applies `ev`; `ahead` is an event coming soon, whose live-table slot
    /// is prefetched.
    #[inline]
    fn apply_ahead(&mut self, ev: &Event, ahead: Option<&Event>) -> bool {
        if let (Some(a), None) = (ahead, &self.replay) {
            self.state.prefetch(a);
        }
        self.apply(ev)
    }

    #[inline]
    fn apply(&mut self, ev: &Event) -> bool {
        let Some(replay) = &mut self.replay else {
            self.analyses.apply(&mut self.state, ev);
            return false;
        };
        replay.apply(ev);
        self.state.seq += 1;
        if self.capture_at == Some(self.state.seq - 1) {
            self.capture_at = None;
            self.peak = Some(PeakCapture {
                sites: replay.sites(),
                fragmentation: self
                    .regions
                    .iter()
                    .map(|&(s, l)| {
                        fragmentation::analyse(s, l, replay.live.iter().map(|(a, b)| (*a, b.1)))
                    })
                    .collect(),
                method: "two-pass",
            });
            return true;
        }
        false
    }

    /// The size of the block live at `addr` (in the pass's own live set).
    #[inline]
    fn live_size(&self, addr: u64) -> Option<u64> {
        match &self.replay {
            Some(r) => r.live.get(&addr).map(|b| b.1),
            None => self.state.live.get(&addr).map(|b| b.size),
        }
    }

    fn for_pass(
        incremental: bool,
        start_offset: u64,
        capture_at: Option<u64>,
        second: bool,
    ) -> Self {
        let mut s = SessionRun::new(incremental, start_offset);
        s.capture_at = capture_at;
        if second {
            s.replay = Some(Default::default());
        }
        s
    }
}

/// The merge's output going into a session: `stop` is set once the second
/// pass captured what it came for. `ANALYSING`: the session's events go to
/// the analyses, not to a second pass's replay of the live set (see
/// [`push_all`] and [`flush`]); known when the code is compiled, it costs
/// the per-event path nothing (asking the session run, through the pointer
/// to it, twice per event was 3 % of the analysing thread's instructions).
struct Feed<'a, const ANALYSING: bool> {
    run: &'a mut SessionRun,
    stop: &'a mut bool,
}

/// `holds.push_all` into `run` through the [`Feed`] that fits it (a
/// session run is made a replay or not when it is made).
fn push_all(holds: &mut Holds, events: &[Event], run: &mut SessionRun, stop: &mut bool) {
    if run.replay.is_none() {
        holds.push_all(events, &mut Feed::<true> { run, stop });
    } else {
        holds.push_all(events, &mut Feed::<false> { run, stop });
    }
}

/// `holds.flush` into `run` (see [`push_all`]).
fn flush(holds: &mut Holds, run: &mut SessionRun, stop: &mut bool) {
    if run.replay.is_none() {
        holds.flush(&mut Feed::<true> { run, stop });
    } else {
        holds.flush(&mut Feed::<false> { run, stop });
    }
}

impl<const ANALYSING: bool> Target for Feed<'_, ANALYSING> {
    #[inline]
    fn live_size(&self, addr: u64) -> Option<Option<u64>> {
        Some(self.run.live_size(addr))
    }

    #[inline]
    fn apply(&mut self, ev: &Event, ahead: Option<&Event>) {
        *self.stop |= self.run.apply_ahead(ev, ahead);
    }

    #[inline]
    fn prefetch_near(&self, near: &Event) {
        if ANALYSING {
            self.run.state.prefetch_free(near);
        }
    }

    // Always: left out of line by the inliner, a call per event cost the
    // analysing thread 5 % more instructions.
    #[inline(always)]
    fn apply_checked(&mut self, ev: &Event, ahead: Option<&Event>) -> bool {
        let run = &mut *self.run;
        if ANALYSING {
            if let Some(a) = ahead {
                run.state.prefetch(a);
            }
            if let Some(applied) = run.analyses.apply_checked(&mut run.state, ev) {
                return applied;
            }
        }
        crate::merge::apply_in_step(self, ev, ahead)
    }
}

/// The whole input, analysed.
pub struct Run {
    /// Input name.
    pub input: String,
    /// Bytes read.
    pub bytes: u64,
    /// Sessions in input order (more than one after a target reset).
    pub sessions: Vec<SessionRun>,
}

/// Input is treated as "not a memscope trace" when this many bytes yield no frame.
const NO_FRAME_LIMIT: u64 = 1 << 20;

struct Pass<'a> {
    input: &'a str,
    incremental: bool,
    opts: &'a Options,
    /// Pass 2: sequence numbers to capture, per session index.
    targets: Option<Vec<Option<u64>>>,
    /// Called with the last session's metadata (see [`run_with`]).
    prepare: Option<Prepare<'a>>,
}

/// Reads and analyses `src`. The live set at the peak is copied during the
/// first pass while that stays cheap; otherwise (and for the block map of a
/// heap region) a file is read a second time, only up to the peak. A live
/// source is read once and always copies.
pub fn run(src: &mut Source, opts: &Options) -> Result<Run, Error> {
    run_with(src, opts, None)
}

/// Work for the report that can be done before the analysis is: see
/// [`run_with`].
#[derive(Clone, Copy)]
pub struct Prepare<'a> {
    /// Work on the last session's metadata (its header and modules: what
    /// symbolization needs, loading debug information).
    pub load: &'a (dyn Fn(&Session) + Sync),
    /// Work on the last session once it has been read (resolving its
    /// stacks' addresses), after `load`'s last call, while the analysing
    /// thread catches up. It may stop at any point and must stop soon once
    /// the flag it is given is set: the analysis is done.
    pub warm: &'a (dyn Fn(&Session, &AtomicBool) + Sync),
}

/// [`run`], also calling `prepare.load` with the last session: for a file, first
/// on a thread of its own with the header, modules and (if any) a stack
/// known when the first batch of events goes out — the analysing thread
/// waits for the merge's first window then, so loading debug information
/// (a few hundred million instructions for a Rust program) overlaps the
/// decode — and again once the input has been read, on the decoding thread,
/// only if those changed. A live source gets one call once it has been read.
/// Its last call is never before the last session's metadata is complete;
/// when reading fails it is not called again. For a file read on two
/// threads, `prepare.warm` follows the early call on its thread, with the
/// stacks known then, and runs again on the decoding thread once the input
/// has been read, at the lowest priority, until the analysing thread is
/// done.
pub fn run_with(
    src: &mut Source,
    opts: &Options,
    prepare: Option<Prepare<'_>>,
) -> Result<Run, Error> {
    let incremental = !src.rereadable();
    let reader = src.reader().map_err(|cause| Error::Unreadable {
        input: src.name.clone(),
        offset: None,
        cause,
    })?;
    let pass = Pass {
        input: &src.name,
        incremental,
        opts,
        targets: None,
        prepare,
    };
    let (mut sessions, bytes) = pass.run(reader, src.len)?;
    // One-pass copies serve every session that has no heap region to map
    // and whose copies stayed within budget.
    for s in &mut sessions {
        let needs_map = !s.session.regions.is_empty() && !incremental;
        if needs_map || (opts.second_pass && !incremental) {
            continue;
        }
        if let Some(sites) = s.analyses.peak_sites.take() {
            s.peak = Some(PeakCapture {
                sites,
                fragmentation: Vec::new(),
                method: if incremental {
                    "incremental"
                } else {
                    "one-pass"
                },
            });
        }
    }
    if !incremental {
        let targets: Vec<Option<u64>> = sessions
            .iter()
            .map(|s| {
                if s.peak.is_some() {
                    None
                } else {
                    s.analyses.peak.peak_seq
                }
            })
            .collect();
        if targets.iter().any(Option::is_some) {
            let reader = src.reader().map_err(|cause| Error::Unreadable {
                input: src.name.clone(),
                offset: None,
                cause,
            })?;
            let pass2 = Pass {
                input: &src.name,
                incremental: false,
                opts,
                targets: Some(targets),
                prepare: None,
            };
            let (second, _) = pass2.run(reader, None)?;
            for (s, t) in sessions.iter_mut().zip(second) {
                if s.peak.is_none() {
                    s.peak = t.peak;
                }
            }
        }
    }
    Ok(Run {
        input: src.name.clone(),
        bytes,
        sessions,
    })
}

/// Events handed from the decoding side to the analysing side at once, when
/// the two run on their own threads (a file): a batch goes once it holds
/// this many. Large enough that the channel costs little per event (the
/// merge keeps a batch of one stream as it is, so it is not copied again).
const BATCH_EVENTS: usize = 32768;
/// Room a batch has past [`BATCH_EVENTS`] for the frame that fills it: a
/// 32 KiB frame of memscope-std holds about 5,000 events, so a batch
/// rarely grows (a batch that did would sit in the merge half empty).
const FRAME_EVENTS: usize = 8192;
/// Batches in flight between the two threads. Both threads are busy for
/// nine tenths of a 2-thread churn trace's decode, so whichever is held up
/// (the host takes its core away for a few milliseconds, say) soon holds
/// up the other, and 4 in flight are a few milliseconds of either's work.
/// With 8, the 2-thread traces decoded in 0.98 of the time (21 interleaved
/// rounds, on a quiet machine and beside a process busy 3 ms in every 10;
/// shorter series ranged from 0.91 to 1.01), for 5 MiB more peak RSS; the
/// 1-thread ones did not change. 16 gave no more and took 16 MiB.
const BATCHES_IN_FLIGHT: usize = 8;

/// What the decoding side found besides heap events, placed between them.
enum Mark {
    /// The stream's End was read: it delivers nothing more.
    Close(u32),
    /// The session's header gave its clock.
    Clock(u64),
    /// The session's heap regions so far.
    Regions(Vec<(u64, u64)>),
    /// Bytes that did not decode.
    Damaged(DamagedSpan),
    /// A target reset in the frame at this offset: the session decoded so
    /// far is complete.
    Reset(u64, Box<Session>),
    /// Events the producers reported lost so far in the session.
    Lost(u64),
    /// Clock readings the merge released after later ones (see
    /// [`Merger::late`]), since the last such mark.
    Late(u64),
    /// A frame missing, repeated or out of order.
    Sequence(crate::frames::sequence::Issue),
}

/// Heap events with marks at the event index they follow: decoded, in
/// input order cut into runs of one stream; or merged (no runs), in the
/// order the analyses take them.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    /// The events cut into runs of one stream (a frame's events, or the part
    /// of one before or after a reset), in order: the merge takes a run at
    /// once (one lane lookup, one copy), not event by event.
    runs: Vec<StreamRun>,
    marks: Vec<(usize, Mark)>,
    /// The earliest timestamp of `events` (meaningless while `runs` is
    /// empty).
    oldest: u64,
    /// Decoded: every event of the session earlier than this is in this
    /// batch or was shipped before it (the producer's watermark, lowered to
    /// the batches still decoding; 0: nothing known).
    watermark: u64,
}

/// Events `[previous run's end, end)` of a [`Batch`], all of `stream`.
#[derive(Clone, Copy)]
struct StreamRun {
    stream: u32,
    end: usize,
    /// Their largest timestamp.
    newest: u64,
}

impl Batch {
    fn clear(&mut self) {
        self.events.clear();
        self.runs.clear();
        self.marks.clear();
        self.watermark = 0;
    }

    /// Events as early as `ts` were added.
    fn note_oldest(&mut self, ts: u64) {
        // `oldest` is stale in an emptied batch: the first run resets it.
        if self.runs.is_empty() {
            self.oldest = ts;
        } else {
            self.oldest = self.oldest.min(ts);
        }
    }

    /// Where the next run starts.
    fn run_start(&self) -> usize {
        self.runs.last().map_or(0, |r| r.end)
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.marks.is_empty()
    }

    /// The events since the last run are `stream`'s: they lengthen the
    /// last run when it is the same stream's and no mark sits between
    /// (a batch of one thread's frames is then one run, which the merge
    /// can take whole), or start a run.
    fn extend_run(&mut self, stream: u32, newest: u64) {
        let end = self.events.len();
        let mark_at = self.marks.last().map(|m| m.0);
        match self.runs.last_mut() {
            Some(r) if r.stream == stream && mark_at.is_none_or(|m| m < r.end) => {
                r.end = end;
                r.newest = r.newest.max(newest);
            }
            _ => self.runs.push(StreamRun {
                stream,
                end,
                newest,
            }),
        }
    }
}

/// The decoding side: frames → records → batches of events.
struct Decoding<'a> {
    input: &'a str,
    dec: Decoder,
    frames_ok: u64,
    /// A frame's CRC checked out (see [`Piece::Verified`]).
    verified: bool,
    clock_sent: bool,
    regions_sent: usize,
    lost_sent: u64,
}

impl Decoding<'_> {
    fn mark(batch: &mut Batch, mark: Mark) {
        batch.marks.push((batch.events.len(), mark));
    }

    fn frame(
        &mut self,
        stream: u32,
        records: &[u8],
        offset: u64,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        self.frames_ok += 1;
        let mut from = 0;
        loop {
            let events = &mut batch.events;
            let (mut newest, mut oldest) = (0, u64::MAX);
            let outcome = self
                .dec
                .decode_frame(stream, records, offset, from, &mut |ev| {
                    newest = newest.max(ev.ts);
                    oldest = oldest.min(ev.ts);
                    events.push(ev);
                });
            if batch.events.len() > batch.run_start() {
                batch.note_oldest(oldest);
                batch.extend_run(stream, newest);
            }
            match outcome {
                FrameOutcome::Done => break,
                FrameOutcome::Reset(pos) => {
                    let finished = self.dec.start_session();
                    Self::mark(batch, Mark::Reset(offset, Box::new(finished)));
                    self.clock_sent = false;
                    self.regions_sent = 0;
                    self.lost_sent = 0;
                    from = pos;
                }
                FrameOutcome::UnsupportedVersion(v) => {
                    return Err(Error::NotATrace {
                        input: self.input.to_owned(),
                        offset,
                        reason: format!(
                            "trace format version {v} is newer than this decoder reads (up to {}); update memscope-decode",
                            memscope_core::wire::FORMAT_VERSION
                        ),
                    });
                }
            }
        }
        let session = &self.dec.session;
        if !self.clock_sent {
            if let Some(h) = &session.header {
                Self::mark(batch, Mark::Clock(h.ticks_per_second));
                self.clock_sent = true;
            }
        }
        if self.dec.frame_ended {
            Self::mark(batch, Mark::Close(stream));
        }
        if self.regions_sent != session.regions.len() {
            Self::mark(batch, Mark::Regions(session.regions.clone()));
            self.regions_sent = session.regions.len();
        }
        let lost = session.streams.get(&stream).map_or(0, |s| s.counts.lost);
        if lost != 0 {
            let total = session
                .streams
                .values()
                .map(|s| s.counts.lost)
                .fold(0, u64::saturating_add);
            if total != self.lost_sent {
                Self::mark(batch, Mark::Lost(total));
                self.lost_sent = total;
            }
        }
        Ok(())
    }

    fn damaged(&mut self, span: DamagedSpan, batch: &mut Batch) -> Result<(), Error> {
        self.dec.damage();
        Self::mark(batch, Mark::Damaged(span));
        if self.frames_ok == 0 && span.offset + span.len >= NO_FRAME_LIMIT {
            return Err(not_a_trace(self.input, span.offset + span.len));
        }
        Ok(())
    }

    /// Reads `reader` to its end, handing a batch to `ship` whenever it holds
    /// `ship_at` events (1: after every frame) and at the end. `ship` says
    /// whether to go on.
    ///
    /// Batched (`ship_at` > 1) and once the clock is known, each stream's
    /// events go into a batch of their own (see [`Split`]), which the merge
    /// then takes whole instead of copying each stream's runs into its lane.
    fn read(
        &mut self,
        reader: Box<dyn Read + Send>,
        progress: &indicatif::ProgressBar,
        ship_at: usize,
        batch: &mut Batch,
        ship: &mut ShipDecoded<'_>,
        merge_buffered: &Cell<usize>,
    ) -> Result<u64, Error> {
        let mut fatal = None;
        let mut split = Split::default();
        let result = read_frames(
            reader,
            |off| progress.set_position(off),
            |piece| {
                let hold = if ship_at > 1 { self.hold() } else { None };
                let r = match piece {
                    Piece::Frame(stream, records, offset) => match hold {
                        Some(hold) => {
                            let i = match split.slot(stream, &self.dec.session, batch, ship) {
                                Some(i) => i,
                                None => return Flow::Stop,
                            };
                            match self.frame(stream, records, offset, &mut split.own[i].1) {
                                Ok(()) => {
                                    let session = &self.dec.session;
                                    split.merge_buffered = merge_buffered.get();
                                    if !split.after_frame(i, hold, ship_at, session, batch, ship) {
                                        return Flow::Stop;
                                    }
                                    return Flow::Continue;
                                }
                                Err(e) => Err(e),
                            }
                        }
                        None => self.frame(stream, records, offset, batch),
                    },
                    Piece::Damaged(span) => {
                        // Marks between frames: what was decoded before goes first.
                        if !split.ship_all(&self.dec.session, batch, ship) {
                            return Flow::Stop;
                        }
                        self.damaged(span, batch)
                    }
                    Piece::Verified => {
                        self.verified = true;
                        Ok(())
                    }
                    Piece::Sequence(issue) => {
                        if !split.ship_all(&self.dec.session, batch, ship) {
                            return Flow::Stop;
                        }
                        Self::mark(batch, Mark::Sequence(issue));
                        Ok(())
                    }
                    Piece::Waiting(waiting) => {
                        self.dec.pause_watermarks(waiting);
                        Ok(())
                    }
                    Piece::Desync(stream) => {
                        self.dec.desync_stream(stream);
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    fatal = Some(e);
                    return Flow::Stop;
                }
                // (In split mode the shared batch holds only marks, which go
                // before any stream's batch.)
                if batch.events.len() >= ship_at {
                    split.note(batch);
                    batch.watermark = split.watermark_for(&self.dec.session, None);
                    if !ship(batch, &self.dec.session, true) {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            },
        );
        if let Some(e) = fatal {
            return Err(e);
        }
        let bytes = result.map_err(|(offset, cause)| Error::Unreadable {
            input: self.input.to_owned(),
            offset: Some(offset),
            cause,
        })?;
        split.ship_all(&self.dec.session, batch, ship);
        if !batch.is_empty() {
            ship(batch, &self.dec.session, true);
        }
        Ok(bytes)
    }

    /// The merge's hold-back in ticks once the session's clock is known.
    fn hold(&self) -> Option<u64> {
        let tps = self.dec.session.header.as_ref()?.ticks_per_second;
        match Window::for_clock(tps) {
            Window::Ticks { hold, .. } => Some(hold),
            Window::Events(_) => None,
        }
    }
}

/// Streams that get a batch of their own at once (see [`Split`]); a frame
/// of one more stream ships them all first.
const SPLIT_STREAMS: usize = 8;

/// Takes a decoded batch into the merge (see [`Merging::take`]): the
/// session so far, and whether the merge is to release what it can now
/// (false: more batches follow at once, and the merge waits for them).
type ShipDecoded<'s> = dyn FnMut(&mut Batch, &Session, bool) -> bool + 's;

/// The decoding thread's batches of one stream each. A batch of several
/// streams' frames is copied run by run into the merge's lanes; a batch of
/// one stream joins its lane whole (on the 2-thread churn trace the copies
/// moved every event once more, 384 MB).
///
/// The merge releases only events a hold-back older than the latest
/// timestamp it was given, so an event waiting here must reach it before
/// that passes the event: a stream's batch goes when it is full, and with it
/// (pushed before the merge releases once) every other stream's batch whose
/// earliest event is half a hold-back older than the latest timestamp of
/// all that goes, found again after each addition (one batch that goes can
/// make another due). The merge also releases inside its window once it
/// holds more than [`MAX_BUFFERED`] events (a trace of 33M events a second,
/// as the 2-thread churn trace is on a fast machine, fills it in 30 ms), so
/// when what goes takes the merge past that bound, every batch goes with
/// it: without that, the main thread's frame of that trace waited 25 ms of
/// trace time here while the full merge released past its events (15 late,
/// and two cross-thread frees reported as frees of unknown blocks). A
/// review found that a bound on the events shipped while a batch waits
/// (128K, the first fix) still let a frame written 9.5 ms after its event
/// come late where the decoder before the split kept it in order. A batch
/// holding a mark goes after all the others, which were decoded before it;
/// so does every batch before a mark between frames, at the end, and when
/// a ninth stream needs a batch. The shared
/// batch (the session's first frames, marks between frames) holds what was
/// decoded before any of them and goes first.
#[derive(Default)]
struct Split {
    own: Vec<(u32, Batch)>,
    /// Emptied batches to reuse (a trace of many threads turns them over).
    spare: Vec<Batch>,
    /// The latest timestamp shipped so far (in the session).
    newest: u64,
    /// Events the merge held after it last took a batch.
    merge_buffered: usize,
    /// The session's watermark when a frame last raised it.
    watermark: u64,
}

/// At a new watermark, a stream's batch this small goes into the merge if
/// the watermark passed its first event (a thread that allocates rarely
/// would otherwise hold the merge's watermark back until its batch fills);
/// a larger one fills soon enough, and is not copied into its lane half
/// full.
const WATERMARK_SHIPS: usize = BATCH_EVENTS / 8;

impl Split {
    /// The index of `stream`'s batch, made if need be (shipping them all
    /// first when [`SPLIT_STREAMS`] are open); `None`: `ship` said stop.
    fn slot(
        &mut self,
        stream: u32,
        session: &Session,
        shared: &mut Batch,
        ship: &mut ShipDecoded<'_>,
    ) -> Option<usize> {
        if let Some(i) = self.own.iter().position(|(s, _)| *s == stream) {
            return Some(i);
        }
        if self.own.len() == SPLIT_STREAMS {
            if !self.ship_all(session, shared, ship) {
                return None;
            }
            self.spare.extend(self.own.drain(..).map(|(_, b)| b));
        }
        let mut b = self.spare.pop().unwrap_or_default();
        b.events.reserve_exact(BATCH_EVENTS + FRAME_EVENTS);
        self.own.push((stream, b));
        Some(self.own.len() - 1)
    }

    /// Batch `i` took a frame: ships what is due (see [`Split`]).
    fn after_frame(
        &mut self,
        i: usize,
        hold: u64,
        ship_at: usize,
        session: &Session,
        shared: &mut Batch,
        ship: &mut ShipDecoded<'_>,
    ) -> bool {
        let b = &self.own[i].1;
        let mut due = vec![false; self.own.len()];
        due[i] = true;
        // A new watermark: what it passed in small batches goes, and the
        // merge hears of it even if nothing does.
        let raised = session.watermark > self.watermark;
        if raised {
            self.watermark = session.watermark;
            for (j, (_, o)) in self.own.iter().enumerate() {
                due[j] = !o.events.is_empty()
                    && o.oldest < self.watermark
                    && o.events.len() < WATERMARK_SHIPS;
            }
        }
        if !b.marks.is_empty() {
            due.fill(true);
        } else if b.events.len() < ship_at {
            if !raised {
                return true;
            }
            due[i] |= b.events.len() < WATERMARK_SHIPS;
        } else {
            due[i] = true;
            let mut newest = self.newest.max(newest_of(b)).max(newest_of(shared));
            // Events in the merge once these go.
            let mut going = self.merge_buffered + b.events.len() + shared.events.len();
            loop {
                let mut more = false;
                for (j, (_, o)) in self.own.iter().enumerate() {
                    if !due[j]
                        && !o.events.is_empty()
                        && o.oldest.saturating_add(hold / 2) <= newest
                    {
                        due[j] = true;
                        newest = newest.max(newest_of(o));
                        going += o.events.len();
                        more = true;
                    }
                }
                if !more {
                    break;
                }
            }
            // Past its bound the merge releases whatever its window says.
            if going > MAX_BUFFERED {
                due.fill(true);
            }
        }
        let order: Vec<usize> = (0..self.own.len())
            .filter(|&j| due[j] && j != i)
            .chain(due[i].then_some(i))
            .collect();
        self.ship_in_order(&order, session, shared, ship, raised)
    }

    /// The watermark for a batch shipped now: the session's, lowered to
    /// the earliest event still held here but in batch `going` (or none).
    fn watermark_for(&self, session: &Session, going: Option<usize>) -> u64 {
        self.own
            .iter()
            .enumerate()
            .filter(|&(j, (_, b))| Some(j) != going && !b.events.is_empty())
            .map(|(_, (_, b))| b.oldest)
            .fold(session.watermark, u64::min)
    }

    /// Ships the shared batch and then batches `order`, the merge releasing
    /// once, after the last, which carries the watermark (the ones before
    /// it are emptied by then). With `always`, the shared batch goes even
    /// if nothing does, for the watermark.
    fn ship_in_order(
        &mut self,
        order: &[usize],
        session: &Session,
        shared: &mut Batch,
        ship: &mut ShipDecoded<'_>,
        always: bool,
    ) -> bool {
        let order: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&j| !self.own[j].1.is_empty())
            .collect();
        let with_shared = !shared.is_empty() || (always && order.is_empty());
        let mut left = order.len() + usize::from(with_shared);
        if with_shared {
            left -= 1;
            self.note(shared);
            if left == 0 {
                shared.watermark = self.watermark_for(session, None);
            }
            if !ship(shared, session, left == 0) {
                return false;
            }
        }
        for j in order {
            left -= 1;
            let b = &mut self.own[j].1;
            let reset_at = b
                .marks
                .iter()
                .rev()
                .find(|(_, m)| matches!(m, Mark::Reset(..)))
                .map(|(at, _)| *at);
            // A reset starts the merge's timestamps afresh: only the runs
            // after it count (runs end at or before a mark, and start at
            // or after it).
            self.newest = match reset_at {
                Some(at) => b
                    .runs
                    .iter()
                    .filter(|r| r.end > at)
                    .map(|r| r.newest)
                    .max()
                    .unwrap_or(0),
                None => self.newest.max(newest_of(b)),
            };
            if left == 0 {
                let w = self.watermark_for(session, Some(j));
                self.own[j].1.watermark = w;
            }
            let b = &mut self.own[j].1;
            if !ship(b, session, left == 0) {
                return false;
            }
        }
        true
    }

    /// Counts the latest timestamp of the shared batch, about to go.
    fn note(&mut self, shared: &Batch) {
        self.newest = self.newest.max(newest_of(shared));
    }

    /// Ships every batch (before a mark between frames, and at the end).
    fn ship_all(
        &mut self,
        session: &Session,
        shared: &mut Batch,
        ship: &mut ShipDecoded<'_>,
    ) -> bool {
        let order: Vec<usize> = (0..self.own.len()).collect();
        self.ship_in_order(&order, session, shared, ship, false)
    }
}

/// The latest timestamp of a decoded batch.
fn newest_of(b: &Batch) -> u64 {
    b.runs.iter().map(|r| r.newest).max().unwrap_or(0)
}

/// What [`Prepare`] may look at of a session: its header, its modules and
/// whether it records call stacks.
#[derive(PartialEq)]
struct Metadata {
    header: Option<crate::records::HeaderInfo>,
    modules: Vec<crate::records::ModuleInfo>,
    /// The first stack, when there is one.
    stack: Option<Box<[u64]>>,
}

impl Metadata {
    fn of(s: &Session) -> Self {
        Metadata {
            header: s.header.clone(),
            modules: s.modules.clone(),
            stack: (!s.stacks.is_empty()).then(|| s.stacks.get(1).into()),
        }
    }

    /// A session holding only this.
    fn session(&self) -> Session {
        let mut s = Session::default();
        s.header.clone_from(&self.header);
        s.modules.clone_from(&self.modules);
        if let Some(frames) = &self.stack {
            s.stacks.intern(frames);
        }
        s
    }
}

/// The merging side: decoded batches → events in merged order (by time; see
/// `merge.rs`), with the marks between them, in batches. On the decoding
/// thread for a file: the merge (its window of buffered events, its copies
/// and its heap of streams) cost the analysing thread about as much as
/// decoding costs this one, so the analysing thread now only holds streams
/// out of step with its live set and analyses.
struct Merging {
    merger: Merger,
    out: Batch,
    /// Events taken since the merge last released (see
    /// [`release`](Self::release)).
    taken: usize,
}

/// Takes a merged batch; returns whether to go on. It leaves the batch
/// emptied (or swaps in an empty one).
type Ship<'s> = dyn FnMut(&mut Batch) -> bool + 's;

impl Merging {
    fn new() -> Self {
        Merging {
            merger: Merger::new(),
            out: Batch::default(),
            taken: 0,
        }
    }

    /// Takes one decoded batch, handing merged batches to `ship` when they
    /// hold [`BATCH_EVENTS`] events and, unless `batched`, whatever the
    /// batch released. Without `release`, more batches follow at once and
    /// nothing is released for now (but a reset's session still is).
    /// Returns whether to go on.
    fn take(
        &mut self,
        batch: &mut Batch,
        batched: bool,
        release: bool,
        ship: &mut Ship<'_>,
    ) -> bool {
        let Batch {
            events,
            runs,
            marks,
            watermark,
            ..
        } = batch;
        self.taken += events.len();
        // Marks sit between frames, so every run ends at or before the next
        // mark's position. A run that is the whole batch joins the merge
        // without a copy, and `events` comes back emptied.
        let whole = runs.len() == 1;
        let mut runs = runs.iter().peekable();
        let mut at = 0;
        let mut push_until = |merger: &mut Merger, pos: usize| {
            while let Some(r) = runs.next_if(|r| r.end <= pos) {
                if whole {
                    merger.push_vec(r.stream, events, r.newest);
                } else {
                    merger.push_run(r.stream, &events[at..r.end], r.newest);
                }
                at = r.end;
            }
        };
        for (pos, mark) in marks.drain(..) {
            push_until(&mut self.merger, pos);
            match mark {
                Mark::Close(stream) => self.merger.close(stream),
                Mark::Clock(tps) => {
                    self.merger.set_window(Window::for_clock(tps));
                    self.mark(Mark::Clock(tps));
                }
                Mark::Reset(..) => {
                    // The session's events go before the reset.
                    if !self.release(true, ship) {
                        return false;
                    }
                    self.mark(mark);
                }
                _ => self.mark(mark),
            }
        }
        push_until(&mut self.merger, usize::MAX);
        // After the batch's events: it vouches for them too.
        self.merger.raise_watermark(*watermark);
        if !release {
            return true;
        }
        // A live source ships after every frame, released events or not:
        // the live view is updated there.
        self.release(false, ship) && (batched || ship(&mut self.out))
    }

    /// The input ended: everything goes. Returns whether the analysing side
    /// went on.
    fn finish(&mut self, ship: &mut Ship<'_>) -> bool {
        self.release(true, ship) && (self.out.is_empty() || ship(&mut self.out))
    }

    /// A mark after the events released so far.
    fn mark(&mut self, mark: Mark) {
        self.out.marks.push((self.out.events.len(), mark));
    }

    /// Releases what the merge can (everything at the `end` of a session),
    /// shipping each full batch; at the end, the count of late events
    /// follows.
    ///
    /// Short of the end, it ships at most about half as much again as it
    /// was given since it last released (at least a batch), and leaves the
    /// rest for next time: a watermark can make a few hundred thousand
    /// events releasable at once, and shipping them all filled the channel
    /// to the analysing thread, so the decoding thread waited for it and
    /// then the analysing thread for the decoding one, in turns.
    fn release(&mut self, end: bool, ship: &mut Ship<'_>) -> bool {
        let budget = (self.taken + self.taken / 2).max(BATCH_EVENTS);
        self.taken = 0;
        let mut shipped = 0;
        loop {
            let more = if end {
                !self.merger.flush_to(&mut self.out.events, BATCH_EVENTS)
            } else {
                self.merger.drain_to(&mut self.out.events, BATCH_EVENTS)
            };
            if !more {
                break;
            }
            shipped += self.out.events.len();
            if !ship(&mut self.out) {
                return false;
            }
            if !end && shipped >= budget {
                break;
            }
        }
        if end && self.merger.late != 0 {
            let late = std::mem::take(&mut self.merger.late);
            self.mark(Mark::Late(late));
        }
        true
    }
}

/// The analysing side: merged batches → holds → sessions' state and
/// analyses.
struct Analysing<'a> {
    pass: &'a Pass<'a>,
    /// Streams held while out of step with the live set (see `merge.rs`).
    holds: Holds,
    cur: SessionRun,
    done: Vec<SessionRun>,
    /// The second pass captured what it came for.
    stop: bool,
    view: LiveView<std::io::Stderr>,
    lost: u64,
}

impl Analysing<'_> {
    /// Takes one merged batch; returns whether to go on.
    fn take(&mut self, batch: &mut Batch) -> bool {
        let mut at = 0;
        for (pos, mark) in batch.marks.drain(..) {
            push_all(
                &mut self.holds,
                &batch.events[at..pos],
                &mut self.cur,
                &mut self.stop,
            );
            at = pos;
            self.mark(mark);
        }
        push_all(
            &mut self.holds,
            &batch.events[at..],
            &mut self.cur,
            &mut self.stop,
        );
        if self.view.is_active() {
            let now = Instant::now();
            if self.view.due(now) {
                let f = figures(&self.cur, self.lost, self.done.len() + 1);
                self.view.update(now, &f);
            }
        }
        let targets = self.pass.targets.as_ref();
        !(self.stop && targets.is_some_and(|t| t.len() <= self.done.len() + 1))
    }

    /// The input is read: releases what is still held (a second pass that
    /// captured what it came for needs no more). Running it again finds
    /// nothing to release.
    fn flush(&mut self) {
        if !self.stop {
            let mut ignored = false;
            flush(&mut self.holds, &mut self.cur, &mut ignored);
        }
    }

    fn mark(&mut self, mark: Mark) {
        match mark {
            // The merging side closed the stream.
            Mark::Close(_) => {}
            Mark::Clock(tps) => {
                self.cur
                    .analyses
                    .set_clock(tps, self.pass.opts.short_lived_ns);
                self.cur.clock_set = true;
                self.holds.set_slack(Window::for_clock(tps).slack());
            }
            Mark::Late(n) => self.cur.late_events += n,
            Mark::Regions(r) => self.cur.regions = r,
            Mark::Damaged(span) => {
                let d = &mut self.cur.damage;
                d.spans += 1;
                d.bytes += span.len;
                if d.examples.len() < MAX_DAMAGE_EXAMPLES {
                    d.examples.push(span);
                }
            }
            Mark::Lost(n) => self.lost = n,
            Mark::Sequence(issue) => self.cur.damage.frames.add(issue),
            Mark::Reset(offset, session) => {
                flush(&mut self.holds, &mut self.cur, &mut self.stop);
                let target = self
                    .pass
                    .targets
                    .as_ref()
                    .and_then(|t| t.get(self.done.len() + 1).copied().flatten());
                let next = SessionRun::for_pass(
                    self.pass.incremental,
                    offset,
                    target,
                    self.pass.targets.is_some(),
                );
                let finished = std::mem::replace(&mut self.cur, next);
                self.done.push(finish(finished, *session));
                self.lost = 0;
            }
        }
    }
}

impl Pass<'_> {
    /// Runs the pass. A file is decoded on a thread of its own while this
    /// one merges and analyses (the two halves cost about the same); a live
    /// source is handled frame by frame on this thread, so that what it
    /// shows is never a batch behind.
    fn run(
        &self,
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Result<(Vec<SessionRun>, u64), Error> {
        // A file gets a progress bar; a live stream, whose length is unknown,
        // the live view of the heap instead.
        let progress = progress_bar(
            self.opts.progress && self.targets.is_none() && !self.incremental,
            len,
        );
        let mut decoding = Decoding {
            input: self.input,
            dec: Decoder::new(),
            frames_ok: 0,
            verified: false,
            clock_sent: false,
            regions_sent: 0,
            lost_sent: 0,
        };
        let mut merging = Merging::new();
        let mut an = Analysing {
            pass: self,
            holds: Holds::default(),
            cur: SessionRun::for_pass(
                self.incremental,
                0,
                self.targets
                    .as_ref()
                    .and_then(|t| t.first().copied().flatten()),
                self.targets.is_some(),
            ),
            done: Vec::new(),
            stop: false,
            view: LiveView::stderr(
                self.opts.progress && self.targets.is_none() && self.incremental,
            ),
            lost: 0,
        };
        let bytes = if self.incremental {
            let mut batch = Batch::default();
            let ship = &mut |m: &mut Batch| {
                let go_on = an.take(m);
                m.clear();
                go_on
            };
            // Frame by frame: no stream's batch waits (see `Split`).
            let unsplit = Cell::new(0);
            let bytes = decoding.read(
                reader,
                &progress,
                1,
                &mut batch,
                &mut |b, _, release| {
                    let go_on = merging.take(b, false, release, ship);
                    b.clear();
                    go_on
                },
                &unsplit,
            );
            if bytes.is_ok() {
                merging.finish(ship);
            }
            if let (Ok(_), Some(p)) = (&bytes, self.prepare) {
                (p.load)(&decoding.dec.session);
            }
            bytes
        } else {
            let prefault = prefault_count(len);
            self.run_threaded(
                reader,
                &progress,
                prefault,
                &mut decoding,
                &mut merging,
                &mut an,
            )
        };
        progress.finish_and_clear();
        an.view.finish();
        let bytes = bytes?;
        an.flush();
        let Analysing { cur, mut done, .. } = an;
        done.push(finish(cur, decoding.dec.start_session()));
        if self.targets.is_none() {
            check_is_trace(
                self.input,
                bytes,
                decoding.frames_ok,
                decoding.verified,
                &done,
            )?;
        }
        Ok((done, bytes))
    }

    /// Decoding on a scoped thread, batches over a bounded channel (and back
    /// again, emptied, to be reused), analysis on this thread, which faults
    /// in up to `prefault` batch vectors for the decoding thread while it
    /// waits for the first batch (see [`prefault_count`]).
    fn run_threaded(
        &self,
        reader: Box<dyn Read + Send>,
        progress: &indicatif::ProgressBar,
        prefault: usize,
        decoding: &mut Decoding<'_>,
        merging: &mut Merging,
        an: &mut Analysing<'_>,
    ) -> Result<u64, Error> {
        use std::sync::mpsc::{sync_channel, RecvTimeoutError, TrySendError};
        let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (empty_tx, empty_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 2);
        let (faulted_tx, faulted_rx) = sync_channel::<Vec<Event>>(FAULTED_AHEAD);
        let prepare = self.prepare;
        let analysed = &AtomicBool::new(false);
        std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                // A batch vector: one faulted in by the analysing thread
                // when there is one, else a new one.
                let room = |v: &mut Vec<Event>| {
                    if v.capacity() == 0 {
                        if let Ok(f) = faulted_rx.try_recv() {
                            *v = f;
                        }
                    }
                    batch_room(v);
                };
                let mut batch = Batch::default();
                room(&mut batch.events);
                // What the merge holds, for the split (see `Split`).
                let merge_buffered = Cell::new(0);
                // `prepare` starts on a thread of its own with the first
                // batch (the header and modules come first), while the
                // analysing thread still waits for the merge's first window;
                // it runs again at the end only if the session changed.
                let mut early = None;
                let send = &mut |m: &mut Batch| {
                    let mut next = empty_rx.try_recv().unwrap_or_default();
                    room(&mut next.events);
                    std::mem::swap(m, &mut next);
                    // A closed channel: the analysing side has what it needs.
                    full_tx.send(next).is_ok()
                };
                let ship = &mut |b: &mut Batch, session: &Session, release: bool| {
                    if let (None, Some(p), Some(_)) = (&early, prepare, &session.header) {
                        let meta = Metadata::of(session);
                        let mut copy = meta.session();
                        // The stacks known so far, to warm while the
                        // analysing thread waits for the first window.
                        let known = session.stacks.len().min(EARLY_STACKS) as u32;
                        for id in 2..=known {
                            copy.stacks.intern(session.stacks.get(id));
                        }
                        early = Some((
                            meta,
                            scope.spawn(move || {
                                in_the_background();
                                (p.load)(&copy);
                                (p.warm)(&copy, analysed);
                            }),
                        ));
                    }
                    let go_on = merging.take(b, true, release, send);
                    merge_buffered.set(merging.merger.buffered());
                    // A batch taken whole by the merge came back with a
                    // segment it had drained (or none, while it fills);
                    // else one the merge has drained since.
                    b.clear();
                    if b.events.capacity() == 0 {
                        if let Some(v) = merging.merger.spare() {
                            b.events = v;
                        }
                    }
                    room(&mut b.events);
                    go_on
                };
                let bytes = decoding.read(
                    reader,
                    progress,
                    BATCH_EVENTS,
                    &mut batch,
                    ship,
                    &merge_buffered,
                );
                if bytes.is_ok() {
                    merging.finish(send);
                }
                // The last batch is on its way: this thread is free while
                // the analysing one catches up.
                drop(full_tx);
                let again = match early {
                    Some((meta, handle)) => {
                        handle
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p));
                        meta != Metadata::of(&decoding.dec.session)
                    }
                    None => true,
                };
                if let (Ok(_), Some(p), true) = (&bytes, prepare, again) {
                    (p.load)(&decoding.dec.session);
                }
                // What is left of this thread's time, until the analysing
                // thread is done, goes to work the report would otherwise
                // do after it, alone.
                if let (Ok(_), Some(p)) = (&bytes, prepare) {
                    in_the_background();
                    (p.warm)(&decoding.dec.session, analysed);
                }
                bytes
            });
            // Until the first batch comes (the merge's first window: a
            // million events decoded into fresh memory, which this machine
            // faults in at 0.8 ms a MiB), fault in batch vectors for the
            // decoding thread, one at a time, a few ahead of what it took
            // (a trace of few events and many bytes, deep stacks, takes
            // few: a review measured 64 MiB of peak RSS for 32 when all
            // went at once).
            let mut first = None;
            let mut ready = None;
            let mut made = 0;
            while made < prefault {
                let v = ready.take().unwrap_or_else(faulted_in);
                let wait = match faulted_tx.try_send(v) {
                    Ok(()) => {
                        made += 1;
                        Duration::ZERO
                    }
                    Err(TrySendError::Full(v)) => {
                        ready = Some(v);
                        Duration::from_millis(1)
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                };
                match full_rx.recv_timeout(wait) {
                    Ok(b) => {
                        first = Some(b);
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            drop((faulted_tx, ready));
            for mut batch in first.into_iter().chain(full_rx.iter()) {
                let go_on = an.take(&mut batch);
                batch.clear();
                let _ = empty_tx.try_send(batch);
                if !go_on {
                    break;
                }
            }
            // Dropping the receivers ends a producer that is still reading.
            drop(full_rx);
            drop(empty_tx);
            // What is still held is released while the producer loads
            // symbols, not after.
            an.flush();
            // Relaxed: the flag only asks the producer to stop early; what
            // it did is handed over by the join below.
            analysed.store(true, Ordering::Relaxed);
            producer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

/// Lowers the calling thread's priority to the least (nice 19), where
/// it runs on what the decoding and analysing threads leave: loading debug
/// information early (`Prepare`) took a core from them for the first 100
/// ms of the stacks churn traces on a 2-core machine, while the decoding
/// thread idles for a third of the time after the first window. Linux
/// applies `setpriority` to the calling thread alone; elsewhere, nothing.
fn in_the_background() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; a failure (not allowed,
    // say) leaves the priority as it was, which is only slower.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// At most this many stacks go to [`Prepare::warm`] early, with the
/// metadata (a copy: about 250 bytes a stack).
const EARLY_STACKS: usize = 4096;

/// Gives an emptied batch vector room for exactly one batch and a frame.
/// Not less: a vector handed back smaller would double, and the merge would
/// copy a batch that fills half of it. Nor more: a merged batch the merge
/// filled by copying may have grown (to 58,012 events on a 1-thread churn
/// trace past the merge's bound); refilled by the decoding thread, it held
/// a batch at three fifths, below what the merge takes whole, so the merge
/// copied it in and out again, and its merged batches grew the next ones:
/// every event copied twice, for good (that trace decoded 16 % slower, with
/// 21 MiB more). Empty, a vector shrinks in place.
fn batch_room(v: &mut Vec<Event>) {
    v.reserve_exact(BATCH_EVENTS + FRAME_EVENTS);
    v.shrink_to(BATCH_EVENTS + FRAME_EVENTS);
}

/// Batch vectors faulted in ahead of what the decoding thread took (see
/// [`prefault_count`]).
const FAULTED_AHEAD: usize = 2;

/// Batch vectors the analysing thread faults in for the decoding thread
/// while it waits for the first batch: as many as the merge's bound on
/// buffered events and the batches in flight take, or one per 256 KiB of
/// input (about 40,000 events) for a smaller file; none for a live source.
fn prefault_count(len: Option<u64>) -> usize {
    let most = MAX_BUFFERED / BATCH_EVENTS + BATCHES_IN_FLIGHT;
    len.map_or(0, |l| usize::try_from(l >> 18).unwrap_or(usize::MAX))
        .min(most)
}

/// Of a batch vector's room, what [`faulted_in`] writes: a batch and 1024
/// events past it. The rest of the room, for the frame that takes a batch
/// past [`BATCH_EVENTS`], is reached only as far as that frame goes (the
/// decoding thread faults in those pages itself); leaving it out lets the
/// analysing thread fault in a fifth more vectors ahead of the decoding
/// thread, which faulted in whole vectors of its own when none was ready:
/// both churn traces about 4 % faster (three interleaved runs each), with
/// 2 MiB less.
const FAULTED_EVENTS: usize = BATCH_EVENTS + 1024;

/// A batch vector with its first [`FAULTED_EVENTS`] pages written once
/// (empty again): the pages a new vector's events would fault in.
fn faulted_in() -> Vec<Event> {
    let mut v: Vec<Event> = Vec::with_capacity(BATCH_EVENTS + FRAME_EVENTS);
    let page = (4096 / std::mem::size_of::<Event>()).max(1);
    let any = Event {
        ts: 0,
        stream: 0,
        stack: NO_STACK,
        op: Op::ScopeExit,
    };
    for e in v.spare_capacity_mut()[..FAULTED_EVENTS]
        .iter_mut()
        .step_by(page)
    {
        e.write(any);
    }
    v
}

/// What the live view shows of the session being read.
fn figures(cur: &SessionRun, lost: u64, number: usize) -> Figures {
    let a = &cur.analyses;
    Figures {
        current_bytes: a.peak.current_bytes,
        current_blocks: a.peak.current_blocks,
        peak_bytes: a.peak.peak_bytes,
        allocations: a.totals.allocations + a.totals.reallocations,
        lost,
        session: number,
    }
}

fn finish(mut run: SessionRun, session: Session) -> SessionRun {
    run.analyses.finish(&run.state);
    run.fragmentation_end = session
        .regions
        .iter()
        .map(|&(s, l)| {
            fragmentation::analyse(s, l, run.state.live.iter().map(|(a, b)| (*a, b.size)))
        })
        .collect();
    run.session = session;
    run
}

fn not_a_trace(input: &str, offset: u64) -> Error {
    Error::NotATrace {
        input: input.to_owned(),
        offset,
        reason: format!(
            "not a memscope trace: no intact frame in the first {offset} bytes (expected COBS frames with a memscope header)"
        ),
    }
}

/// A file with no header whose bytes are mostly damage is not a trace.
fn check_is_trace(
    input: &str,
    bytes: u64,
    frames_ok: u64,
    verified: bool,
    sessions: &[SessionRun],
) -> Result<(), Error> {
    if bytes == 0 {
        return Err(Error::NotATrace {
            input: input.to_owned(),
            offset: 0,
            reason: "empty input: not a memscope trace".into(),
        });
    }
    if frames_ok == 0 {
        return Err(not_a_trace(input, bytes));
    }
    let has_header = sessions.iter().any(|s| s.session.header.is_some());
    let damaged: u64 = sessions.iter().map(|s| s.damage.bytes).sum();
    // Mostly damage and no header looks like some other file — unless a
    // frame's CRC checked out: then it is a trace whose header was hit, and
    // every intact frame is kept.
    if !has_header && !verified && damaged * 2 > bytes {
        let first = sessions
            .iter()
            .flat_map(|s| s.damage.examples.first())
            .next()
            .map_or(0, |d| d.offset);
        return Err(Error::NotATrace {
            input: input.to_owned(),
            offset: first,
            reason: format!(
                "not a memscope trace: no header, and {damaged} of {bytes} bytes do not decode as frames"
            ),
        });
    }
    Ok(())
}

fn progress_bar(enabled: bool, len: Option<u64>) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => indicatif::ProgressBar::new(l),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} decoding {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::TraceBuilder;
    use memscope_core::wire::{Module, Record};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// A file of 80,000 allocations (more than two batches) whose second
    /// module, when `late_module`, is recorded after the first half.
    fn trace(name: &str, late_module: bool) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "memscope-prepare-{}-{name}.bin",
            std::process::id()
        ));
        let mut t = TraceBuilder::new(std::fs::File::create(&path).unwrap());
        t.simple_header("/nonexistent/program", 1_000_000_000)
            .unwrap();
        let module = |path| {
            Record::Module(Module {
                base: 0x1000,
                size: 0x1000,
                path,
                build_id: &[],
            })
        };
        t.record(0, &module("/nonexistent/a")).unwrap();
        t.flush(0).unwrap();
        t.thread(1, 7, "main").unwrap();
        for i in 0..80_000u64 {
            if i == 40_000 && late_module {
                t.flush(1).unwrap();
                t.record(0, &module("/nonexistent/b")).unwrap();
                t.flush(0).unwrap();
            }
            t.alloc(1, 1_000 + i * 100, 0x10_0000 + i * 16, 16, 8, None)
                .unwrap();
        }
        t.end(1, 2).unwrap();
        t.end(0, 2).unwrap();
        t.finish().unwrap();
        path
    }

    /// The analysing thread faults in batch vectors only for a file large
    /// enough to fill them, never more than the merge's first window and
    /// the batches in flight take; each comes empty, with room for a batch.
    #[test]
    fn batch_vectors_faulted_in_for_the_first_window() {
        assert_eq!(prefault_count(None), 0);
        assert_eq!(prefault_count(Some(100_000)), 0);
        assert_eq!(prefault_count(Some(1 << 20)), 4);
        assert_eq!(
            prefault_count(Some(u64::MAX)),
            MAX_BUFFERED / BATCH_EVENTS + BATCHES_IN_FLIGHT
        );
        let v = faulted_in();
        assert!(v.is_empty());
        assert!(v.capacity() >= BATCH_EVENTS + FRAME_EVENTS);
    }

    /// A trace at `name` in the temporary directory (1 GHz clock, frames
    /// of `frame_bytes`) with a thread "busy" (stream 1) and a thread
    /// "rare" (stream 2).
    fn busy_and_rare(name: &str, frame_bytes: usize) -> (PathBuf, TraceBuilder<std::fs::File>) {
        let path = std::env::temp_dir().join(format!("{name}-{}.bin", std::process::id()));
        let mut t = TraceBuilder::new(std::fs::File::create(&path).unwrap()).batched(frame_bytes);
        t.simple_header("/nonexistent/program", 1_000_000_000)
            .unwrap();
        t.flush(0).unwrap();
        t.thread(1, 7, "busy").unwrap();
        t.thread(2, 8, "rare").unwrap();
        (path, t)
    }

    /// Ends [`busy_and_rare`]'s trace, decodes it and deletes it.
    fn end_and_decode(mut t: TraceBuilder<std::fs::File>, path: &Path) -> Run {
        t.end(1, 3).unwrap();
        t.end(2, 3).unwrap();
        t.end(0, 3).unwrap();
        t.finish().unwrap();
        let mut src = Source::open(path).unwrap();
        let run = run(&mut src, &Options::default()).unwrap();
        let _ = std::fs::remove_file(path);
        run
    }

    /// A stream that delivers rarely, while another fills batch after
    /// batch, keeps its place in time: its batch of its own goes to the
    /// merge before the merge could release past its events (without the
    /// rule 10 of its 20 arrived late, after what came after them).
    #[test]
    fn a_rare_stream_is_not_left_behind_by_a_busy_one() {
        let (path, mut t) = busy_and_rare("memscope-split", 16 << 10);
        // 2 s of trace: the busy thread allocates every 10 µs (200,000
        // events, about six batches), the rare one every 100 ms.
        let mut rare = 0;
        for i in 0..200_000u64 {
            let ts = 1_000 + i * 10_000;
            t.alloc(1, ts, 0x100_0000 + i * 16, 16, 8, None).unwrap();
            if i % 10_000 == 5_000 {
                t.alloc(2, ts + 1, 0x8000_0000 + rare * 16, 32, 8, None)
                    .unwrap();
                t.flush(1).unwrap();
                t.flush(2).unwrap();
                rare += 1;
            }
        }
        let run = end_and_decode(t, &path);
        let s = &run.sessions[0];
        assert_eq!(s.analyses.totals.allocations, 200_000 + rare);
        assert_eq!(s.late_events, 0, "the rare stream's events came late");
    }

    /// Watermarks let the merge release without its window. A busy thread
    /// allocates every 10 µs; a rare one allocates at 50 ms, written when
    /// the busy one is at 60 ms (within the 50 ms window). After every
    /// frame of the busy thread (1 ms) comes a watermark: `honest` ones stop
    /// at the rare event until it is written; the others pass it. With
    /// honest watermarks nothing is late and the figures are those of the
    /// trace without any; a watermark that passes the rare event before it
    /// arrives makes it late, which the window alone does not: the merge
    /// goes by the watermark.
    #[test]
    fn watermarks_release_early_and_honest_ones_change_nothing() {
        let decode = |name: &str, watermarks: Option<bool>| {
            let (path, mut t) = busy_and_rare(name, 1 << 20);
            let rare_at = 50_000_000;
            let mut rare_written = false;
            for i in 0..20_000u64 {
                let ts = 1_000_000 + i * 10_000;
                t.alloc(1, ts, 0x100_0000 + i * 16, 16, 8, None).unwrap();
                if i % 1_000 == 999 {
                    let addr = 0x100_0000 + (i - 500) * 16;
                    t.dealloc(1, Some(ts + 5_000), addr, 16, 8, None).unwrap();
                }
                if i % 100 == 99 {
                    t.flush(1).unwrap();
                    if ts >= 60_000_000 && !rare_written {
                        t.alloc(2, rare_at, 0x8000_0000, 32, 8, None).unwrap();
                        t.flush(2).unwrap();
                        rare_written = true;
                    }
                    if let Some(honest) = watermarks {
                        let mut w = ts + 1;
                        if honest && !rare_written {
                            w = w.min(rare_at);
                        }
                        t.record(0, &Record::Watermark { ts: w }).unwrap();
                        t.flush(0).unwrap();
                    }
                }
            }
            let run = end_and_decode(t, &path);
            let s = &run.sessions[0];
            let p = &s.analyses.peak;
            (
                s.late_events,
                s.analyses.totals.allocations,
                s.analyses.totals.deallocations,
                (p.peak_bytes, p.peak_blocks, p.peak_ts, p.peak_seq),
            )
        };
        let none = decode("memscope-wm-none", None);
        assert_eq!(none.0, 0, "nothing late by the window alone");
        assert_eq!(none.1, 20_001);
        assert_eq!(decode("memscope-wm-honest", Some(true)), none);
        let lying = decode("memscope-wm-lying", Some(false));
        assert_eq!(
            lying.0, 1,
            "the rare event, merged after what the watermark let go"
        );
        assert_eq!(lying.1, none.1);
    }

    /// A watermark reaches the merge lowered to what the decoding thread
    /// still holds in a stream's batch: a thread's 5,000 allocations from
    /// 20 ms on, written at once at 20 ms, sit in a batch of their own too
    /// large to go at a watermark, while a busy thread's watermarks pass
    /// them. None may come late (without the lowering, all 5,000 did).
    #[test]
    fn a_watermark_waits_for_events_still_in_a_streams_batch() {
        let (path, mut t) = busy_and_rare("memscope-wm-held", 1 << 20);
        for i in 0..20_000u64 {
            let ts = 1_000_000 + i * 10_000;
            t.alloc(1, ts, 0x100_0000 + i * 16, 16, 8, None).unwrap();
            if ts == 20_000_000 {
                for j in 0..5_000u64 {
                    let addr = 0x8000_0000 + j * 16;
                    t.alloc(2, 20_000_000 + j, addr, 32, 8, None).unwrap();
                }
                t.flush(2).unwrap();
            }
            if i % 100 == 99 {
                t.flush(1).unwrap();
                t.record(0, &Record::Watermark { ts: ts + 1 }).unwrap();
                t.flush(0).unwrap();
            }
        }
        let run = end_and_decode(t, &path);
        let s = &run.sessions[0];
        assert_eq!(s.analyses.totals.allocations, 25_000);
        assert_eq!(s.late_events, 0);
    }

    /// A stream's batch also goes when the merge, full, would release past
    /// it: past [`MAX_BUFFERED`] events the merge releases inside its
    /// window. A busy thread allocates every 10 ns (the merge is full 10.5
    /// ms in, long before a rare thread's batch would be half a hold-back
    /// old); the rare thread's one allocation, at 1 ms, is written `delay`
    /// later, and the busy thread frees that block after it. Every delay
    /// that kept the event in order before the split (below 10 ms) keeps it
    /// now: without the rule, the 1 ms delay came late and the free found
    /// no block; with the first fix (a batch went after 128K events
    /// shipped), the 9.5 ms delay (a reviewer's) still came late.
    fn rare_after_busy(delay_ns: u64) -> (u64, usize) {
        let (path, mut t) = busy_and_rare(&format!("memscope-split-full-{delay_ns}"), 32 << 10);
        let at = (1_000_000 + delay_ns - 1_000) / 10;
        let events = at + MAX_BUFFERED as u64 + 200_000;
        for i in 0..events {
            let ts = 1_000 + i * 10;
            t.alloc(1, ts, 0x100_0000 + i * 16, 16, 8, None).unwrap();
            if i == at {
                t.flush(1).unwrap();
                t.alloc(2, 1_000_000, 0x8000_0000, 32, 8, None).unwrap();
                t.flush(2).unwrap();
            }
            if i == at + 100_000 {
                // The rare thread's block, handed over and freed.
                t.dealloc(1, None, 0x8000_0000, 32, 8, None).unwrap();
            }
        }
        let run = end_and_decode(t, &path);
        let s = &run.sessions[0];
        assert_eq!(s.analyses.totals.allocations, events + 1);
        assert_eq!(s.analyses.attribution.cross_thread.count, 1);
        (s.late_events, s.analyses.errors.examples.len())
    }

    #[test]
    fn a_rare_stream_keeps_its_place_when_the_merge_fills_first() {
        for delay_ns in [1_000_000, 9_500_000] {
            assert_eq!(
                rare_after_busy(delay_ns),
                (0, 0),
                "late events, heap errors with the frame written {delay_ns} ns late"
            );
        }
    }

    /// Three streams (see the tests below): A allocates every 100 ns from
    /// 40 ms on, a frame per 1024; B at 70 ms (written when A is at 71 ms)
    /// and at 130 ms (written when A is at 89 ms); C at 78 ms (written when
    /// A is at 78 ms) and, when `c_first`, at 50 ms (written when A is at
    /// 51 ms, so that C's batch comes before B's). Without `to_the_end`
    /// the input ends after B's second frame. Returns the late events.
    fn three_streams(name: &str, c_first: bool, to_the_end: bool) -> u64 {
        const MS: u64 = 1_000_000;
        let path =
            std::env::temp_dir().join(format!("memscope-split-{name}-{}.bin", std::process::id()));
        let mut t = TraceBuilder::new(std::fs::File::create(&path).unwrap()).batched(1 << 30);
        t.simple_header("/nonexistent/program", 1_000_000_000)
            .unwrap();
        t.flush(0).unwrap();
        t.thread(1, 7, "a").unwrap();
        t.thread(2, 8, "b").unwrap();
        t.thread(3, 9, "c").unwrap();
        let mut i = 0u64;
        let mut a_until = |t: &mut TraceBuilder<std::fs::File>, end: u64| {
            while i < end {
                t.alloc(1, 40 * MS + i * 100, 0x100_0000 + i * 16, 16, 8, None)
                    .unwrap();
                i += 1;
                if i.is_multiple_of(1024) {
                    t.flush(1).unwrap();
                }
            }
        };
        let other = |t: &mut TraceBuilder<std::fs::File>, s: u32, ms: u64, addr: u64| {
            t.alloc(s, ms * MS, addr, 32, 8, None).unwrap();
            t.flush(s).unwrap();
        };
        let mut allocs = 3;
        if c_first {
            a_until(&mut t, 110 * 1024);
            other(&mut t, 3, 50, 0x9000_0010);
            allocs += 1;
        }
        a_until(&mut t, 300 * 1024);
        other(&mut t, 2, 70, 0x8000_0000);
        a_until(&mut t, 370 * 1024);
        other(&mut t, 3, 78, 0x9000_0000);
        a_until(&mut t, 490 * 1024);
        other(&mut t, 2, 130, 0x8000_0010);
        if to_the_end {
            a_until(&mut t, 1_000 * 1024);
        }
        t.flush(1).unwrap();
        for s in [1, 2, 3, 0] {
            t.end(s, 4).unwrap();
        }
        t.finish().unwrap();
        let mut src = Source::open(&path).unwrap();
        let run = run(&mut src, &Options::default()).unwrap();
        let _ = std::fs::remove_file(&path);
        let s = &run.sessions[0];
        assert_eq!(s.analyses.totals.allocations, i + allocs);
        s.late_events
    }

    /// Found in review: when A's batch fills (at 95.7 ms) B's is due (70 ms
    /// is half a hold-back behind) and goes too, carrying 130 ms; released
    /// on its own, it let the merge pass C's waiting 78 ms. The batches that
    /// go together now all reach the merge before it releases, and C's,
    /// due once B's 130 ms counts, goes with them.
    #[test]
    fn a_batch_that_goes_early_does_not_let_the_merge_pass_a_third_stream() {
        assert_eq!(three_streams("third", false, true), 0);
    }

    /// The same with C's batch before B's: C is due only once B's 130 ms
    /// counts, which the due batches are looked for again after.
    #[test]
    fn a_batch_made_due_by_another_that_goes_goes_too() {
        assert_eq!(three_streams("again", true, true), 0);
    }

    /// Found in review: the batches that go at the end of the input (and
    /// before any mark) went in index order, each released on its own, and
    /// B let the merge pass C's event.
    #[test]
    fn the_batches_shipped_at_the_end_all_reach_the_merge_before_it_releases() {
        assert_eq!(three_streams("end", false, false), 0);
    }

    /// Every batch vector the decoding thread fills has room for one batch
    /// and a frame, whatever it held before: one larger would be taken by
    /// the merge at less than the share it takes whole, and copied.
    #[test]
    fn batch_vectors_hold_one_batch_whatever_they_held() {
        for cap in [0, 100, BATCH_EVENTS + FRAME_EVENTS, 58_012, 1 << 20] {
            let mut v: Vec<Event> = Vec::with_capacity(cap);
            batch_room(&mut v);
            assert_eq!(v.capacity(), BATCH_EVENTS + FRAME_EVENTS, "from {cap}");
        }
    }

    /// `prepare.load` sees the session while the file is read (the
    /// analysing thread is idle then), and once more at the end only when
    /// the modules it saw changed; the last call always sees the whole
    /// session. `prepare.warm` follows each call of `load` and, at the end,
    /// sees the whole session too.
    #[test]
    fn prepare_starts_early_and_runs_again_only_for_a_changed_session() {
        for (late_module, calls) in [(false, vec![1, 101, 101]), (true, vec![1, 101, 2, 102])] {
            let path = trace(if late_module { "late" } else { "same" }, late_module);
            let seen = Mutex::new(Vec::new());
            let load = |s: &Session| seen.lock().unwrap().push(s.modules.len());
            // Warming follows each load: early with the stacks known then,
            // at the end with the whole session.
            let warm =
                |s: &Session, _: &AtomicBool| seen.lock().unwrap().push(100 + s.modules.len());
            let mut src = Source::open(&path).unwrap();
            let prepare = Prepare {
                load: &load,
                warm: &warm,
            };
            let run = run_with(&mut src, &Options::default(), Some(prepare)).unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(run.sessions.len(), 1);
            assert_eq!(run.sessions[0].analyses.totals.allocations, 80_000);
            assert_eq!(*seen.lock().unwrap(), calls, "late module: {late_module}");
        }
    }
}
