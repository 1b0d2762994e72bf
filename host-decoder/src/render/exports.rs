//! The export options (`--html`, `--dhat`, `--pprof`, `--folded`,
//! `--flamegraph`, `--chrome-trace`) and the writing of each file. All
//! exports describe the last session of the input, like the terminal report.

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
}

impl Exports {
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

/// Writes every export asked for. `report` is the report of `run`'s last session.
pub fn write_all(
    run: &Run,
    report: &Report,
    syms: &mut [Symbolizer],
    x: &Exports,
) -> Result<(), Error> {
    if !x.any() {
        return Ok(());
    }
    let (Some(s), Some(sym)) = (run.sessions.last(), syms.last_mut()) else {
        return Ok(());
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
            crate::render::dhat::write(&p, &program, create(path)?),
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
