//! Runs the stages: source → frames → records → merge → state → analyses,
//! once per pass, per session (a second Header in the input — a target reset —
//! closes one session and opens the next; they are never mixed).

use crate::analysis::fragmentation::{self, Fragmentation};
use crate::analysis::Analyses;
use crate::error::Error;
use crate::frames::{read_frames, DamagedSpan, Flow, Piece};
use crate::live_view::{Figures, LiveView};
use crate::merge::{LiveSizes, Merger, Tracked, Window};
use crate::records::{Decoder, Event, FrameOutcome, Session};
use crate::source::Source;
use crate::state::State;
use std::io::{IsTerminal, Read};
use std::time::Instant;

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
    /// Called with the last session once the input is read (see [`run_with`]).
    prepare: Option<Prepare<'a>>,
}

/// Reads and analyses `src`. The live set at the peak is copied during the
/// first pass while that stays cheap; otherwise (and for the block map of a
/// heap region) a file is read a second time, only up to the peak. A live
/// source is read once and always copies.
pub fn run(src: &mut Source, opts: &Options) -> Result<Run, Error> {
    run_with(src, opts, None)
}

/// Work on the last session's metadata (its header and modules: what
/// symbolization needs) that can start before the analysis is done. See
/// [`run_with`].
pub type Prepare<'a> = &'a (dyn Fn(&Session) + Sync);

/// [`run`], also calling `prepare` once with the last session as the input
/// left it (header, modules, streams, stacks — everything but the analyses),
/// as soon as the input has been read. For a file that happens on the
/// decoding thread, which is otherwise idle while the analysing thread
/// catches up: loading debug information there (a few hundred million
/// instructions for a Rust program) costs no wall time. `prepare` is not
/// called when reading fails.
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
/// the two run on their own threads (a file). Large enough that the channel
/// costs little per event, small enough to stay in the last-level cache. It
/// is also how many decoded events the merge takes between two releases,
/// whatever the source: the merged order depends on when the merge releases,
/// so that must not depend on the threads.
const BATCH_EVENTS: usize = 8192;
/// Batches in flight between the two threads.
const BATCHES_IN_FLIGHT: usize = 4;
/// How far ahead of the event it applies the analysing side prefetches an
/// event's live-table slot: far enough that the load lands in time.
const LOOKAHEAD: usize = 8;

/// What the decoding side found besides heap events, placed between the
/// merged events.
enum Mark {
    /// The session's header gave its clock.
    Clock(u64),
    /// The session's heap regions so far.
    Regions(Vec<(u64, u64)>),
    /// Bytes that did not decode.
    Damaged(DamagedSpan),
    /// A target reset in the frame at this offset: the session decoded so
    /// far is complete (all its events precede the mark), and the merge
    /// released this many of them late.
    Reset(u64, Box<Session>, u64),
    /// The input ended: the merge released this many events of the last
    /// session late.
    Late(u64),
    /// Events the producers reported lost so far in the session.
    Lost(u64),
    /// A frame missing, repeated or out of order.
    Sequence(crate::frames::sequence::Issue),
}

/// Heap events in merged order, with marks at the event index they follow.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    marks: Vec<(usize, Mark)>,
}

impl Batch {
    fn clear(&mut self) {
        self.events.clear();
        self.marks.clear();
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.marks.is_empty()
    }
}

/// Hands a batch on; says whether to go on (false: the analysing side has
/// what it needs). Leaves `batch` empty.
type Ship<'s> = dyn FnMut(&mut Batch) -> bool + 's;

/// The decoding side: frames → records → merge → batches of events in
/// merged order.
///
/// The merge runs here, not on the analysing side, because it keeps its own
/// copy of the live set's sizes for its hold checks ([`LiveSizes`]): the
/// analysing side, the busier of the two, then only applies events.
struct Decoding<'a> {
    input: &'a str,
    dec: Decoder,
    frames_ok: u64,
    /// A frame's CRC checked out (see [`Piece::Verified`]).
    verified: bool,
    clock_sent: bool,
    regions_sent: usize,
    lost_sent: u64,
    merger: Merger,
    live: LiveSizes,
    /// Events pushed into the merge since it last released.
    pushed: usize,
    /// Something (an event or a mark) came since the merge last released.
    dirty: bool,
    /// The merge releases once this many events were pushed.
    release_at: usize,
    /// Merged events are also shipped after each release (a live source:
    /// what it shows is never a batch behind), not only once
    /// [`BATCH_EVENTS`] are waiting.
    ship_each_release: bool,
    /// Merged events and marks not yet shipped.
    out: Batch,
    /// The analysing side asked for no more.
    stopped: bool,
}

impl<'a> Decoding<'a> {
    fn new(input: &'a str, release_at: usize, ship_each_release: bool) -> Self {
        let mut out = Batch::default();
        out.events.reserve(BATCH_EVENTS);
        Decoding {
            input,
            dec: Decoder::new(),
            frames_ok: 0,
            verified: false,
            clock_sent: false,
            regions_sent: 0,
            lost_sent: 0,
            merger: Merger::new(),
            live: LiveSizes::default(),
            pushed: 0,
            dirty: false,
            release_at,
            ship_each_release,
            out,
            stopped: false,
        }
    }

    /// A mark for the analysing side, after the events merged so far.
    fn mark(&mut self, mark: Mark) {
        self.dirty = true;
        self.out.marks.push((self.out.events.len(), mark));
    }

    /// Releases what the merge can (everything when `flush`) into the
    /// batch, shipping it whenever it is full.
    fn release(&mut self, flush: bool, ship: &mut Ship<'_>) {
        let Decoding {
            merger,
            live,
            out,
            stopped,
            ..
        } = self;
        let mut target = Tracked {
            live,
            each: |ev: &Event| {
                if *stopped {
                    return;
                }
                out.events.push(*ev);
                if out.events.len() >= BATCH_EVENTS && !ship(out) {
                    *stopped = true;
                }
            },
        };
        if flush {
            // A reset's flush does not restart the count: the next release
            // comes when it would have without the reset.
            merger.flush_into(&mut target);
        } else {
            merger.drain_into(&mut target);
            self.pushed = 0;
            self.dirty = false;
        }
    }

    fn frame(
        &mut self,
        stream: u32,
        records: &[u8],
        offset: u64,
        ship: &mut Ship<'_>,
    ) -> Result<(), Error> {
        self.frames_ok += 1;
        let mut from = 0;
        loop {
            // A frame's events go straight into their lane: one lane lookup.
            let dec = &mut self.dec;
            let (outcome, n) = self.merger.push_from(stream, |lane| {
                dec.decode_frame(stream, records, offset, from, &mut |ev| lane.push(ev))
            });
            self.pushed += n;
            self.dirty |= n != 0;
            match outcome {
                FrameOutcome::Done => break,
                FrameOutcome::Reset(pos) => {
                    // The session so far goes out whole, before the mark.
                    self.release(true, ship);
                    self.live.clear();
                    let late = std::mem::take(&mut self.merger.late);
                    let finished = self.dec.start_session();
                    self.mark(Mark::Reset(offset, Box::new(finished), late));
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
        if !self.clock_sent {
            if let Some(tps) = self.dec.session.header.as_ref().map(|h| h.ticks_per_second) {
                self.merger.set_window(Window::for_clock(tps));
                self.mark(Mark::Clock(tps));
                self.clock_sent = true;
            }
        }
        if self.dec.frame_ended {
            self.merger.close(stream);
            self.dirty = true;
        }
        let session = &self.dec.session;
        if self.regions_sent != session.regions.len() {
            let regions = session.regions.clone();
            self.regions_sent = regions.len();
            self.mark(Mark::Regions(regions));
        }
        let session = &self.dec.session;
        let lost = session.streams.get(&stream).map_or(0, |s| s.counts.lost);
        if lost != 0 {
            let total = session
                .streams
                .values()
                .map(|s| s.counts.lost)
                .fold(0, u64::saturating_add);
            if total != self.lost_sent {
                self.mark(Mark::Lost(total));
                self.lost_sent = total;
            }
        }
        Ok(())
    }

    fn damaged(&mut self, span: DamagedSpan) -> Result<(), Error> {
        self.dec.damage();
        self.mark(Mark::Damaged(span));
        if self.frames_ok == 0 && span.offset + span.len >= NO_FRAME_LIMIT {
            return Err(not_a_trace(self.input, span.offset + span.len));
        }
        Ok(())
    }

    /// Reads `reader` to its end, merging as it goes: the merge releases
    /// whenever [`release_at`](Self::release_at) events came since it last
    /// did, and everything at the end. Merged events go to `ship` in batches
    /// of [`BATCH_EVENTS`] (and after every release that left something to
    /// ship, with [`ship_each_release`](Self::ship_each_release)), so that
    /// what waits is bounded whatever a release lets go. Stops early once
    /// `ship` says so.
    fn read(
        &mut self,
        reader: Box<dyn Read + Send>,
        progress: &indicatif::ProgressBar,
        ship: &mut Ship<'_>,
    ) -> Result<u64, Error> {
        let mut fatal = None;
        let result = read_frames(
            reader,
            |off| progress.set_position(off),
            |piece| {
                let r = match piece {
                    Piece::Frame(stream, records, offset) => {
                        self.frame(stream, records, offset, ship)
                    }
                    Piece::Damaged(span) => self.damaged(span),
                    Piece::Verified => {
                        self.verified = true;
                        Ok(())
                    }
                    Piece::Sequence(issue) => {
                        self.mark(Mark::Sequence(issue));
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
                if self.pushed >= self.release_at {
                    self.release(false, ship);
                    if self.ship_each_release && !self.out.is_empty() && !self.stopped {
                        self.stopped = !ship(&mut self.out);
                    }
                }
                if self.stopped {
                    return Flow::Stop;
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
        if !self.stopped {
            if self.dirty {
                self.release(false, ship);
            }
            self.release(true, ship);
            let late = std::mem::take(&mut self.merger.late);
            self.mark(Mark::Late(late));
            ship(&mut self.out);
        }
        Ok(bytes)
    }
}

/// The analysing side: batches of merged events → sessions' state and
/// analyses.
struct Analysing<'a> {
    pass: &'a Pass<'a>,
    cur: SessionRun,
    done: Vec<SessionRun>,
    /// The second pass captured what it came for.
    stop: bool,
    view: LiveView<std::io::Stderr>,
    lost: u64,
}

impl Analysing<'_> {
    /// Takes one batch; returns whether to go on.
    fn take(&mut self, batch: &mut Batch) -> bool {
        let Batch { events, marks } = batch;
        let mut at = 0;
        for (pos, mark) in marks.drain(..) {
            self.apply(&events[at..pos], &events[pos..]);
            at = pos;
            self.mark(mark);
        }
        self.apply(&events[at..], &[]);
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

    /// Applies `events`, each with the one [`LOOKAHEAD`] places on (in
    /// `events`, then in `after`) shown so that its lookup is prefetched.
    #[inline]
    fn apply(&mut self, events: &[Event], after: &[Event]) {
        let ahead = |i: usize| {
            let j = i + LOOKAHEAD;
            events.get(j).or_else(|| after.get(j - events.len()))
        };
        for (i, ev) in events.iter().enumerate() {
            self.stop |= self.cur.apply_ahead(ev, ahead(i));
        }
    }

    fn mark(&mut self, mark: Mark) {
        match mark {
            Mark::Clock(tps) => {
                self.cur
                    .analyses
                    .set_clock(tps, self.pass.opts.short_lived_ns);
                self.cur.clock_set = true;
            }
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
            Mark::Late(late) => self.cur.late_events += late,
            Mark::Reset(offset, session, late) => {
                self.cur.late_events += late;
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
    /// Runs the pass. A file is decoded and merged on a thread of its own
    /// while this one analyses; a live source is handled frame by frame on
    /// this thread, so that what it shows is never a batch behind.
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
        let mut an = Analysing {
            pass: self,
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
        let (bytes, mut decoding) = if self.incremental {
            let mut decoding = Decoding::new(self.input, 1, true);
            let bytes = decoding.read(reader, &progress, &mut |b| {
                let go_on = an.take(b);
                b.clear();
                go_on
            });
            if let (Ok(_), Some(p)) = (&bytes, self.prepare) {
                p(&decoding.dec.session);
            }
            (bytes, decoding)
        } else {
            let mut decoding = Decoding::new(self.input, BATCH_EVENTS, false);
            let bytes = self.run_threaded(reader, &progress, &mut decoding, &mut an);
            (bytes, decoding)
        };
        progress.finish_and_clear();
        an.view.finish();
        let bytes = bytes?;
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

    /// Decoding and merging on a scoped thread, batches over a bounded
    /// channel (and back again, emptied, to be reused), analysis on this
    /// thread.
    fn run_threaded(
        &self,
        reader: Box<dyn Read + Send>,
        progress: &indicatif::ProgressBar,
        decoding: &mut Decoding<'_>,
        an: &mut Analysing<'_>,
    ) -> Result<u64, Error> {
        use std::sync::mpsc::sync_channel;
        let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (empty_tx, empty_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 2);
        let prepare = self.prepare;
        std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let bytes = decoding.read(reader, progress, &mut |b| {
                    let mut next = empty_rx.try_recv().unwrap_or_else(|_| {
                        let mut n = Batch::default();
                        n.events.reserve(BATCH_EVENTS);
                        n
                    });
                    std::mem::swap(b, &mut next);
                    // A closed channel: the analysing side has what it needs.
                    full_tx.send(next).is_ok()
                });
                // The last batch is on its way: this thread is free while
                // the analysing one catches up.
                drop(full_tx);
                if let (Ok(_), Some(p)) = (&bytes, prepare) {
                    p(&decoding.dec.session);
                }
                bytes
            });
            for mut batch in full_rx.iter() {
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
            producer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
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
