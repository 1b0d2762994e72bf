//! The export options (`--html`, `--dhat`, `--pprof`, `--folded`,
//! `--flamegraph`, `--chrome-trace`) and the writing of each file.
//!
//! A trace of a target that was reset holds several sessions (each one
//! starts with a header). Every export describes one session: the last by
//! default, like the top of the terminal and JSON reports, or the one
//! `--session N` names. When there are several and none was named, a
//! warning on stderr names the others, so that nobody mistakes the last
//! session's numbers for the whole trace's.

use crate::error::Error;
use crate::pipeline::Run;
use crate::render::profile::{self, Profile, Weight};
use crate::report::Report;
use crate::symbolize::Symbolizer;
use clap::Args;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Files to write besides the report.
#[derive(Args, Debug, Clone, Default)]
pub struct Exports {
    /// Write a self-contained HTML dashboard (open it in any browser, offline).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write Valgrind DHAT JSON (open with DHAT's dh_view.html).
    #[arg(long, value_name = "PATH")]
    pub dhat: Option<PathBuf>,
    /// Write a gzipped pprof profile (go tool pprof, speedscope).
    #[arg(long, value_name = "PATH")]
    pub pprof: Option<PathBuf>,
    /// Write folded stacks (inferno-flamegraph, flamegraph.pl, speedscope).
    #[arg(long, value_name = "PATH")]
    pub folded: Option<PathBuf>,
    /// Write a flamegraph SVG (drawn with inferno).
    #[arg(long, value_name = "PATH")]
    pub flamegraph: Option<PathBuf>,
    /// What --folded and --flamegraph weigh stacks by.
    #[arg(long, value_enum, default_value_t = Weight::Allocated)]
    pub weight: Weight,
    /// Write Chrome trace-event JSON with heap counters (Perfetto, chrome://tracing).
    #[arg(long, value_name = "PATH")]
    pub chrome_trace: Option<PathBuf>,
    /// Which session the exports above describe when the target was reset
    /// during the trace (1 = the first; default: the last). The terminal and
    /// JSON reports always show every session.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub session: Option<u64>,
}

impl Exports {
    /// The first export path asked for (errors about the exports name it).
    fn first_path(&self) -> Option<&Path> {
        [
            &self.html,
            &self.dhat,
            &self.pprof,
            &self.folded,
            &self.flamegraph,
            &self.chrome_trace,
        ]
        .into_iter()
        .find_map(|p| p.as_deref())
    }

    fn any(&self) -> bool {
        self.html.is_some()
            || self.dhat.is_some()
            || self.pprof.is_some()
            || self.folded.is_some()
            || self.flamegraph.is_some()
            || self.chrome_trace.is_some()
    }
}

fn create(path: &Path) -> Result<BufWriter<std::fs::File>, Error> {
    std::fs::File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|cause| Error::Output {
            path: path.display().to_string(),
            cause,
        })
}

fn written(path: &Path, r: std::io::Result<()>) -> Result<(), Error> {
    r.map_err(|cause| Error::Output {
        path: path.display().to_string(),
        cause,
    })
}

/// The warning printed when exports describe one of several sessions
/// without `--session`; `None` when the input holds one session.
pub fn session_warning(report: &Report) -> Option<String> {
    if report.sessions < 2 {
        return None;
    }
    let others: Vec<String> = report
        .previous_sessions
        .iter()
        .map(|r| format!("{} (from byte {})", r.session, r.session_offset))
        .collect();
    Some(format!(
        "{}: holds {} sessions (the target was reset); the exports describe the last, \
         session {} (from byte {}), and leave out session{} {}: --session N exports another",
        report.input.name,
        report.sessions,
        report.session,
        report.session_offset,
        if others.len() == 1 { "" } else { "s" },
        others.join(", ")
    ))
}

/// Writes every export asked for. `report` is the report of `run`'s last
/// session (earlier ones in its `previous_sessions`).
pub fn write_all(
    run: &Run,
    report: &Report,
    syms: &mut [Symbolizer],
    x: &Exports,
) -> Result<(), Error> {
    if !x.any() || run.sessions.is_empty() {
        return Ok(());
    }
    let n = run.sessions.len();
    let index = match x.session {
        None => {
            if let Some(w) = session_warning(report) {
                eprintln!("memscope-decode: warning: {w}");
            }
            n - 1
        }
        Some(k) if (1..=n as u64).contains(&k) => k as usize - 1,
        Some(k) => {
            let path = x.first_path().unwrap_or(Path::new("-"));
            return Err(Error::Output {
                path: path.display().to_string(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "--session {k}: {} holds {n} session{} (choose 1 to {n})",
                        report.input.name,
                        if n == 1 { "" } else { "s" }
                    ),
                ),
            });
        }
    };
    let report = if index + 1 == n {
        Some(report)
    } else {
        report.previous_sessions.get(index)
    };
    // The report, the run and the symbolizers come from one analysis and
    // hold the same sessions; should they ever disagree, say so rather than
    // panic or describe another session.
    let (Some(report), Some(s), Some(sym)) = (report, run.sessions.get(index), syms.get_mut(index))
    else {
        let path = x.first_path().unwrap_or(Path::new("-"));
        return Err(Error::Output {
            path: path.display().to_string(),
            cause: std::io::Error::other(format!(
                "session {} of {n}: the report, the decoded sessions and the symbol tables disagree (a memscope-decode bug)",
                index + 1
            )),
        });
    };
    let p: Profile = profile::build(s, sym);
    let program = report
        .header
        .as_ref()
        .map(|h| h.program.clone())
        .unwrap_or_default();
    if let Some(path) = &x.html {
        written(path, crate::render::html::write(report, &p, create(path)?))?;
    }
    if let Some(path) = &x.dhat {
        written(
            path,
            crate::render::dhat::write(
                &p,
                &program,
                crate::render::dhat::process_id(report),
                create(path)?,
            ),
        )?;
    }
    if let Some(path) = &x.pprof {
        written(path, crate::render::pprof::write(&p, create(path)?))?;
    }
    if let Some(path) = &x.folded {
        written(
            path,
            crate::render::folded::write(&p, x.weight, create(path)?),
        )?;
    }
    if let Some(path) = &x.flamegraph {
        written(
            path,
            crate::render::folded::write_svg(&p, x.weight, &program, create(path)?),
        )?;
    }
    if let Some(path) = &x.chrome_trace {
        written(path, crate::render::chrome::write(report, create(path)?))?;
    }
    Ok(())
}
