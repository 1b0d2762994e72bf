//! The side-by-side comparison: memscope against the System allocator and
//! the other heap trackers, on one workload, written to `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p memscope-benches --bin compare            # everything (~10-15 min on 2 cores)
//! cargo run --release -p memscope-benches --bin compare -- --reps 2 --no-firmware --out /tmp/B.md
//! ```
//!
//! It builds `benches/compare/workload` (its own cargo workspace and target
//! directory) once per allocator feature, runs every configuration in rounds
//! (each round runs every tracker once, each right after a System run of its
//! own, so each ratio is taken against a baseline run a moment before), measures each child
//! with `wait4` (wall time, CPU time, peak RSS), decodes the traces with
//! `memscope-decode` and `heaptrack_print` under the same measurement,
//! profiles memscope with `perf`, runs the firmware cost script, and writes
//! the markdown. Nothing in the output is typed in: every figure is read
//! from a run made by this program.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod callgrind;
mod measure;
mod profile_summary;
mod report;
mod unit_costs;

use measure::{run_measured, Outcome};

/// One tracker configuration of the workload.
#[derive(Clone)]
struct Config {
    /// Short name shown in the tables.
    name: &'static str,
    /// The workload build it runs (cargo feature; "" = System).
    feature: &'static str,
    /// Environment for the run; `{trace}` is replaced by the trace path.
    env: &'static [(&'static str, &'static str)],
    /// Writes a memscope trace (`MEMSCOPE_OUT`).
    memscope_trace: bool,
    /// Runs under `heaptrack -o`.
    heaptrack: bool,
    /// Its trace is named `*.zst`: memscope-std's writer compresses it.
    zstd: bool,
}

const CONFIGS: &[Config] = &[
    Config {
        name: "System",
        feature: "",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "memscope stats only",
        feature: "memscope",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "memscope stream, no stacks",
        feature: "memscope",
        env: &[("MEMSCOPE_STACKS", "0")],
        memscope_trace: true,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "memscope stream + stacks",
        feature: "memscope",
        env: &[],
        memscope_trace: true,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "memscope stream + zstd, no stacks",
        feature: "memscope_zstd",
        env: &[("MEMSCOPE_STACKS", "0")],
        memscope_trace: true,
        heaptrack: false,
        zstd: true,
    },
    Config {
        name: "stats_alloc",
        feature: "stats_alloc",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "tracking-allocator",
        feature: "tracking_allocator",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "dhat-rs",
        feature: "dhat",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "memscope-rs 0.2.5",
        feature: "memscope_rs",
        env: &[],
        memscope_trace: false,
        heaptrack: false,
        zstd: false,
    },
    Config {
        name: "heaptrack (System build)",
        feature: "",
        env: &[],
        memscope_trace: false,
        heaptrack: true,
        zstd: false,
    },
];

struct Args {
    reps: usize,
    threads: Vec<usize>,
    out: PathBuf,
    firmware: bool,
    profile: bool,
    callgrind: bool,
    timeout: Duration,
}

fn parse_args(root: &Path) -> Result<Args, String> {
    let mut a = Args {
        reps: 3,
        threads: vec![1, 2],
        out: root.join("BENCHMARKS.md"),
        firmware: true,
        profile: true,
        callgrind: true,
        timeout: Duration::from_secs(90),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--reps" => a.reps = val("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--threads" => {
                a.threads = val("--threads")?
                    .split(',')
                    .map(|t| t.parse().map_err(|e| format!("--threads: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--out" => a.out = PathBuf::from(val("--out")?),
            "--timeout" => {
                a.timeout = Duration::from_secs(
                    val("--timeout")?
                        .parse()
                        .map_err(|e| format!("--timeout: {e}"))?,
                )
            }
            "--no-firmware" => a.firmware = false,
            "--no-profile" => a.profile = false,
            "--no-callgrind" => a.callgrind = false,
            "-h" | "--help" => {
                println!(
                    "compare: memscope vs System and other heap trackers -> BENCHMARKS.md\n\n\
                     options: --reps N (3)  --threads 1,2  --out PATH (repo's BENCHMARKS.md)\n\
                     \x20        --timeout SECS per run (90)  --no-firmware  --no-profile  --no-callgrind"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    if a.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(a)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let args = match parse_args(&root) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&root, &args) {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

/// The main workspace's target directory (where memscope-decode is built).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn run(root: &Path, args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let work = target_dir(root).join("compare");
    let bins = work.join("bin");
    let traces = work.join("traces");
    for d in [&bins, &traces] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut md = report::Doc::new(args, root);

    // Builds (not timed against anything; they only must not fail silently).
    let decoder = build_decoder(root)?;
    let mut built: Vec<(&'static str, Result<PathBuf, String>)> = Vec::new();
    for feature in [
        "",
        "memscope",
        "memscope_zstd",
        "stats_alloc",
        "tracking_allocator",
        "dhat",
        "memscope_rs",
    ] {
        eprintln!(
            "compare: building workload [{}]",
            if feature.is_empty() {
                "System"
            } else {
                feature
            }
        );
        built.push((feature, build_workload(root, &work, &bins, feature)));
    }
    let binary = |feature: &str| {
        built
            .iter()
            .find(|b| b.0 == feature)
            .map(|b| b.1.clone())
            .expect("built above")
    };
    let heaptrack = which("heaptrack");
    let heaptrack_print = which("heaptrack_print");

    let configs: Vec<&Config> = CONFIGS
        .iter()
        .filter(|c| !c.heaptrack || heaptrack.is_some())
        .collect();
    let trace_path = |c: &Config, threads: usize| {
        let ext = if c.zstd { ".zst" } else { "" };
        traces.join(format!("{}-{threads}t{ext}", slug(c.name)))
    };
    // One run of `c` on `threads` threads (its trace, if any, replaced).
    let run_config = |c: &Config, threads: usize| {
        let bin = binary(c.feature).expect("skip set when the build failed");
        let trace = trace_path(c, threads);
        let _ = std::fs::remove_file(&trace);
        let mut cmd;
        if c.heaptrack {
            cmd = Command::new(heaptrack.as_ref().expect("filtered"));
            cmd.arg("-o").arg(&trace).arg(&bin);
        } else {
            cmd = Command::new(&bin);
        }
        cmd.arg(threads.to_string())
            .current_dir(&work)
            .stdout(Stdio::null());
        cmd.env_remove("MEMSCOPE_OUT").env_remove("MEMSCOPE_STACKS");
        for (k, v) in c.env {
            cmd.env(k, v);
        }
        if c.memscope_trace {
            cmd.env("MEMSCOPE_OUT", &trace);
        }
        run_measured(&mut cmd, args.timeout)
    };
    let failure = |o: Outcome, threads: usize| match o {
        Outcome::Done(m) => format!(
            "exited with status {} (stderr: {})",
            m.status,
            m.stderr_tail.trim()
        ),
        Outcome::TimedOut(t) => format!(
            "did not finish within {:.0} s on {threads} thread(s); killed",
            t.as_secs_f64()
        ),
        Outcome::SpawnFailed(e) => format!("could not start: {e}"),
    };
    let load_start = report::loadavg();
    md.load_start = load_start.clone();

    for &threads in &args.threads {
        let mut results: Vec<report::ConfigRuns> = configs
            .iter()
            .map(|c| report::ConfigRuns::new(c.name, binary(c.feature).err()))
            .collect();
        for rep in 0..args.reps {
            for (i, c) in configs.iter().enumerate() {
                if results[i].skip.is_some() {
                    continue;
                }
                // Every tracker run is paired with a System run just before
                // it: its ratio compares two neighbouring runs, so a slow
                // moment of the machine moves both (one System run per round
                // made a single noisy baseline decide every ratio of it).
                let baseline = if i == 0 {
                    None
                } else if results[0].skip.is_some() {
                    continue;
                } else {
                    eprintln!(
                        "compare: {threads}t rep {}/{} System (before {})",
                        rep + 1,
                        args.reps,
                        c.name
                    );
                    match run_config(configs[0], threads) {
                        Outcome::Done(m) if m.success => Some(m),
                        other => {
                            results[0].skip = Some(failure(other, threads));
                            continue;
                        }
                    }
                };
                eprintln!(
                    "compare: {threads}t rep {}/{} {}",
                    rep + 1,
                    args.reps,
                    c.name
                );
                match run_config(c, threads) {
                    Outcome::Done(m) if m.success => {
                        results[i].runs.push(m);
                        if let Some(b) = baseline {
                            results[i].baseline.push(b.clone());
                            results[0].runs.push(b);
                        }
                    }
                    other => results[i].skip = Some(failure(other, threads)),
                }
                // Keep the last round's trace (decoded below); earlier ones
                // are overwritten by the next round.
                let trace = trace_path(c, threads);
                if c.heaptrack {
                    results[i].trace = find_heaptrack_file(&trace);
                } else if c.memscope_trace {
                    results[i].trace = Some(trace.clone()).filter(|t| t.exists());
                }
            }
        }
        // Decode the traces kept from the last round: every decoder once per
        // round, DECODE_ROUNDS rounds, so that each tool's runs are spread
        // over the same stretch of time (a single run of a 0.5 s process
        // moves by a fifth on this kind of machine).
        let mut jobs: Vec<(usize, Vec<std::ffi::OsString>)> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let Some(trace) = results[i].trace.clone() else {
                continue;
            };
            if c.memscope_trace {
                let json = trace.with_extension("json");
                jobs.push((
                    i,
                    vec![
                        decoder.clone().into(),
                        trace.into(),
                        "--json".into(),
                        json.into(),
                    ],
                ));
            } else if c.heaptrack {
                let tool = heaptrack_print
                    .as_ref()
                    .ok_or("heaptrack_print not found")?;
                jobs.push((i, vec![tool.clone().into(), trace.into()]));
            }
        }
        let mut decodes: Vec<Vec<Outcome>> = jobs.iter().map(|_| Vec::new()).collect();
        for _ in 0..DECODE_ROUNDS {
            for (j, (_, argv)) in jobs.iter().enumerate() {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]).stdout(Stdio::null());
                decodes[j].push(run_measured(&mut cmd, Duration::from_secs(600)));
            }
        }
        for ((i, _), outcomes) in jobs.iter().zip(decodes) {
            let (i, c) = (*i, &configs[*i]);
            let Some(trace) = results[i].trace.clone() else {
                continue;
            };
            let written = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
            let runs = report::DecodeRuns::from(outcomes);
            if c.memscope_trace {
                let events = read_event_count(&trace.with_extension("json"));
                results[i].decode = Some(report::Decoded {
                    tool: "memscope-decode",
                    runs,
                    written,
                    raw: if c.zstd {
                        uncompressed_len(&trace)
                    } else {
                        Some(written)
                    },
                    events: events.map(|e| (e.0 + e.1, false)),
                    lost: events.map(|e| e.1),
                });
            } else {
                // heaptrack counts allocation calls only; the same deterministic
                // workload's total (allocs + frees + reallocs) comes from the
                // memscope trace of the same thread count.
                results[i].decode = Some(report::Decoded {
                    tool: "heaptrack_print",
                    runs,
                    written,
                    raw: uncompressed_len(&trace),
                    events: None,
                    lost: None,
                });
            }
        }
        let memscope_events = results
            .iter()
            .filter_map(|r| r.decode.as_ref())
            .filter_map(|d| d.events.map(|e| e.0))
            .max();
        for r in &mut results {
            if let Some(d) = &mut r.decode {
                if d.events.is_none() {
                    d.events = memscope_events.map(|e| (e, true));
                }
            }
        }
        md.tables.push((threads, results));
    }

    md.large = Some(large_trace(&decoder, &traces));
    md.unit_costs = unit_costs::measure();
    if args.profile {
        let bin = binary("memscope");
        md.profiles = match bin {
            Ok(bin) => profile(&bin, &traces),
            Err(e) => vec![("memscope".into(), Err(e))],
        };
    }
    if args.callgrind {
        md.callgrind = Some(match (which("valgrind"), which("callgrind_annotate")) {
            (Some(v), Some(a)) => callgrind::measure(&v, &a, binary, &traces, root),
            _ => Err("valgrind (with callgrind_annotate) is not installed".into()),
        });
    }
    if args.firmware {
        md.firmware = Some(firmware(root));
        md.flash = Some(flash(root));
    }
    md.load_end = report::loadavg();
    md.duration = started.elapsed();
    let text = md.render();
    std::fs::write(&args.out, text).map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "compare: wrote {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rounds of decoding each kept trace (every decoder once per round).
/// Twenty-one: a decode of a fraction of a second moves by 10-15 % from run
/// to run on this kind of machine, now and then by half (a two-threaded
/// decoder more than a one-threaded one when the host takes a core away),
/// and the median of five still followed such spells; with twelve, two
/// interleaved comparisons half an hour apart put the 2-thread row at 2.07x
/// and then 1.90x heaptrack_print, the second with a decoder that was
/// faster than the first when the two ran interleaved. About a minute of
/// decoding in all.
pub const DECODE_ROUNDS: usize = 21;

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Rustflags of every workload build: frame pointers for memscope's stack
/// walk, applied to all builds alike so the baseline runs the same code.
const WORKLOAD_RUSTFLAGS: &str = "-C force-frame-pointers=yes";

fn build_workload(root: &Path, work: &Path, bins: &Path, feature: &str) -> Result<PathBuf, String> {
    let manifest = root.join("benches/compare/workload/Cargo.toml");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(work)
        .env("RUSTFLAGS", WORKLOAD_RUSTFLAGS)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if !feature.is_empty() {
        cmd.args(["--features", feature]);
    }
    let out = cmd.output().map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first_error: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("error"))
            .take(3)
            .collect();
        return Err(format!("does not build here: {}", first_error.join(" / ")));
    }
    let name = if feature.is_empty() {
        "system"
    } else {
        feature
    };
    let dst = bins.join(format!("workload-{name}"));
    std::fs::copy(work.join("release/workload"), &dst).map_err(|e| format!("copy: {e}"))?;
    Ok(dst)
}

fn build_decoder(root: &Path) -> Result<PathBuf, String> {
    eprintln!("compare: building memscope-decode");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "memscope-decode",
            "--bin",
            "memscope-decode",
        ])
        .current_dir(root)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("memscope-decode does not build".into());
    }
    Ok(target_dir(root).join("release/memscope-decode"))
}

/// heaptrack appends `.zst` or `.gz` to the `-o` name.
fn find_heaptrack_file(base: &Path) -> Option<PathBuf> {
    ["zst", "gz"]
        .iter()
        .map(|ext| PathBuf::from(format!("{}.{ext}", base.display())))
        .find(|p| p.exists())
}

/// Bytes of a heaptrack file once decompressed (zstd or gzip on PATH).
fn uncompressed_len(path: &Path) -> Option<u64> {
    let tool = if path.extension()? == "zst" {
        "zstd"
    } else {
        "gzip"
    };
    let mut child = Command::new(tool)
        .args(["-dc"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = std::io::copy(&mut child.stdout.take()?, &mut std::io::sink()).ok()?;
    child.wait().ok()?.success().then_some(n)
}

/// Writes a synthetic 10^8-event trace, decodes it and says how much memory
/// that took; the trace and its report are removed afterwards (711 MB).
fn large_trace(decoder: &Path, traces: &Path) -> Result<String, String> {
    const EVENTS: u64 = 100_000_000;
    eprintln!("compare: synthetic trace of {EVENTS} events");
    let trace = traces.join("synth-1e8.bin");
    let json = traces.join("synth-1e8.json");
    let written = Command::new(decoder)
        .args(["synth", "--events", &EVENTS.to_string(), "--out"])
        .arg(&trace)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("memscope-decode synth: {e}"))?;
    if !written.success() {
        return Err(format!("memscope-decode synth exited with {written}"));
    }
    let size = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(decoder);
    cmd.arg(&trace)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null());
    let outcome = run_measured(&mut cmd, Duration::from_secs(1800));
    let counted = read_event_count(&json);
    let complete = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.pointer("/summary/complete").and_then(|c| c.as_bool()));
    let _ = std::fs::remove_file(&trace);
    let _ = std::fs::remove_file(&json);
    match outcome {
        Outcome::Done(m) if m.success => Ok(format!(
            "- trace: {:.0} MB, {} events decoded ({} lost), complete: {}\n\
             - memscope-decode: peak RSS {:.1} MiB, wall {:.1} s, CPU {:.1} s",
            size as f64 / 1e6,
            counted.map_or("?".into(), |c| c.0.to_string()),
            counted.map_or("?".into(), |c| c.1.to_string()),
            complete.map_or("?".into(), |c| c.to_string()),
            m.max_rss as f64 / (1024.0 * 1024.0),
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
        )),
        Outcome::Done(m) => Err(format!(
            "memscope-decode exited with {}: {}",
            m.status, m.stderr_tail
        )),
        Outcome::TimedOut(t) => Err(format!(
            "memscope-decode killed after {:.0} s",
            t.as_secs_f64()
        )),
        Outcome::SpawnFailed(e) => Err(format!("memscope-decode: {e}")),
    }
}

/// allocs + frees + reallocs decoded, and events the producer reported
/// lost, from a memscope-decode JSON report.
fn read_event_count(json: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(json).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let s = v.get("summary")?;
    let n = |k: &str| s.get(k).and_then(|x| x.as_u64());
    Some((
        n("allocations")? + n("deallocations")? + n("reallocations")?,
        n("lost_events")?,
    ))
}

/// Profiles of memscope's two stream configurations on one thread
/// (`perf record`, flat by symbol, the writer thread included).
fn profile(bin: &Path, traces: &Path) -> Vec<(String, Result<String, String>)> {
    let Some(perf) = which("perf") else {
        return vec![("perf".into(), Err("perf is not installed".into()))];
    };
    let mut out = Vec::new();
    for (label, stacks) in [
        ("memscope stream, no stacks", "0"),
        ("memscope stream + stacks", "16"),
    ] {
        let data = traces.join(format!("perf-{stacks}.data"));
        let trace = traces.join(format!("perf-{stacks}.bin"));
        let rec = Command::new(&perf)
            .args(["record", "-q", "-F", "4999", "-o"])
            .arg(&data)
            .arg("--")
            .arg(bin)
            .arg("1")
            .env("MEMSCOPE_OUT", &trace)
            .env("MEMSCOPE_STACKS", stacks)
            .stdout(Stdio::null())
            .output();
        let res = match rec {
            Ok(o) if o.status.success() => Command::new(&perf)
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "--sort",
                    "comm,symbol",
                    "--percent-limit",
                    "1",
                    "-i",
                ])
                .arg(&data)
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        let mut s = String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                            .take(25)
                            .fold(String::new(), |mut s, l| {
                                // perf pads with empty "-" columns on the right.
                                let l = l.trim_end().trim_end_matches(['-', ' ']);
                                let _ = writeln!(s, "{l}");
                                s
                            });
                        let clock =
                            profile_summary::clock_share(&s, |sym| annotate(&perf, &data, sym));
                        let _ = writeln!(s, "{clock}");
                        Ok(s)
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).into_owned())
                    }
                }),
            Ok(o) => Err(format!(
                "perf record failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(e.to_string()),
        };
        let _ = std::fs::remove_file(&trace);
        out.push((label.to_string(), res));
    }
    out
}

/// `perf annotate --stdio` of one symbol (empty when perf fails).
fn annotate(perf: &Path, data: &Path, symbol: &str) -> String {
    Command::new(perf)
        .args(["annotate", "--stdio", "-i"])
        .arg(data)
        .args(["-s", symbol])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The firmware engineer's cost script (flash, RAM, instructions/event).
fn firmware(root: &Path) -> Result<String, String> {
    let script = root.join("examples/firmware/measure.py");
    if which("qemu-system-arm").is_none() {
        return Err("qemu-system-arm is not installed: firmware figures not measured".into());
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let have = targets
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for t in ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"] {
        if !have.lines().any(|l| l.trim() == t) {
            return Err(format!(
                "rust target {t} is not installed: firmware figures not measured"
            ));
        }
    }
    eprintln!("compare: running examples/firmware/measure.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).current_dir(root.join("examples/firmware"));
    // The firmware is its own workspace; give it its own target directory
    // (measure.py builds into MEMSCOPE_MEASURE_TARGET_DIR).
    let fw_target = target_dir(root).join("compare/firmware");
    cmd.env("CARGO_TARGET_DIR", &fw_target)
        .env("MEMSCOPE_MEASURE_TARGET_DIR", &fw_target);
    let o = cmd.output().map_err(|e| format!("python3: {e}"))?;
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(format!(
            "measure.py failed ({}):\n{}\n{}",
            o.status,
            s,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// The record path's own flash cost (benches/flash/measure.sh: a tiny image
/// with and without the Stream recorder, and what it adds symbol by symbol).
fn flash(root: &Path) -> Result<String, String> {
    if which("llvm-size").is_none() && which("rust-size").is_none() {
        return Err("llvm-size is not installed (Debian: llvm): flash not measured".into());
    }
    eprintln!("compare: running benches/flash/measure.sh");
    let o = Command::new("bash")
        .arg(root.join("benches/flash/measure.sh"))
        .current_dir(root.join("benches/flash"))
        .env("CARGO_TARGET_DIR", target_dir(root).join("compare/flash"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    let s = String::from_utf8_lossy(&o.stdout).trim_end().to_string();
    if !o.status.success() {
        return Err(format!(
            "measure.sh failed ({}):\n{s}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(s)
}
