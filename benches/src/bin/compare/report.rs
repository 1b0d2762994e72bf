//! BENCHMARKS.md: every figure below is computed from the runs in this
//! process; the only fixed text is the explanation of what is measured.

use super::measure::{Measured, Outcome};
use super::Args;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A decoded trace of one configuration (the last round's).
pub struct Decoded {
    pub tool: &'static str,
    pub runs: DecodeRuns,
    /// File size on disk.
    pub written: u64,
    /// Bytes once decompressed (memscope writes no compression: = written).
    pub raw: Option<u64>,
    /// Heap events in the trace; `true` = taken from memscope's trace of
    /// the same workload and thread count (the tool does not count frees).
    pub events: Option<(u64, bool)>,
    /// Events the producer counted as lost (ring full), included in `events`.
    pub lost: Option<u64>,
}

/// The decodes of one trace, one per round.
pub struct DecodeRuns {
    /// The successful ones.
    pub ok: Vec<Measured>,
    /// Why the others failed (the first), and how many did.
    pub failed: Option<(String, usize)>,
}

impl From<Vec<Outcome>> for DecodeRuns {
    fn from(outcomes: Vec<Outcome>) -> Self {
        let mut runs = DecodeRuns {
            ok: Vec::new(),
            failed: None,
        };
        for o in outcomes {
            let why = match o {
                Outcome::Done(m) if m.success => {
                    runs.ok.push(m);
                    continue;
                }
                Outcome::Done(m) => format!("failed ({})", m.stderr_tail.trim()),
                Outcome::TimedOut(t) => format!("killed after {:.0} s", t.as_secs_f64()),
                Outcome::SpawnFailed(e) => format!("could not start: {e}"),
            };
            let f = runs.failed.get_or_insert((why, 0));
            f.1 += 1;
        }
        runs
    }
}

impl DecodeRuns {
    /// Median wall time, seconds.
    pub fn wall(&self) -> Option<f64> {
        median(self.ok.iter().map(|m| m.wall.as_secs_f64()).collect())
    }

    /// Median CPU time (user + system, all threads), seconds.
    pub fn cpu(&self) -> Option<f64> {
        median(self.ok.iter().map(|m| m.cpu.as_secs_f64()).collect())
    }
}

/// Runs of one configuration at one thread count, in round order.
pub struct ConfigRuns {
    pub name: &'static str,
    pub runs: Vec<Measured>,
    /// For a tracker: the System run made just before each of `runs`.
    pub baseline: Vec<Measured>,
    /// Why it has no (more) runs.
    pub skip: Option<String>,
    pub trace: Option<std::path::PathBuf>,
    pub decode: Option<Decoded>,
}

impl ConfigRuns {
    pub fn new(name: &'static str, build_error: Option<String>) -> Self {
        ConfigRuns {
            name,
            runs: Vec::new(),
            baseline: Vec::new(),
            skip: build_error,
            trace: None,
            decode: None,
        }
    }
}

pub struct Doc {
    command: String,
    reps: usize,
    timeout: Duration,
    date: String,
    machine: String,
    revision: String,
    pub load_start: String,
    pub load_end: String,
    pub tables: Vec<(usize, Vec<ConfigRuns>)>,
    pub profiles: Vec<(String, Result<String, String>)>,
    pub callgrind: Option<Result<super::callgrind::Report, String>>,
    pub firmware: Option<Result<String, String>>,
    pub flash: Option<Result<String, String>>,
    pub unit_costs: Vec<(&'static str, f64)>,
    /// The decoder on a synthetic 10^8-event trace: its memory.
    pub large: Option<Result<String, String>>,
    pub duration: Duration,
}

fn sh(cmd: &str, args: &[&str], dir: &Path) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| format!("({cmd} unavailable)"))
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Doc {
    pub fn new(args: &Args, root: &Path) -> Doc {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            })
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB RAM", kb as f64 / 1048576.0))
            .unwrap_or_default();
        let mut command = String::from("cargo run --release -p memscope-benches --bin compare");
        let extra: Vec<String> = std::env::args().skip(1).collect();
        if !extra.is_empty() {
            command.push_str(" -- ");
            command.push_str(&extra.join(" "));
        }
        // BENCHMARKS.md itself does not count: it is this program's output,
        // changed by every earlier run until committed.
        let dirty = sh(
            "git",
            &["status", "--porcelain", "--untracked-files=no"],
            root,
        )
        .lines()
        .any(|l| !l.ends_with("BENCHMARKS.md"));
        Doc {
            command,
            reps: args.reps,
            timeout: args.timeout,
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root),
            machine: format!(
                "{cpu}, nproc = {nproc}, {mem}, {} ({})",
                sh("uname", &["-sr"], root),
                sh("rustc", &["-V"], root)
            ),
            revision: format!(
                "{}{}",
                sh("git", &["rev-parse", "--short", "HEAD"], root),
                if dirty {
                    " (with uncommitted changes in the work tree)"
                } else {
                    ""
                }
            ),
            load_start: String::new(),
            load_end: String::new(),
            tables: Vec::new(),
            profiles: Vec::new(),
            callgrind: None,
            firmware: None,
            flash: None,
            unit_costs: Vec::new(),
            large: None,
            duration: Duration::ZERO,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# memscope benchmarks\n");
        let _ = writeln!(
            w,
            "Generated by `{}` (the numbers below are all read from that run; edit the \
             harness, `benches/src/bin/compare/`, not this file).\n",
            self.command
        );
        let _ = writeln!(w, "- Date: {}", self.date);
        let _ = writeln!(w, "- Machine: {}", self.machine);
        let _ = writeln!(w, "- Revision: {}", self.revision);
        let _ = writeln!(
            w,
            "- Load average (1, 5, 15 min): {} at the start, {} at the end. The machine is \
             shared: other engineers' builds may run at the same time, which inflates wall \
             times more than CPU times; ratios are taken against a System run made just \
             before each tracker run to limit that.",
            self.load_start, self.load_end
        );
        let _ = writeln!(
            w,
            "- {} rounds per thread count; each round runs every tracker once, each right \
             after a System run of its own. A run that exceeds {} s is killed and reported as such. Harness run time: \
             {:.0} s.\n",
            self.reps,
            self.timeout.as_secs(),
            self.duration.as_secs_f64()
        );
        let _ = writeln!(
            w,
            "The workload (`benches/compare/workload`, one binary per allocator feature, all \
             built with `-C force-frame-pointers=yes`): per thread, 2M alloc/free of mixed \
             sizes (8 B - 4 KiB) with a 1000-slot live window, a 200k-entry \
             `BTreeMap<u64, String>` built and dropped, 20k `Vec<u32>` grown to 1000 elements \
             by push. Whole-process wall time, CPU time (user + system, all threads) and peak \
             RSS come from `wait4` on the child. \"Ratio\" is the median over rounds of \
             (configuration / the System run made just before it: every tracker run is paired \
             with its own baseline run, so the System row has one run per tracker run). \"Added CPU per event\" is \
             (median CPU - System's median CPU) / heap events, with the event count from \
             memscope's trace of the same workload.\n"
        );
        for (threads, results) in &self.tables {
            self.render_table(w, *threads, results);
        }
        self.render_traces(w);
        if let Some(large) = &self.large {
            let _ = writeln!(
                w,
                "## Decoding 10^8 events: memory\n\n\
                 `memscope-decode synth --events 100000000` (4 streams, 2000 live blocks each), \
                 then `memscope-decode TRACE --json FILE`, measured like the workload: the \
                 decoder's memory follows live blocks, distinct stacks and the merge window, \
                 not the number of events.\n"
            );
            match large {
                Ok(line) => {
                    let _ = writeln!(w, "{line}\n");
                }
                Err(e) => {
                    let _ = writeln!(w, "Not measured: {e}\n");
                }
            }
        }
        self.render_profiles(w);
        let _ = writeln!(w, "## Firmware (examples/firmware/measure.py)\n");
        match &self.firmware {
            None => {
                let _ = writeln!(w, "Not run (`--no-firmware`).\n");
            }
            Some(Ok(out)) => {
                let _ = writeln!(w, "```text\n{out}\n```\n");
            }
            Some(Err(e)) => {
                let _ = writeln!(w, "Not measured: {e}\n");
            }
        }
        if let Some(flash) = &self.flash {
            let _ = writeln!(
                w,
                "### The record path's flash (benches/flash/measure.sh)\n"
            );
            let _ = writeln!(
                w,
                "A tiny image with a bump allocator, built without tracking (`none`), with \
                 `StatsOnly`, with the `Stream` recorder into a RAM ring, and with a drain; \
                 then what `stream` adds over `none`, symbol by symbol.\n"
            );
            match flash {
                Ok(out) => {
                    let _ = writeln!(w, "```text\n{out}\n```\n");
                }
                Err(e) => {
                    let _ = writeln!(w, "Not measured: {e}\n");
                }
            }
        }
        s
    }

    fn events(&self, results: &[ConfigRuns]) -> Option<u64> {
        results
            .iter()
            .filter_map(|r| r.decode.as_ref())
            .filter_map(|d| d.events)
            .map(|e| e.0)
            .max()
    }

    fn render_table(&self, w: &mut String, threads: usize, results: &[ConfigRuns]) {
        let _ = writeln!(w, "## Churn workload, {threads} thread(s)\n");
        let events = self.events(results);
        if let Some(e) = events {
            let _ = writeln!(
                w,
                "Heap events per run (allocs + frees + reallocs, from memscope's trace, lost ones included): {e}\n"
            );
        }
        let _ = writeln!(
            w,
            "| configuration | runs | wall ratio | CPU ratio | median wall | median CPU | peak RSS | added CPU per event |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        let base = &results[0];
        let base_cpu = median(base.runs.iter().map(|m| m.cpu.as_secs_f64()).collect());
        for r in results {
            if r.runs.is_empty() {
                let _ = writeln!(
                    w,
                    "| {} | 0 | - | - | - | - | - | {} |",
                    r.name,
                    r.skip.as_deref().unwrap_or("no runs").replace('|', "/")
                );
                continue;
            }
            let ratio = |f: fn(&Measured) -> f64| {
                median(
                    r.runs
                        .iter()
                        .zip(if r.name == base.name {
                            &r.runs
                        } else {
                            &r.baseline
                        })
                        .map(|(m, b)| f(m) / f(b))
                        .collect(),
                )
            };
            let wall_ratio = ratio(|m| m.wall.as_secs_f64());
            let cpu_ratio = ratio(|m| m.cpu.as_secs_f64());
            let wall = median(r.runs.iter().map(|m| m.wall.as_secs_f64()).collect());
            let cpu = median(r.runs.iter().map(|m| m.cpu.as_secs_f64()).collect());
            let rss = median(r.runs.iter().map(|m| m.max_rss as f64).collect());
            let added = match (events, base_cpu) {
                (Some(e), Some(b)) if r.name != base.name => {
                    format!("{:.1} ns", (cpu.unwrap_or(0.0) - b) * 1e9 / e as f64)
                }
                _ => "-".into(),
            };
            let note = r
                .skip
                .as_deref()
                .map(|s| format!(" ({})", s.replace('|', "/")))
                .unwrap_or_default();
            let _ = writeln!(
                w,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                note,
                r.runs.len(),
                fmt_x(wall_ratio),
                fmt_x(cpu_ratio),
                fmt_s(wall),
                fmt_s(cpu),
                rss.map(|b| format!("{:.1} MiB", b / 1048576.0))
                    .unwrap_or_default(),
                added
            );
        }
        let _ = writeln!(w);
    }

    fn render_traces(&self, w: &mut String) {
        let _ = writeln!(w, "## Traces: size and decoding\n");
        let _ = writeln!(
            w,
            "The last round's trace of each tracing configuration, decoded by its own tool \
             (`memscope-decode TRACE --json FILE`, `heaptrack_print FILE`), measured like the \
             workload, {} times: in each round every trace of the table is decoded once, so \
             the tools' runs share the same stretch of time. Decode wall is the median \
             (fastest–slowest), CPU and peak RSS are medians. \"Raw\" is the uncompressed size (heaptrack compresses its file with \
             zstd; memscope writes its frames uncompressed unless asked, as in the `+ zstd` row, \
             whose file memscope-std's writer compresses at zstd level 1). heaptrack's event count is \
             memscope's for the same workload (marked *), since heaptrack_print does not count \
             frees. \"Events\" counts the events a trace recorded plus those its producer \
             reported lost (memscope counts an event as lost when the thread's ring is \
             full); a trace with lost events is incomplete and cost its producer less.\n",
            super::DECODE_ROUNDS
        );
        let _ = writeln!(
            w,
            "| threads | trace | events | lost | written | bytes/event written | raw | bytes/event raw | decoder | decode wall | decode CPU | decode peak RSS |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (threads, results) in &self.tables {
            for r in results {
                let Some(d) = &r.decode else { continue };
                let (ev, inferred) = match d.events {
                    Some((e, i)) => (Some(e), i),
                    None => (None, false),
                };
                // Bytes per event the trace holds (lost events wrote no bytes).
                let recorded = ev.map(|e| e - d.lost.unwrap_or(0).min(e));
                let per = |b: u64| {
                    recorded
                        .map(|e| format!("{:.2}", b as f64 / e.max(1) as f64))
                        .unwrap_or("-".into())
                };
                let runs = &d.runs;
                let walls: Vec<f64> = runs.ok.iter().map(|m| m.wall.as_secs_f64()).collect();
                let failed = runs
                    .failed
                    .as_ref()
                    .map(|(why, n)| {
                        format!(
                            " ({n} of {} {})",
                            super::DECODE_ROUNDS,
                            why.replace('|', "/")
                        )
                    })
                    .unwrap_or_default();
                let dec = match runs.wall() {
                    Some(wall) => format!(
                        "{wall:.2} s ({:.2}–{:.2}){failed} | {:.2} s | {:.1} MiB",
                        walls.iter().copied().fold(f64::INFINITY, f64::min),
                        walls.iter().copied().fold(0.0, f64::max),
                        runs.cpu().unwrap_or(0.0),
                        median(runs.ok.iter().map(|m| m.max_rss as f64).collect()).unwrap_or(0.0)
                            / 1048576.0
                    ),
                    None => format!("{} | - | -", failed.trim()),
                };
                let _ = writeln!(
                    w,
                    "| {threads} | {} | {}{} | {} | {} | {} | {} | {} | {} | {dec} |",
                    r.name,
                    ev.map(|e| e.to_string()).unwrap_or("unknown".into()),
                    if inferred { "*" } else { "" },
                    d.lost
                        .map(|l| l.to_string())
                        .unwrap_or("not recorded".into()),
                    mib(d.written),
                    per(d.written),
                    d.raw.map(mib).unwrap_or("unknown".into()),
                    d.raw.map(per).unwrap_or("-".into()),
                    d.tool
                );
            }
        }
        let _ = writeln!(w);
        // memscope-decode against heaptrack_print on the same workload.
        for (threads, results) in &self.tables {
            let decoded = || {
                results
                    .iter()
                    .filter_map(|r| r.decode.as_ref().map(|d| (r.name, d)))
            };
            let Some((hp, hp_cpu)) = decoded()
                .find(|(_, d)| d.tool == "heaptrack_print")
                .and_then(|(_, d)| Some((d.runs.wall()?, d.runs.cpu()?)))
            else {
                continue;
            };
            for (name, d) in decoded().filter(|(_, d)| d.tool == "memscope-decode") {
                let (Some(m), Some(m_cpu), Some((events, _))) =
                    (d.runs.wall(), d.runs.cpu(), d.events)
                else {
                    continue;
                };
                let rate = |s: f64| events as f64 / s / 1e6;
                let _ = writeln!(
                    w,
                    "- {threads} thread(s), {name}: memscope-decode {m:.2} s, heaptrack_print \
                     {hp:.2} s (medians): **{:.2}x** heaptrack_print's speed ({:.1}M against \
                     {:.1}M events/s); CPU {m_cpu:.2} s against {hp_cpu:.2} s, {:.2}x",
                    hp / m,
                    rate(m),
                    rate(hp),
                    hp_cpu / m_cpu
                );
            }
        }
        let _ = writeln!(
            w,
            "\nmemscope-decode reads a file on two threads (one decodes and merges, the other \
             analyses; docs/ARCHITECTURE.md), heaptrack_print on one: the first ratio of each \
             line is the speed measured in this run, the second the ratio of the CPU time the \
             two used. When another process keeps one of the two cores busy, \
             memscope-decode's speed ratio falls toward the second.\n"
        );
    }

    fn render_profiles(&self, w: &mut String) {
        let _ = writeln!(w, "## Unit costs on this machine\n");
        let _ = writeln!(
            w,
            "Measured by the harness in its own process (best of 7 batches of 2M), to set \
             the per-event figures above against:\n"
        );
        for (label, ns) in &self.unit_costs {
            let _ = writeln!(w, "- {label}: {ns:.1} ns");
        }
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "How memscope's added CPU per event (the tables above) divides: a clock read per \
             allocation (an unfenced `rdtsc` after the inner call; a free reads none and \
             carries a lower bound, see docs/ARCHITECTURE.md; unit costs above), the \
             thread-local record (`memscope_std::record::event`, \
             `Record::encode_event`: varint deltas into the thread's ring), the frame-pointer \
             walk, which hashes the return addresses as it goes, and the lookup of that key in \
             the thread's stack table (`memscope_std::stacks`, only with stacks), and the writer \
             thread (COBS framing and CRC-16 of the drained rings, `memscope-writer` below). \
             The writer runs on the other core: it adds CPU time, and wall time only when no \
             core is idle. The instruction counts below (callgrind) split the added work \
             into these parts independently of the machine's load; the perf profiles after \
             them show each part's share of the time, and their clock-read line how much of \
             memscope's own time sits on `rdtsc` (one instruction, but about as slow as the \
             rest of the record).\n"
        );
        self.render_callgrind(w);
        if self.profiles.is_empty() {
            return;
        }
        let _ = writeln!(w, "## Where memscope's time goes (perf, 1 thread)\n");
        let _ = writeln!(
            w,
            "`perf record -F 4999` of the memscope workload build with `MEMSCOPE_OUT` set, \
             `perf report --no-children --sort comm,symbol` (symbols over 1 %; `comm` \
             separates the workload thread from memscope's writer thread).\n"
        );
        for (label, p) in &self.profiles {
            let _ = writeln!(w, "### {label}\n");
            match p {
                Ok(text) => {
                    let (listing, notes): (Vec<&str>, Vec<&str>) =
                        text.lines().partition(|l| !l.starts_with("Clock read"));
                    let _ = writeln!(w, "```text\n{}\n```\n", listing.join("\n"));
                    for n in notes {
                        let _ = writeln!(w, "{n}\n");
                    }
                    let _ = writeln!(w, "{}\n", super::profile_summary::summarize(text));
                }
                Err(e) => {
                    let _ = writeln!(w, "Not profiled: {e}\n");
                }
            }
        }
    }
}

impl Doc {
    fn render_callgrind(&self, w: &mut String) {
        let Some(cg) = &self.callgrind else { return };
        let _ = writeln!(w, "## Instructions per heap event (callgrind, 1 thread)\n");
        match cg {
            Ok(report) => {
                let _ = writeln!(
                    w,
                    "`valgrind --tool=callgrind` of each build running the workload on one thread \
                     with its loop counts divided by {} (`workload 1 {}`), split by \
                     `callgrind_annotate --inclusive=no`. Heap events are those memscope's \
                     build counts; every figure is (this configuration - System) / events.\n",
                    super::callgrind::DIVISOR,
                    super::callgrind::DIVISOR
                );
                report.render(w);
            }
            Err(e) => {
                let _ = writeln!(w, "Not measured: {e}\n");
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_x(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}x")).unwrap_or("-".into())
}

fn fmt_s(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3} s")).unwrap_or("-".into())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}
