//! The command line: argument definitions and what each command does. A live
//! source (TCP, GDB, probe) is one more subcommand that builds a
//! [`Source`] with [`Source::live`] and hands it to [`report_source`].

use crate::budget::{self, Budget};
use crate::error::{exit, Error};
use crate::pipeline::{self, Run};
use crate::report::{self, Report};
use crate::source::Source;
use crate::symbolize::{self, Symbolizer};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Decode a memscope heap trace: exact peak, leaks by call site, hottest
/// sites, temporaries, heap errors, what was lost.
///
/// Exit codes: 0 decoded; 1 `check` budget exceeded; 2 usage error; 3 input
/// unreadable; 4 not a memscope trace or a newer format; 5 ELF or debug file
/// missing or not matching the trace; 6 output not writable. Damage inside
/// a trace is reported (with byte offsets), not fatal.
#[derive(Parser, Debug)]
#[command(
    name = "memscope-decode",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Subcommand; without one, report on TRACE.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The report's input and options.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Options of the plain report (also used by `check` and `diff`).
#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Trace file (`-` reads stdin).
    pub trace: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Write the full report as JSON to this file (`-` for stdout); schema in docs/REPORT-SCHEMA.md.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// The program's ELF (firmware: required for symbols; host: when the recorded module files moved).
    #[arg(long, value_name = "PATH")]
    pub elf: Option<PathBuf>,
    /// Directory searched for debug files (`.build-id/xx/yyyy.debug`, by file name). Repeatable.
    #[arg(long = "debug-dir", value_name = "DIR")]
    pub debug_dirs: Vec<PathBuf>,
    /// Rows per list in the report.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Lifetime under which a freed block counts as short-lived (e.g. 1ms, 200us).
    #[arg(long, default_value = "1ms", value_parser = budget::parse_duration_ns)]
    pub short_lived: u64,
    /// Never draw a progress bar (files) or the live view of the heap (live sources).
    #[arg(long)]
    pub no_progress: bool,
    /// Dashboard and exports.
    #[command(flatten)]
    pub exports: crate::render::exports::Exports,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fail (exit 1) when the trace exceeds a budget: a CI gate.
    Check(CheckArgs),
    /// Compare two traces by call site: what grew, what shrank.
    Diff(DiffArgs),
    /// Write a synthetic trace (benchmarks and tests).
    #[command(hide = true)]
    Synth(SynthArgs),
    /// Live: RTT read through a GDB server (QEMU `-gdb tcp::PORT -S`, OpenOCD, a J-Link GDB server); needs --elf.
    Gdb(LiveArgs),
    /// Live: the byte stream of an RTT TCP server (OpenOCD `rtt server start PORT 1`, J-Link RTT telnet).
    Tcp(LiveArgs),
    /// Live: RTT through a debug probe (probe-rs), with the firmware's defmt logs on stderr; needs
    /// --chip, --elf and a build with `--features probe-rs`.
    Rtt(RttArgs),
}

/// `rtt`.
#[derive(Args, Debug)]
pub struct RttArgs {
    /// The probe-rs chip name, e.g. nRF52840_xxAA (`probe-rs chip list`).
    #[arg(long)]
    pub chip: String,
    /// Also write the raw stream to this file, for later `memscope-decode FILE`.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `gdb`, `tcp`: a live stream, reported when it ends.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// `host:port` of the GDB server (gdb) or of the RTT TCP server (tcp).
    pub addr: String,
    /// Also write the raw stream to this file, for later `memscope-decode FILE`.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Trace file (`-` reads stdin).
    pub trace: PathBuf,
    /// Most bytes live at once (e.g. 64KiB, 1.5MiB, 4096).
    #[arg(long, value_parser = budget::parse_size)]
    pub max_peak: Option<u64>,
    /// No block may be live at the end.
    #[arg(long)]
    pub no_leaks: bool,
    /// Most bytes live at the end.
    #[arg(long, value_parser = budget::parse_size)]
    pub max_leaked: Option<u64>,
    /// Most alloc calls.
    #[arg(long)]
    pub max_allocations: Option<u64>,
    /// No heap error (double free, layout mismatch, free of an unknown address…).
    #[arg(long)]
    pub no_errors: bool,
    /// No allocation may fail.
    #[arg(long)]
    pub no_failed: bool,
    /// The trace must prove itself complete (nothing lost or damaged).
    #[arg(long)]
    pub require_complete: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline trace.
    pub old: PathBuf,
    /// The trace to compare with it.
    pub new: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// `synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Heap events to write.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Threads (streams).
    #[arg(long, default_value_t = 4)]
    pub threads: u32,
    /// Blocks each thread keeps live at most.
    #[arg(long, default_value_t = 2000)]
    pub working_set: usize,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command line; returns the exit code.
pub fn main_with(cli: Cli) -> i32 {
    let result = match cli.command {
        None => match &cli.report.trace {
            Some(t) => open(t).and_then(|src| report_source(src, &cli.report.common)),
            None => {
                eprintln!("memscope-decode: no trace given\n\nusage: memscope-decode TRACE [--json PATH] [--elf PATH]\n       memscope-decode check TRACE --max-peak 64KiB --no-leaks\n       memscope-decode diff OLD NEW\n\nmore: memscope-decode --help");
                return exit::USAGE;
            }
        },
        Some(Command::Check(a)) => check(a),
        Some(Command::Diff(a)) => diff(a),
        Some(Command::Synth(a)) => synth(a),
        Some(Command::Gdb(a)) => live("gdb", a),
        Some(Command::Tcp(a)) => live("tcp", a),
        Some(Command::Rtt(a)) => live(
            "rtt",
            LiveArgs {
                addr: a.chip,
                save: a.save,
                common: a.common,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memscope-decode: {e}");
            e.exit_code()
        }
    }
}

fn open(path: &Path) -> Result<Source, Error> {
    Source::open(path).map_err(|cause| Error::Unreadable {
        input: path.display().to_string(),
        offset: None,
        cause,
    })
}

/// Decodes and analyses `src`, symbolizes, builds the report.
pub fn analyse(mut src: Source, c: &Common) -> Result<(Run, Report, Vec<Symbolizer>), Error> {
    let sym_opts = symbolize::Options {
        elf: c.elf.clone(),
        debug_dirs: c.debug_dirs.clone(),
    };
    // The last session's symbols load while the input is decoded and
    // analysed, and again only if its modules changed (see
    // `pipeline::run_with`).
    let early = std::sync::Mutex::new(None);
    let load = |s: &crate::records::Session| {
        let sym = Symbolizer::new(s, &sym_opts);
        *early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sym);
    };
    // Then, while the analysis finishes, the stacks' addresses are resolved
    // ahead of the report (which looks up only those it shows).
    let warm = |s: &crate::records::Session, done: &std::sync::atomic::AtomicBool| {
        let mut early = early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(Ok(sym)) = early.as_mut() {
            sym.warm(&s.stacks, done);
        }
    };
    let run = pipeline::run_with(
        &mut src,
        &pipeline::Options {
            short_lived_ns: c.short_lived,
            progress: !c.no_progress,
            second_pass: false,
        },
        Some(pipeline::Prepare {
            load: &load,
            warm: &warm,
        }),
    )?;
    let mut early = early
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut syms = Vec::new();
    let last = run.sessions.len().saturating_sub(1);
    for (i, s) in run.sessions.iter().enumerate() {
        // In session order, so that the first session whose symbols fail is
        // the one reported, as before.
        let sym = match early.take() {
            Some(sym) if i == last => sym,
            taken => {
                early = taken;
                Symbolizer::new(&s.session, &sym_opts)
            }
        };
        let mut sym = sym?;
        // Every stack known: what the report shows no longer depends on
        // how far the warming got.
        sym.want_stacks(&s.session.stacks);
        syms.push(sym);
    }
    let rep = report::build(
        &run,
        &mut syms,
        &report::Options {
            top: c.top,
            ..report::Options::default()
        },
    );
    Ok((run, rep, syms))
}

fn write_json(rep: &Report, path: &Path) -> Result<(), Error> {
    let err = |cause| Error::Output {
        path: path.display().to_string(),
        cause,
    };
    if path.as_os_str() == "-" {
        crate::render::json::write(rep, std::io::stdout().lock()).map_err(err)
    } else {
        let f = std::fs::File::create(path).map_err(err)?;
        crate::render::json::write(rep, f).map_err(err)
    }
}

/// The plain report on any source: terminal output (unless the JSON goes to
/// stdout) and the JSON file.
pub fn report_source(src: Source, c: &Common) -> Result<i32, Error> {
    let (run, rep, mut syms) = analyse(src, c)?;
    check_session_arg(&run, c.exports.session)?;
    crate::render::exports::write_all(&run, &rep, &mut syms, &c.exports)?;
    let json_to_stdout = c.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !json_to_stdout {
        say(&crate::render::terminal::render(&rep));
    }
    if let Some(p) = &c.json {
        write_json(&rep, p)?;
    }
    Ok(exit::OK)
}

/// `--session N` must name a session of the input (1 = the first): how
/// many there are is known only once it is read, so this is checked then,
/// and a wrong number is a usage error (exit 2), not an output failure.
fn check_session_arg(run: &Run, session: Option<u64>) -> Result<(), Error> {
    let n = run.sessions.len() as u64;
    match session {
        Some(k) if k == 0 || k > n => Err(Error::Usage {
            input: run.input.clone(),
            reason: format!(
                "--session {k}: the input holds {n} session{} (choose 1 to {n})",
                if n == 1 { "" } else { "s" }
            ),
        }),
        _ => Ok(()),
    }
}

/// Writes text for the terminal on stdout. Names in it come from the trace
/// and the symbol tables it points at, so control and bidi characters are
/// shown escaped (see [`crate::render::terminal::inert`]). A reader that went
/// away (`memscope-decode trace.bin | head`) ends the output quietly instead
/// of a panic; other write errors are ignored likewise: the exit code says
/// what the analysis found, and the JSON file, if any, is written separately.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(crate::render::terminal::inert(text).as_bytes())
        .and_then(|()| out.flush());
}

fn check(a: CheckArgs) -> Result<i32, Error> {
    let (run, rep, mut syms) = analyse(open(&a.trace)?, &a.common)?;
    check_session_arg(&run, a.common.exports.session)?;
    crate::render::exports::write_all(&run, &rep, &mut syms, &a.common.exports)?;
    if let Some(p) = &a.common.json {
        write_json(&rep, p)?;
    }
    let b = Budget {
        max_peak: a.max_peak,
        no_leaks: a.no_leaks,
        max_leaked: a.max_leaked,
        max_allocations: a.max_allocations,
        no_errors: a.no_errors,
        require_complete: a.require_complete,
        no_failed: a.no_failed,
    };
    let failures = budget::check(&rep, &b);
    let name = a.trace.display();
    if failures.is_empty() {
        say(&format!(
            "{name}: ok — peak {}, {} leaked, {} allocations{}\n",
            crate::render::bytes(rep.summary.peak_bytes),
            crate::render::bytes(rep.summary.leaked_bytes),
            rep.summary.allocations,
            if rep.summary.complete {
                ""
            } else {
                " (trace incomplete: see the report)"
            }
        ));
        Ok(exit::OK)
    } else {
        for f in &failures {
            say(&format!("{name}: FAILED: {f}\n"));
        }
        Ok(exit::CHECK_FAILED)
    }
}

fn diff(a: DiffArgs) -> Result<i32, Error> {
    let (old_run, _, mut old_syms) = analyse(open(&a.old)?, &a.common)?;
    let (new_run, _, mut new_syms) = analyse(open(&a.new)?, &a.common)?;
    let last = |r: &Run| r.sessions.len() - 1;
    let (oi, ni) = (last(&old_run), last(&new_run));
    let o = crate::diff::site_totals(&old_run.sessions[oi], &mut old_syms[oi]);
    let n = crate::diff::site_totals(&new_run.sessions[ni], &mut new_syms[ni]);
    let d = crate::diff::diff(
        &o,
        &n,
        old_run.sessions[oi].analyses.peak.peak_bytes,
        new_run.sessions[ni].analyses.peak.peak_bytes,
        a.common.top,
    );
    say(&crate::diff::render(
        &d,
        &a.old.display().to_string(),
        &a.new.display().to_string(),
    ));
    if let Some(p) = &a.common.json {
        let err = |cause| Error::Output {
            path: p.display().to_string(),
            cause,
        };
        let f = std::fs::File::create(p).map_err(err)?;
        serde_json::to_writer_pretty(f, &d).map_err(|e| err(std::io::Error::other(e)))?;
    }
    Ok(exit::OK)
}

fn synth(a: SynthArgs) -> Result<i32, Error> {
    let err = |cause| Error::Output {
        path: a.out.display().to_string(),
        cause,
    };
    let f = std::fs::File::create(&a.out).map_err(err)?;
    let w = std::io::BufWriter::with_capacity(1 << 20, f);
    let s = crate::synth::workload(w, a.events, a.threads, a.working_set).map_err(err)?;
    eprintln!(
        "{}: {} events, {} bytes ({:.2} bytes/event)",
        a.out.display(),
        s.events,
        s.bytes,
        s.bytes as f64 / s.events.max(1) as f64
    );
    Ok(exit::OK)
}

/// Opens a live source (`gdb`, `tcp`, `rtt`), tees it to `--save`, reports
/// when the stream ends.
fn live(kind: &str, a: LiveArgs) -> Result<i32, Error> {
    use std::io::Read;
    let name = format!("{kind}:{}", a.addr);
    let unreadable = |cause| Error::Unreadable {
        input: name.clone(),
        offset: None,
        cause,
    };
    let need_elf = || {
        a.common.elf.clone().ok_or_else(|| {
            unreadable(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--elf FIRMWARE.elf is required to find the RTT control block",
            ))
        })
    };
    let reader: Box<dyn Read + Send> = match kind {
        "gdb" => {
            let config = crate::source::gdb::GdbRttConfig::from_elf(&need_elf()?).map_err(unreadable)?;
            Box::new(crate::source::gdb::GdbRtt::connect(&a.addr, config).map_err(unreadable)?)
        }
        "tcp" => Box::new(crate::source::tcp::TcpRtt::connect(&a.addr).map_err(unreadable)?),
        #[cfg(feature = "probe-rs")]
        "rtt" => Box::new(
            crate::source::probe::ProbeRtt::attach(&a.addr, &need_elf()?, Box::new(|line| eprintln!("{line}")))
                .map_err(unreadable)?,
        ),
        _ => {
            return Err(unreadable(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this memscope-decode was built without probe-rs: cargo install memscope-decode --features probe-rs",
            )))
        }
    };
    let reader: Box<dyn Read + Send> = match &a.save {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|cause| Error::Output {
                path: path.display().to_string(),
                cause,
            })?;
            Box::new(SaveCopy {
                inner: reader,
                file,
            })
        }
        None => reader,
    };
    report_source(Source::live(name, reader), &a.common)
}

/// Passes bytes through and writes a copy of each to a file (`--save`).
struct SaveCopy {
    inner: Box<dyn std::io::Read + Send>,
    file: std::fs::File,
}

impl std::io::Read for SaveCopy {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let n = self.inner.read(buf)?;
        self.file.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `--session N` past the sessions the input holds is a usage error
    /// (exit 2) naming the count; a session that exists decodes (exit 0).
    /// (0 is refused by the argument parser, also with exit 2.)
    #[test]
    fn a_session_number_past_the_input_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("memscope-cli-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("one-session.bin");
        let f = std::fs::File::create(&trace).unwrap();
        crate::synth::workload(std::io::BufWriter::new(f), 2000, 2, 50).unwrap();
        let run = |session: &str| {
            main_with(Cli::parse_from([
                "memscope-decode".to_owned(),
                trace.display().to_string(),
                "--no-progress".to_owned(),
                "--json".to_owned(),
                dir.join("r.json").display().to_string(),
                "--session".to_owned(),
                session.to_owned(),
            ]))
        };
        assert_eq!(run("2"), exit::USAGE);
        assert_eq!(run("1"), exit::OK);
        let src = Source::open(&trace).unwrap();
        let (r, _, _) = analyse(src, &Common::default()).unwrap();
        let e = check_session_arg(&r, Some(2)).unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE);
        assert!(
            e.to_string().contains("holds 1 session (choose 1 to 1)"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
