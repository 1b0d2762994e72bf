//! The report model: everything the decoder found, as plain serde data.
//! Renderers (terminal, JSON) only format it; `check` and `diff` read it.
//! The JSON form is versioned by [`SCHEMA_VERSION`] and described in
//! docs/REPORT-SCHEMA.md. Any number here is either counted from the trace
//! or sits under `inferred` with `"source": "inferred"`.

use crate::analysis::errors::{ErrorKind, KINDS};
use crate::analysis::fragmentation::Fragmentation;
use crate::inference::{infer_site, Inferred};
use crate::pipeline::{Run, SessionRun};
use crate::records::{Session, NO_STACK};
use crate::symbolize::{first_user_frame, hex, FrameInfo, Symbolizer};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Version of the JSON schema. Bumped when a field changes meaning or goes
/// away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// How much to put in a report.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rows per list (sites, leaks…).
    pub top: usize,
    /// Chains of at least this many reallocs get growth advice.
    pub growth_threshold: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            top: 20,
            growth_threshold: 4,
        }
    }
}

/// The whole report (one session; earlier sessions of a reset target nest in
/// `previous_sessions`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote the report.
    pub tool: Tool,
    /// The input.
    pub input: Input,
    /// 1-based index of this session in the input.
    pub session: usize,
    /// Sessions in the input (more than 1 after a target reset).
    pub sessions: usize,
    /// Byte offset where this session starts.
    pub session_offset: u64,
    /// The trace's header, when it had one.
    pub header: Option<HeaderOut>,
    /// The headline numbers.
    pub summary: Summary,
    /// What was damaged, lost or could not be decoded.
    pub integrity: Integrity,
    /// The exact peak and what was live then.
    pub peak: PeakOut,
    /// What was live at the end.
    pub leaks: Leaks,
    /// Sites by allocation count and by bytes.
    pub hot_sites: HotSites,
    /// Short-lived allocations.
    pub temporaries: TemporariesOut,
    /// Size and lifetime histograms.
    pub histograms: Histograms,
    /// Realloc chains by first site.
    pub growth: Vec<GrowthRow>,
    /// Per thread.
    pub threads: Vec<ThreadRow>,
    /// Per `scope!`.
    pub scopes: Vec<ScopeRow>,
    /// Per `track!` name.
    pub names: Vec<NameRow>,
    /// Frees on another thread than the allocating one.
    pub cross_thread_frees: CrossThreadOut,
    /// Heap errors.
    pub errors: ErrorsOut,
    /// Heap regions at the peak and at the end.
    pub fragmentation: Vec<FragmentationAt>,
    /// User marks.
    pub marks: Vec<MarkRow>,
    /// Live bytes over time, downsampled (bounded whatever the trace's length).
    pub timeline: crate::analysis::timeline::TimelineOut,
    /// Live bytes over time per thread (the blocks it allocated); empty without a clock.
    pub thread_timelines: crate::analysis::thread_timeline::ThreadTimelinesOut,
    /// Everything inferred, each marked `"source": "inferred"`.
    pub inferred: Vec<Inferred>,
    /// Stacks of the sites named above, by site id.
    pub stacks: BTreeMap<u32, StackOut>,
    /// Debug information used.
    pub symbolization: SymbolizationOut,
    /// Sessions before this one (a target reset starts a new one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_sessions: Vec<Report>,
}

/// Tool identity.
#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    /// "memscope-decode".
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
}

/// The input.
#[derive(Clone, Debug, Serialize)]
pub struct Input {
    /// Path or name.
    pub name: String,
    /// Bytes read.
    pub bytes: u64,
}

/// The header.
#[derive(Clone, Debug, Serialize)]
pub struct HeaderOut {
    /// Format version.
    pub format_version: u16,
    /// Program.
    pub program: String,
    /// Target.
    pub target: String,
    /// Build id, hex.
    pub build_id: String,
    /// Pointer width in bytes.
    pub pointer_width: u8,
    /// Ticks per second (0: timestamps only order events).
    pub ticks_per_second: u64,
}

/// Headline numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// alloc + alloc_zeroed calls decoded, failed ones included.
    pub allocations: u64,
    /// dealloc calls decoded.
    pub deallocations: u64,
    /// realloc calls decoded, failed ones included.
    pub reallocations: u64,
    /// alloc and realloc calls that returned null.
    pub failed_allocations: u64,
    /// Bytes allocated (allocs plus realloc growth).
    pub bytes_allocated: u64,
    /// Bytes freed (frees plus realloc shrinkage).
    pub bytes_freed: u64,
    /// Most bytes live at once (requested sizes).
    pub peak_bytes: u64,
    /// Blocks live at that moment.
    pub peak_blocks: u64,
    /// Timestamp of the peak (ticks).
    pub peak_ts: u64,
    /// Bytes live at the end.
    pub leaked_bytes: u64,
    /// Blocks live at the end.
    pub leaked_blocks: u64,
    /// Events the producer dropped (reported in the trace).
    pub lost_events: u64,
    /// True only when every stream ended with totals matching what was
    /// decoded, and nothing was lost, damaged or skipped.
    pub complete: bool,
    /// Why not complete.
    pub incomplete_reasons: Vec<String>,
    /// Streams that carried heap events.
    pub threads: usize,
    /// Distinct call stacks.
    pub distinct_stacks: usize,
    /// Heap errors found.
    pub errors: u64,
}

/// A damaged span.
#[derive(Clone, Debug, Serialize)]
pub struct DamageRow {
    /// Byte offset.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// Why.
    pub reason: String,
}

/// A record that did not decode.
#[derive(Clone, Debug, Serialize)]
pub struct RecordErrorRow {
    /// Stream.
    pub stream: u32,
    /// Byte offset of its frame.
    pub frame_offset: u64,
    /// Position of the record in the frame's decoded payload.
    pub position: usize,
    /// Bytes of the frame given up.
    pub bytes_lost: usize,
    /// Why.
    pub reason: String,
}

/// One stream's accounting.
#[derive(Clone, Debug, Serialize)]
pub struct StreamRow {
    /// Stream id.
    pub stream: u32,
    /// Thread name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// OS thread id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_id: Option<u64>,
    /// Decoded: allocs, deallocs, reallocs, failed.
    pub decoded: [u64; 4],
    /// Lost events reported in the stream.
    pub lost: u64,
    /// Heap records skipped while unsynced after damage.
    pub skipped_unsynced: u64,
    /// The End record: allocs, deallocs, reallocs, failed, lost (None: no End).
    pub end: Option<[u64; 5]>,
    /// Whether decoded + lost equals the End's totals.
    pub end_matches: bool,
}

/// Damage and loss.
#[derive(Clone, Debug, Serialize)]
pub struct Integrity {
    /// Damaged spans.
    pub damaged_spans: u64,
    /// Their bytes.
    pub damaged_bytes: u64,
    /// The first of them.
    pub damage: Vec<DamageRow>,
    /// Records that did not decode.
    pub record_errors: u64,
    /// The first of them.
    pub record_error_examples: Vec<RecordErrorRow>,
    /// Heap records skipped because their stream's delta base was unknown after damage.
    pub skipped_unsynced: u64,
    /// Events referring to a stack whose Stack record was lost.
    pub unknown_stack_refs: u64,
    /// Extension records of unknown kinds (skipped).
    pub unknown_records: u64,
    /// Events that arrived after later events had been released by the merge.
    pub late_events: u64,
    /// Frames missing, repeated or out of order by their frame numbers (the
    /// first 50, as sentences; missing ones are also incomplete reasons).
    pub frame_sequence: Vec<String>,
    /// Per stream.
    pub streams: Vec<StreamRow>,
}

/// A site with numbers.
#[derive(Clone, Debug, Serialize)]
pub struct SiteRow {
    /// Site (stack) id; 0 = no stack recorded.
    pub site: u32,
    /// First user frame, readable.
    pub location: String,
    /// Bytes (meaning depends on the list).
    pub bytes: u64,
    /// Blocks or calls (meaning depends on the list).
    pub count: u64,
}

/// The peak.
#[derive(Clone, Debug, Serialize)]
pub struct PeakOut {
    /// Bytes.
    pub bytes: u64,
    /// Blocks live then.
    pub blocks: u64,
    /// Timestamp (ticks).
    pub ts: u64,
    /// Seconds from the session's first allocation, when there is a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Most blocks live at any moment.
    pub max_blocks: u64,
    /// "two-pass" (exact, from a second read of the file), "incremental" (one
    /// pass over a live stream) or "none" (no allocation).
    pub method: &'static str,
    /// Sites live at the peak, by bytes.
    pub sites: Vec<SiteRow>,
    /// Sites not listed.
    pub sites_omitted: usize,
}

/// Leaks.
#[derive(Clone, Debug, Serialize)]
pub struct Leaks {
    /// Bytes live at the end.
    pub bytes: u64,
    /// Blocks.
    pub blocks: u64,
    /// By site, by bytes.
    pub sites: Vec<SiteRow>,
    /// Sites not listed.
    pub sites_omitted: usize,
}

/// Hottest sites.
#[derive(Clone, Debug, Serialize)]
pub struct HotSites {
    /// By allocation calls (allocs + reallocs made there); `bytes` = bytes allocated.
    pub by_count: Vec<SiteRow>,
    /// By bytes allocated; `count` = calls.
    pub by_bytes: Vec<SiteRow>,
}

/// Temporaries.
#[derive(Clone, Debug, Serialize)]
pub struct TemporariesOut {
    /// Freed with no allocation in between on their thread (heaptrack's definition).
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// By site (`count` = temporaries).
    pub sites: Vec<SiteRow>,
    /// Threshold for short-lived, in ticks; null without a clock.
    pub short_lived_threshold_ticks: Option<u64>,
    /// The same threshold in nanoseconds (as given with `--short-lived`).
    pub short_lived_threshold_ns: Option<u64>,
    /// Freed within the threshold.
    pub short_lived: Option<u64>,
    /// "lower" when free timestamps were lower bounds (the default for
    /// producers), "exact" when every such free read the clock.
    pub lifetime_bound: &'static str,
}

/// A histogram bucket.
#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    /// Lowest value.
    pub low: u64,
    /// First value of the next bucket.
    pub high: u64,
    /// Count.
    pub count: u64,
}

/// Histograms.
#[derive(Clone, Debug, Serialize)]
pub struct Histograms {
    /// Requested sizes of successful allocs (bytes).
    pub sizes: Vec<Bucket>,
    /// Lifetimes of freed blocks (ticks; lower bounds unless frees were exact).
    pub lifetimes: Vec<Bucket>,
    /// Ticks per second for `lifetimes`.
    pub ticks_per_second: u64,
}

/// Realloc chains started at one site.
#[derive(Clone, Debug, Serialize)]
pub struct GrowthRow {
    /// First allocation's site.
    pub site: u32,
    /// Readable.
    pub location: String,
    /// Chains (blocks reallocated at least once).
    pub chains: u64,
    /// Reallocs in them.
    pub reallocs: u64,
    /// Longest chain.
    pub max_chain: u32,
    /// Its first and last size.
    pub max_chain_sizes: (u64, u64),
    /// Reallocs that moved the block.
    pub moved: u64,
    /// Bytes those moves copied.
    pub copied_bytes: u64,
}

/// A thread.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadRow {
    /// Stream id.
    pub stream: u32,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Successful allocs.
    pub allocations: u64,
    /// Bytes allocated.
    pub bytes_allocated: u64,
    /// Frees made.
    pub frees: u64,
    /// Frees of other threads' blocks.
    pub foreign_frees: u64,
    /// Its blocks live at the end.
    pub leaked_blocks: u64,
    /// Their bytes.
    pub leaked_bytes: u64,
}

/// A scope.
#[derive(Clone, Debug, Serialize)]
pub struct ScopeRow {
    /// Name.
    pub name: String,
    /// Times entered.
    pub entered: u64,
    /// Allocations while innermost.
    pub allocations: u64,
    /// Their bytes.
    pub bytes_allocated: u64,
    /// Of those, live at the end.
    pub leaked_blocks: u64,
    /// Their bytes.
    pub leaked_bytes: u64,
}

/// A named variable.
#[derive(Clone, Debug, Serialize)]
pub struct NameRow {
    /// Variable.
    pub var: String,
    /// Type.
    pub type_name: String,
    /// Where named.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Whether its address was live when named.
    pub resolved: bool,
    /// Allocation site.
    pub site: u32,
    /// Size when named.
    pub size_at_naming: u64,
    /// Largest size.
    pub max_size: u64,
    /// Reallocs after naming.
    pub reallocs: u32,
    /// Freed before the end.
    pub freed: bool,
    /// Lifetime (ticks, lower bound), when freed.
    pub lifetime_ticks: Option<u64>,
}

/// Cross-thread frees.
#[derive(Clone, Debug, Serialize)]
pub struct CrossThreadOut {
    /// Count.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
    /// (allocating stream, freeing stream, count, bytes), most first.
    pub pairs: Vec<(u32, u32, u64, u64)>,
    /// By allocation site.
    pub sites: Vec<SiteRow>,
}

/// One heap error.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorRow {
    /// Kind.
    pub kind: ErrorKind,
    /// What happened, in words.
    pub message: String,
    /// Address.
    pub addr: String,
    /// Timestamp.
    pub ts: u64,
    /// Stream of the faulty call.
    pub stream: u32,
    /// Stack of the faulty call.
    pub stack: u32,
    /// Stack of the allocation, when known.
    pub alloc_stack: Option<u32>,
    /// Stack of the first free (double free).
    pub first_free_stack: Option<u32>,
}

/// Heap errors.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorsOut {
    /// All.
    pub total: u64,
    /// Per kind.
    pub counts: BTreeMap<String, u64>,
    /// Examples with both stacks.
    pub examples: Vec<ErrorRow>,
    /// Frees of unknown addresses are expected when events were lost or the
    /// trace started late: this says whether that applies.
    pub unknown_frees_explained_by_loss: bool,
    /// Events lost in this session (0: none). When not 0, every error may be
    /// an artefact of the loss (a lost free shows as an allocation over a
    /// live block, a lost allocation as a free of an unknown address), and
    /// each example's message says so.
    pub lost_events: u64,
    /// Bytes of damaged input skipped in this session (the same caveat).
    pub damaged_bytes: u64,
    /// The caveat in words ("possibly caused by N lost events"), or `None`
    /// when nothing was lost or damaged.
    pub caveat: Option<String>,
}

/// A region at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct FragmentationAt {
    /// "peak" or "end".
    pub at: &'static str,
    /// The state.
    #[serde(flatten)]
    pub region: Fragmentation,
}

/// A mark.
#[derive(Clone, Debug, Serialize)]
pub struct MarkRow {
    /// Name.
    pub name: String,
    /// Timestamp.
    pub ts: u64,
    /// Live bytes then.
    pub live_bytes: u64,
    /// Live blocks then.
    pub live_blocks: u64,
}

/// A symbolized stack.
#[derive(Clone, Debug, Serialize)]
pub struct StackOut {
    /// Frames, innermost first (inlined frames included).
    pub frames: Vec<FrameInfo>,
    /// Index of the first user frame (allocator frames before it).
    pub first_user_frame: usize,
}

/// Symbolization status.
#[derive(Clone, Debug, Serialize)]
pub struct SymbolizationOut {
    /// Files whose debug info was used.
    pub loaded: Vec<String>,
    /// Problems.
    pub warnings: Vec<String>,
}

/// Builds the report of every session of `run`. `symbolizers` has one entry
/// per session (see [`Symbolizer::new`]).
pub fn build(run: &Run, symbolizers: &mut [Symbolizer], opts: &Options) -> Report {
    let n = run.sessions.len();
    let mut reports: Vec<Report> = run
        .sessions
        .iter()
        .zip(symbolizers.iter_mut())
        .enumerate()
        .map(|(i, (s, sym))| build_session(run, i, n, s, sym, opts))
        .collect();
    let mut last = reports.pop().expect("a run has at least one session");
    last.previous_sessions = reports;
    last
}

struct Ctx<'a> {
    sym: &'a mut Symbolizer,
    session: &'a Session,
    used: BTreeSet<u32>,
    stacks: BTreeMap<u32, StackOut>,
}

impl Ctx<'_> {
    fn stack(&mut self, site: u32) -> &StackOut {
        if !self.stacks.contains_key(&site) {
            let frames = self.sym.stack(self.session.stacks.get(site));
            let first = first_user_frame(&frames);
            self.stacks.insert(
                site,
                StackOut {
                    frames,
                    first_user_frame: first,
                },
            );
        }
        &self.stacks[&site]
    }

    fn location(&mut self, site: u32) -> String {
        self.used.insert(site);
        if site == NO_STACK {
            return "<no stack recorded>".into();
        }
        let st = self.stack(site);
        match st.frames.get(st.first_user_frame) {
            Some(f) => describe_frame(f),
            None => format!("stack #{site} (empty)"),
        }
    }

    fn row(&mut self, site: u32, bytes: u64, count: u64) -> SiteRow {
        SiteRow {
            site,
            location: self.location(site),
            bytes,
            count,
        }
    }
}

/// `function (file:line)`, or the module offset, or the address.
pub fn describe_frame(f: &FrameInfo) -> String {
    let place = match (&f.file, f.line) {
        (Some(file), Some(line)) => Some(format!("{}:{line}", short_path(file))),
        (Some(file), None) => Some(short_path(file).to_owned()),
        _ => None,
    };
    match (&f.function, place) {
        (Some(func), Some(p)) => format!("{func} ({p})"),
        (Some(func), None) => func.clone(),
        (None, _) => match &f.module {
            Some(m) => format!("{:#x} ({m})", f.addr),
            None => format!("{:#x}", f.addr),
        },
    }
}

fn short_path(p: &str) -> &str {
    // Keep the last three components: enough to find the file, short enough to read.
    let mut idx = p.len();
    for _ in 0..3 {
        match p[..idx].rfind('/') {
            Some(i) => idx = i,
            None => return p,
        }
    }
    &p[idx + 1..]
}

fn top<T>(mut v: Vec<T>, n: usize, key: impl Fn(&T) -> (u64, u64)) -> (Vec<T>, usize) {
    v.sort_by_key(|x| std::cmp::Reverse(key(x)));
    let omitted = v.len().saturating_sub(n);
    v.truncate(n);
    (v, omitted)
}

/// Completeness of a session, with reasons when it is not complete.
pub fn completeness(s: &SessionRun) -> (bool, Vec<String>) {
    let sess = &s.session;
    let mut why = Vec::new();
    if sess.header.is_none() {
        why.push("no header: the trace starts mid-session".to_owned());
    }
    if s.damage.spans > 0 {
        why.push(format!(
            "{} damaged spans ({} bytes) skipped",
            s.damage.spans, s.damage.bytes
        ));
    }
    if sess.record_errors > 0 {
        why.push(format!("{} records did not decode", sess.record_errors));
    }
    why.extend(s.damage.frames.incomplete_reasons());
    let mut lost = 0;
    let mut skipped = 0;
    for (id, st) in &sess.streams {
        lost = st
            .counts
            .lost
            .max(st.end.map_or(0, |e| e.lost))
            .saturating_add(lost);
        skipped = st.counts.skipped_unsynced.saturating_add(skipped);
        match &st.end {
            None => why.push(format!("stream {id} has no End record (cut short?)")),
            Some(e) => {
                let c = &st.counts;
                if !end_matches(st) {
                    why.push(format!(
                        "stream {id}: End says {}/{}/{} alloc/dealloc/realloc calls, {}/{}/{} decoded",
                        e.allocs, e.deallocs, e.reallocs, c.allocs, c.deallocs, c.reallocs
                    ));
                }
            }
        }
    }
    if lost > 0 {
        why.push(format!("{lost} events lost by the producer"));
    }
    if skipped > 0 {
        why.push(format!(
            "{skipped} events skipped after damage (stream not yet re-synchronised)"
        ));
    }
    if let Some(e) = sess.streams.get(&0).and_then(|s| s.end) {
        let zero_has_events = sess.streams.get(&0).is_some_and(|s| s.has_events);
        let seen = sess.streams.keys().filter(|&&k| k != 0).count() + usize::from(zero_has_events);
        if e.streams as usize != seen {
            why.push(format!(
                "the control stream announces {} event streams, {seen} were seen",
                e.streams
            ));
        }
    }
    (why.is_empty(), why)
}

fn end_matches(st: &crate::records::StreamState) -> bool {
    let Some(e) = st.end else { return false };
    let c = &st.counts;
    // The End counts every call, recorded or lost; the lost ones were
    // reported by Lost records.
    let decoded = u128::from(c.allocs)
        + u128::from(c.deallocs)
        + u128::from(c.reallocs)
        + u128::from(c.lost.max(e.lost));
    decoded == u128::from(e.allocs) + u128::from(e.deallocs) + u128::from(e.reallocs)
        && c.allocs <= e.allocs
        && c.deallocs <= e.deallocs
        && c.reallocs <= e.reallocs
        && c.failed <= e.failed
        && c.lost == e.lost
}

fn build_session(
    run: &Run,
    index: usize,
    count: usize,
    s: &SessionRun,
    sym: &mut Symbolizer,
    opts: &Options,
) -> Report {
    let sess = &s.session;
    let an = &s.analyses;
    let mut ctx = Ctx {
        sym,
        session: sess,
        used: BTreeSet::new(),
        stacks: BTreeMap::new(),
    };
    let tps = sess.header.as_ref().map_or(0, |h| h.ticks_per_second);
    let (complete, incomplete_reasons) = completeness(s);
    let lost_events: u64 = sess
        .streams
        .values()
        .map(|st| st.counts.lost.max(st.end.map_or(0, |e| e.lost)))
        .fold(0, u64::saturating_add);
    let t = &an.totals;

    // Peak.
    let (peak_rows, peak_omitted, method) = match &s.peak {
        Some(p) => {
            let (rows, omitted) = top(p.sites.clone(), opts.top, |r| (r.1, r.2));
            (rows, omitted, p.method)
        }
        None => (
            Vec::new(),
            0,
            if an.peak.peak_seq.is_some() {
                "unavailable"
            } else {
                "none"
            },
        ),
    };
    let peak = PeakOut {
        bytes: an.peak.peak_bytes,
        blocks: an.peak.peak_blocks,
        ts: an.peak.peak_ts,
        seconds: (tps > 0)
            .then(|| an.peak.peak_ts.saturating_sub(an.first_ts.unwrap_or(0)) as f64 / tps as f64),
        max_blocks: an.peak.max_blocks,
        method,
        sites: peak_rows
            .iter()
            .map(|&(site, b, c)| ctx.row(site, b, c))
            .collect(),
        sites_omitted: peak_omitted,
    };

    // Leaks.
    let live = an.sites.live();
    let (leak_rows, leak_omitted) = top(live, opts.top, |r| (r.1, r.2));
    let leaks = Leaks {
        bytes: s.state.live_bytes,
        blocks: s.state.live.len() as u64,
        sites: leak_rows
            .iter()
            .map(|&(site, b, c)| ctx.row(site, b, c))
            .collect(),
        sites_omitted: leak_omitted,
    };

    // Hot sites.
    let calls: Vec<(u32, u64, u64)> = an
        .sites
        .iter()
        .filter(|(_, st)| st.allocs + st.reallocs > 0)
        .map(|(i, st)| (i, st.allocs + st.reallocs, st.bytes))
        .collect();
    let (by_count, _) = top(calls.clone(), opts.top.min(10), |r| (r.1, r.2));
    let (by_bytes, _) = top(calls, opts.top.min(10), |r| (r.2, r.1));
    let hot_sites = HotSites {
        by_count: by_count
            .iter()
            .map(|&(site, c, b)| ctx.row(site, b, c))
            .collect(),
        by_bytes: by_bytes
            .iter()
            .map(|&(site, c, b)| ctx.row(site, b, c))
            .collect(),
    };

    // Temporaries.
    let temps: Vec<(u32, u64)> = an
        .sites
        .iter()
        .filter(|(_, st)| st.temporaries > 0)
        .map(|(i, st)| (i, st.temporaries))
        .collect();
    let (temp_rows, _) = top(temps, opts.top.min(10), |r| (r.1, 0));
    let short = an
        .temporaries
        .threshold_ticks
        .map(|_| an.temporaries.short_lived);
    let temporaries = TemporariesOut {
        count: an.temporaries.count,
        bytes: an.temporaries.bytes,
        sites: temp_rows
            .iter()
            .map(|&(site, c)| ctx.row(site, 0, c))
            .collect(),
        short_lived_threshold_ticks: an.temporaries.threshold_ticks,
        short_lived_threshold_ns: an
            .temporaries
            .threshold_ticks
            .map(|_| an.temporaries.threshold_ns),
        short_lived: short,
        lifetime_bound: if t.deallocations > 0 && t.exact_free_ts == t.deallocations {
            "exact"
        } else {
            "lower"
        },
    };

    let buckets = |h: &crate::analysis::histograms::Log2Histogram| {
        h.ranges()
            .into_iter()
            .map(|(low, high, count)| Bucket { low, high, count })
            .collect()
    };
    let histograms = Histograms {
        sizes: buckets(&an.sizes),
        lifetimes: buckets(&an.lifetimes),
        ticks_per_second: tps,
    };

    // Growth.
    let chains: Vec<(u32, u64, u64)> = an
        .sites
        .iter()
        .filter(|(_, st)| st.chains > 0)
        .map(|(i, st)| (i, u64::from(st.max_chain), st.chain_reallocs))
        .collect();
    let (chains, _) = top(chains, opts.top.min(10), |r| (r.1, r.2));
    let mut growth = Vec::new();
    for (site, _, _) in chains {
        let st = *sites_get(an, site);
        growth.push(GrowthRow {
            site,
            location: ctx.location(site),
            chains: st.chains,
            reallocs: st.chain_reallocs,
            max_chain: st.max_chain,
            max_chain_sizes: st.max_chain_sizes,
            moved: st.moved,
            copied_bytes: st.copied_bytes,
        });
    }

    // Threads, scopes, names.
    let mut threads: Vec<ThreadRow> = an
        .attribution
        .threads
        .iter()
        .map(|(stream, th)| ThreadRow {
            stream,
            name: sess.thread_name(stream).map(str::to_owned),
            allocations: th.allocs,
            bytes_allocated: th.bytes,
            frees: th.frees,
            foreign_frees: th.foreign_frees,
            leaked_blocks: th.live_blocks,
            leaked_bytes: th.live_bytes,
        })
        .collect();
    threads.sort_by_key(|r| r.stream);
    let mut scopes: Vec<ScopeRow> = an
        .attribution
        .scopes
        .iter()
        .map(|(&name, sc)| ScopeRow {
            name: sess.strings.get(name as usize).cloned().unwrap_or_default(),
            entered: sc.entered,
            allocations: sc.allocs,
            bytes_allocated: sc.bytes,
            leaked_blocks: sc.live_blocks,
            leaked_bytes: sc.live_bytes,
        })
        .collect();
    scopes.sort_by(|a, b| {
        b.bytes_allocated
            .cmp(&a.bytes_allocated)
            .then(a.name.cmp(&b.name))
    });
    let mut names: Vec<NameRow> = an
        .attribution
        .names
        .iter()
        .filter_map(|(&i, n)| {
            let info = sess.names.get(i as usize)?;
            Some(NameRow {
                var: info.var.clone(),
                type_name: info.type_name.clone(),
                file: info.file.clone(),
                line: info.line,
                resolved: n.resolved,
                site: n.site,
                size_at_naming: n.size_at_naming,
                max_size: n.max_size,
                reallocs: n.reallocs,
                freed: n.freed,
                lifetime_ticks: n.lifetime,
            })
        })
        .collect();
    names.sort_by(|a, b| (&a.file, a.line, &a.var).cmp(&(&b.file, b.line, &b.var)));
    for n in &names {
        if n.resolved {
            ctx.location(n.site);
        }
    }

    // Cross-thread.
    let ct = &an.attribution.cross_thread;
    let mut pairs: Vec<(u32, u32, u64, u64)> = ct
        .pairs
        .iter()
        .map(|(&(a, b), &(c, by))| (a, b, c, by))
        .collect();
    pairs.sort_by(|x, y| y.2.cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
    pairs.truncate(opts.top);
    let ct_sites: Vec<(u32, u64)> = an
        .sites
        .iter()
        .filter(|(_, st)| st.cross_thread_frees > 0)
        .map(|(i, st)| (i, st.cross_thread_frees))
        .collect();
    let (ct_sites, _) = top(ct_sites, opts.top.min(10), |r| (r.1, 0));
    let cross_thread_frees = CrossThreadOut {
        count: ct.count,
        bytes: ct.bytes,
        pairs,
        sites: ct_sites
            .iter()
            .map(|&(site, c)| ctx.row(site, 0, c))
            .collect(),
    };

    // Errors.
    let mut counts = BTreeMap::new();
    for k in KINDS {
        let c = an.errors.count(k);
        if c > 0 {
            counts.insert(kind_name(k).to_owned(), c);
        }
    }
    let caveat = error_caveat(lost_events, s.damage.bytes);
    let examples = an
        .errors
        .examples
        .iter()
        .map(|e| {
            ctx.used.insert(e.stack);
            if let Some(b) = e.block {
                ctx.used.insert(b.0);
            }
            if let Some(f) = e.first_free {
                ctx.used.insert(f.0);
            }
            ErrorRow {
                kind: e.kind,
                message: match &caveat {
                    Some(c) => format!("{} ({c})", error_message(e)),
                    None => error_message(e),
                },
                addr: format!("{:#x}", e.addr),
                ts: e.ts,
                stream: e.stream,
                stack: e.stack,
                alloc_stack: e.block.map(|b| b.0),
                first_free_stack: e.first_free.map(|f| f.0),
            }
        })
        .collect();
    let errors = ErrorsOut {
        total: an.errors.total(),
        counts,
        examples,
        unknown_frees_explained_by_loss: lost_events > 0
            || s.damage.spans > 0
            || sess.header.is_none(),
        lost_events,
        damaged_bytes: s.damage.bytes,
        caveat,
    };

    let mut fragmentation = Vec::new();
    if let Some(p) = &s.peak {
        fragmentation.extend(p.fragmentation.iter().map(|f| FragmentationAt {
            at: "peak",
            region: f.clone(),
        }));
    }
    fragmentation.extend(s.fragmentation_end.iter().map(|f| FragmentationAt {
        at: "end",
        region: f.clone(),
    }));

    let marks = an
        .marks
        .iter()
        .map(|m| MarkRow {
            name: sess
                .strings
                .get(m.name as usize)
                .cloned()
                .unwrap_or_default(),
            ts: m.ts,
            live_bytes: m.live_bytes,
            live_blocks: m.live_blocks,
        })
        .collect();

    // Inference, for every site the report names.
    let mut inferred = Vec::new();
    let used: Vec<u32> = ctx.used.iter().copied().collect();
    for site in used {
        let st = *sites_get(an, site);
        let frames = if site == NO_STACK {
            Vec::new()
        } else {
            ctx.stack(site).frames.clone()
        };
        inferred.extend(infer_site(site, &st, &frames, opts.growth_threshold));
    }
    for site in ctx.used.clone() {
        if site != NO_STACK {
            ctx.stack(site);
        }
    }

    let integrity = Integrity {
        damaged_spans: s.damage.spans,
        damaged_bytes: s.damage.bytes,
        damage: s
            .damage
            .examples
            .iter()
            .map(|d| DamageRow {
                offset: d.offset,
                len: d.len,
                reason: d.reason.to_string(),
            })
            .collect(),
        record_errors: sess.record_errors,
        record_error_examples: sess
            .record_error_examples
            .iter()
            .map(|e| RecordErrorRow {
                stream: e.stream,
                frame_offset: e.frame_offset,
                position: e.position,
                bytes_lost: e.bytes_lost,
                reason: e.error.to_string(),
            })
            .collect(),
        skipped_unsynced: sess
            .streams
            .values()
            .map(|s| s.counts.skipped_unsynced)
            .fold(0, u64::saturating_add),
        unknown_stack_refs: sess.unknown_stack_refs,
        unknown_records: sess.unknown_records,
        late_events: s.late_events,
        frame_sequence: s.damage.frames.messages(),
        streams: sess
            .streams
            .iter()
            .map(|(&id, st)| StreamRow {
                stream: id,
                thread: st
                    .thread
                    .as_ref()
                    .map(|t| t.1.clone())
                    .filter(|n| !n.is_empty()),
                os_id: st.thread.as_ref().map(|t| t.0),
                decoded: [
                    st.counts.allocs,
                    st.counts.deallocs,
                    st.counts.reallocs,
                    st.counts.failed,
                ],
                lost: st.counts.lost,
                skipped_unsynced: st.counts.skipped_unsynced,
                end: st
                    .end
                    .map(|e| [e.allocs, e.deallocs, e.reallocs, e.failed, e.lost]),
                end_matches: end_matches(st),
            })
            .collect(),
    };

    let summary = Summary {
        allocations: t.allocations,
        deallocations: t.deallocations,
        reallocations: t.reallocations,
        failed_allocations: t.failed_allocs + t.failed_reallocs,
        bytes_allocated: t.bytes_allocated,
        bytes_freed: t.bytes_freed,
        peak_bytes: an.peak.peak_bytes,
        peak_blocks: an.peak.peak_blocks,
        peak_ts: an.peak.peak_ts,
        leaked_bytes: s.state.live_bytes,
        leaked_blocks: s.state.live.len() as u64,
        lost_events,
        complete,
        incomplete_reasons,
        threads: sess.streams.values().filter(|st| st.has_events).count(),
        distinct_stacks: sess.stacks.len(),
        errors: an.errors.total(),
    };

    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "memscope-decode",
            version: env!("CARGO_PKG_VERSION"),
        },
        input: Input {
            name: run.input.clone(),
            bytes: run.bytes,
        },
        session: index + 1,
        sessions: count,
        session_offset: s.start_offset,
        header: sess.header.as_ref().map(|h| HeaderOut {
            format_version: h.version,
            program: h.program.clone(),
            target: h.target.clone(),
            build_id: hex(&h.build_id),
            pointer_width: h.pointer_width,
            ticks_per_second: h.ticks_per_second,
        }),
        summary,
        integrity,
        peak,
        leaks,
        hot_sites,
        temporaries,
        histograms,
        growth,
        threads,
        scopes,
        names,
        cross_thread_frees,
        errors,
        fragmentation,
        marks,
        timeline: an
            .timeline
            .out(tps, an.peak.peak_seq.map(|seq| (an.peak.peak_ts, seq))),
        thread_timelines: an.thread_timelines.out(tps),
        inferred,
        stacks: ctx.stacks,
        symbolization: SymbolizationOut {
            loaded: ctx.sym.loaded.clone(),
            warnings: ctx.sym.warnings.clone(),
        },
        previous_sessions: Vec::new(),
    }
}

fn sites_get(an: &crate::analysis::Analyses, site: u32) -> &crate::analysis::sites::SiteStats {
    static EMPTY: crate::analysis::sites::SiteStats = crate::analysis::sites::SiteStats {
        allocs: 0,
        failed: 0,
        bytes: 0,
        reallocs: 0,
        freed: 0,
        live_bytes: 0,
        live_blocks: 0,
        max_live_bytes: 0,
        max_live_blocks: 0,
        temporaries: 0,
        short_lived: 0,
        lifetime_sum: 0,
        cross_thread_frees: 0,
        min_size: 0,
        max_size: 0,
        chains: 0,
        chain_reallocs: 0,
        max_chain: 0,
        max_chain_sizes: (0, 0),
        moved: 0,
        copied_bytes: 0,
    };
    an.sites.peek(site).unwrap_or(&EMPTY)
}

/// Snake-case name of an error kind.
pub fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::DoubleFree => "double_free",
        ErrorKind::UnknownFree => "unknown_free",
        ErrorKind::DeallocLayoutMismatch => "dealloc_layout_mismatch",
        ErrorKind::ReallocLayoutMismatch => "realloc_layout_mismatch",
        ErrorKind::ReallocUnknown => "realloc_unknown",
        ErrorKind::AllocOverLive => "alloc_over_live",
    }
}

/// What qualifies every heap error of a session whose events were lost or
/// whose input was damaged.
fn error_caveat(lost_events: u64, damaged_bytes: u64) -> Option<String> {
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    match (lost_events, damaged_bytes) {
        (0, 0) => None,
        (l, 0) => Some(format!(
            "possibly caused by {}",
            plural(l, "lost event", "lost events")
        )),
        (0, d) => Some(format!(
            "possibly caused by {} of damaged input",
            plural(d, "byte", "bytes")
        )),
        (l, d) => Some(format!(
            "possibly caused by {} and {} of damaged input",
            plural(l, "lost event", "lost events"),
            plural(d, "byte", "bytes")
        )),
    }
}

fn error_message(e: &crate::analysis::errors::HeapError) -> String {
    let (size, align) = e.layout;
    match (e.kind, e.block) {
        (ErrorKind::DoubleFree, Some((_, _, bs, _))) => {
            format!("block of {bs} bytes at {:#x} freed twice (second free on stream {})", e.addr, e.stream)
        }
        (ErrorKind::DeallocLayoutMismatch, Some((_, _, bs, ba))) => format!(
            "dealloc with size {size} align {align}, but the block was allocated with size {bs} align {ba}: undefined behaviour"
        ),
        (ErrorKind::ReallocLayoutMismatch, Some((_, _, bs, ba))) => format!(
            "realloc of a block of size {bs} align {ba} passed size {size} align {align}: undefined behaviour"
        ),
        (ErrorKind::ReallocUnknown, Some((_, _, bs, _))) => {
            format!("realloc of {:#x}, a block of {bs} bytes already freed: use after free", e.addr)
        }
        (ErrorKind::ReallocUnknown, None) => format!("realloc of {:#x}, which is not live", e.addr),
        (ErrorKind::AllocOverLive, Some((_, _, bs, _))) => format!(
            "allocation returned {:#x} while a block of {bs} bytes there was still live (its free was lost or misordered)",
            e.addr
        ),
        (ErrorKind::UnknownFree, _) | (_, None) => format!("free of {:#x} ({size} bytes), which is not live", e.addr),
    }
}

/// The session's reports as a list, oldest first.
pub fn all_sessions(r: &Report) -> Vec<&Report> {
    let mut v: Vec<&Report> = r.previous_sessions.iter().collect();
    v.push(r);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline;
    use crate::source::Source;
    use crate::synth::TraceBuilder;
    use memscope_core::wire::Header;

    fn report(bytes: Vec<u8>) -> Report {
        let mut src = Source::live("t", Box::new(std::io::Cursor::new(bytes)));
        let run = pipeline::run(&mut src, &pipeline::Options::default()).unwrap();
        let mut syms: Vec<Symbolizer> = run.sessions.iter().map(|_| Symbolizer::none()).collect();
        build(&run, &mut syms, &Options::default())
    }

    /// A firmware trace whose free of 0x2000_0000 was lost: the second
    /// allocation at that address is an error, qualified by the loss.
    fn trace(lose: bool) -> Vec<u8> {
        let mut b = TraceBuilder::new(Vec::new());
        b.header(Header::new(4, 1_000_000, "fw"), None).unwrap();
        b.alloc(0, 1, 0x2000_0000, 16, 8, None).unwrap();
        if lose {
            b.lose(0, 'd');
        } else {
            b.dealloc(0, Some(2), 0x2000_0100, 16, 8, None).unwrap();
        }
        b.alloc(0, 3, 0x2000_0000, 16, 8, None).unwrap();
        b.end(0, 1).unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn errors_found_with_lost_events_say_they_may_come_from_the_loss() {
        let r = report(trace(true));
        assert_eq!(r.errors.total, 1);
        assert_eq!(r.errors.lost_events, 1);
        assert_eq!(
            r.errors.caveat.as_deref(),
            Some("possibly caused by 1 lost event")
        );
        assert!(
            r.errors.examples[0]
                .message
                .ends_with("(possibly caused by 1 lost event)"),
            "{}",
            r.errors.examples[0].message
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["errors"]["caveat"], "possibly caused by 1 lost event");

        // Without a loss the same kind of error stands unqualified.
        let r = report(trace(false));
        assert_eq!(r.errors.total, 2, "{:?}", r.errors.counts);
        assert_eq!(r.errors.caveat, None);
        assert!(!r.errors.examples[0].message.contains("possibly"));
    }

    #[test]
    fn the_caveat_counts_lost_events_and_damaged_bytes() {
        assert_eq!(error_caveat(0, 0), None);
        assert_eq!(
            error_caveat(480_580, 0).as_deref(),
            Some("possibly caused by 480580 lost events")
        );
        assert_eq!(
            error_caveat(2, 37).as_deref(),
            Some("possibly caused by 2 lost events and 37 bytes of damaged input")
        );
    }
}
