//! Runs the stages: source → frames → records → merge → state → analyses,
//! once per pass, per session (a second Header in the input — a target reset —
//! closes one session and opens the next; they are never mixed).

use crate::analysis::fragmentation::{self, Fragmentation};
use crate::analysis::Analyses;
use crate::error::Error;
use crate::frames::{read_frames, DamagedSpan, Flow, Piece};
use crate::live_view::{Figures, LiveView};
use crate::merge::{Merger, Target, Window};
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
/// pass captured what it came for.
struct Feed<'a> {
    run: &'a mut SessionRun,
    stop: &'a mut bool,
}

impl Target for Feed<'_> {
    #[inline]
    fn live_size(&self, addr: u64) -> Option<Option<u64>> {
        Some(self.run.live_size(addr))
    }

    #[inline]
    fn apply(&mut self, ev: &Event, ahead: Option<&Event>) {
        *self.stop |= self.run.apply_ahead(ev, ahead);
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
}

/// Reads and analyses `src`. The live set at the peak is copied during the
/// first pass while that stays cheap; otherwise (and for the block map of a
/// heap region) a file is read a second time, only up to the peak. A live
/// source is read once and always copies.
pub fn run(src: &mut Source, opts: &Options) -> Result<Run, Error> {
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

impl Pass<'_> {
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
        let mut view =
            LiveView::stderr(self.opts.progress && self.targets.is_none() && self.incremental);
        let mut dec = Decoder::new();
        let mut merger = Merger::new();
        let mut done: Vec<SessionRun> = Vec::new();
        let second = self.targets.is_some();
        let mut cur = SessionRun::for_pass(
            self.incremental,
            0,
            self.targets
                .as_ref()
                .and_then(|t| t.first().copied().flatten()),
            second,
        );
        let mut frames_ok = 0u64;
        let mut fatal: Option<Error> = None;
        let mut stop = false;
        let targets = self.targets.as_ref();
        let result = read_frames(
            reader,
            |off| progress.set_position(off),
            |piece| {
                match piece {
                    Piece::Frame(stream, records, offset) => {
                        frames_ok += 1;
                        let mut from = 0;
                        loop {
                            let outcome =
                                dec.decode_frame(stream, records, offset, from, &mut |ev| {
                                    merger.push(ev)
                                });
                            match outcome {
                                FrameOutcome::Done => break,
                                FrameOutcome::Reset(pos) => {
                                    merger.flush_into(&mut Feed {
                                        run: &mut cur,
                                        stop: &mut stop,
                                    });
                                    cur.late_events += merger.late;
                                    merger.late = 0;
                                    let next = SessionRun::for_pass(
                                        self.incremental,
                                        offset,
                                        targets
                                            .and_then(|t| t.get(done.len() + 1).copied().flatten()),
                                        second,
                                    );
                                    let finished = std::mem::replace(&mut cur, next);
                                    done.push(finish(finished, dec.start_session()));
                                    from = pos;
                                }
                                FrameOutcome::UnsupportedVersion(v) => {
                                    fatal = Some(Error::NotATrace {
                                        input: self.input.to_owned(),
                                        offset,
                                        reason: format!(
                                            "trace format version {v} is newer than this decoder reads (up to {}); update memscope-decode",
                                            memscope_core::wire::FORMAT_VERSION
                                        ),
                                    });
                                    return Flow::Stop;
                                }
                            }
                        }
                        if !cur.clock_set {
                            if let Some(h) = &dec.session.header {
                                cur.analyses
                                    .set_clock(h.ticks_per_second, self.opts.short_lived_ns);
                                merger.set_window(Window::for_clock(h.ticks_per_second));
                                cur.clock_set = true;
                            }
                        }
                        if dec.frame_ended {
                            merger.close(stream);
                        }
                        if cur.regions.len() != dec.session.regions.len() {
                            cur.regions.clone_from(&dec.session.regions);
                        }
                        merger.drain_into(&mut Feed {
                            run: &mut cur,
                            stop: &mut stop,
                        });
                        if view.is_active() {
                            let now = Instant::now();
                            if view.due(now) {
                                view.update(now, &figures(&cur, &dec.session, done.len() + 1));
                            }
                        }
                    }
                    Piece::Damaged(span) => {
                        dec.damage();
                        cur.damage.spans += 1;
                        cur.damage.bytes += span.len;
                        if cur.damage.examples.len() < MAX_DAMAGE_EXAMPLES {
                            cur.damage.examples.push(span);
                        }
                        if frames_ok == 0 && span.offset + span.len >= NO_FRAME_LIMIT {
                            fatal = Some(not_a_trace(self.input, span.offset + span.len));
                            return Flow::Stop;
                        }
                    }
                }
                if stop && targets.is_some_and(|t| t.len() <= done.len() + 1) {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
        );
        progress.finish_and_clear();
        view.finish();
        if let Some(e) = fatal {
            return Err(e);
        }
        let bytes = result.map_err(|(offset, cause)| Error::Unreadable {
            input: self.input.to_owned(),
            offset: Some(offset),
            cause,
        })?;
        if !stop {
            let mut ignored = false;
            merger.flush_into(&mut Feed {
                run: &mut cur,
                stop: &mut ignored,
            });
        }
        cur.late_events += merger.late;
        done.push(finish(cur, dec.start_session()));
        if self.targets.is_none() {
            check_is_trace(self.input, bytes, frames_ok, &done)?;
        }
        Ok((done, bytes))
    }
}

/// What the live view shows of the session being read.
fn figures(cur: &SessionRun, session: &Session, number: usize) -> Figures {
    let a = &cur.analyses;
    Figures {
        current_bytes: a.peak.current_bytes,
        current_blocks: a.peak.current_blocks,
        peak_bytes: a.peak.peak_bytes,
        allocations: a.totals.allocations + a.totals.reallocations,
        lost: session
            .streams
            .values()
            .map(|s| s.counts.lost)
            .fold(0, u64::saturating_add),
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
    if !has_header && damaged * 2 > bytes {
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
