//! Shared by the decoder's integration tests: build a trace with
//! memscope-core's encoder (through `synth::TraceBuilder`), decode it, get
//! the report.
#![allow(dead_code)]

use memscope_decode::pipeline::{self, Options, Run};
use memscope_decode::report::{self, Report};
use memscope_decode::source::Source;
use memscope_decode::symbolize::Symbolizer;
use memscope_decode::synth::TraceBuilder;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub type Builder = TraceBuilder<Vec<u8>>;

pub fn builder() -> Builder {
    TraceBuilder::new(Vec::new())
}

/// A unique temporary path for this test process.
pub fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: only uniqueness of the counter value matters.
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "memscope-decode-test-{}-{tag}-{n}.bin",
        std::process::id()
    ))
}

/// Writes `bytes` to a temporary file and returns its path.
pub fn write_temp(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_path(tag);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Decodes `bytes` as a file (two passes).
pub fn run_file(bytes: &[u8]) -> Result<Run, memscope_decode::error::Error> {
    let p = write_temp("run", bytes);
    let mut src = Source::open(&p).unwrap();
    let r = pipeline::run(&mut src, &Options::default());
    let _ = std::fs::remove_file(&p);
    r
}

/// Decodes `bytes` as a file, collecting the peak's live set by a second pass.
pub fn run_file_two_pass(bytes: &[u8]) -> Result<Run, memscope_decode::error::Error> {
    let p = write_temp("run2", bytes);
    let mut src = Source::open(&p).unwrap();
    let opts = Options {
        second_pass: true,
        ..Options::default()
    };
    let r = pipeline::run(&mut src, &opts);
    let _ = std::fs::remove_file(&p);
    r
}

/// Decodes `bytes` as a live stream (one pass).
pub fn run_live(bytes: &[u8]) -> Result<Run, memscope_decode::error::Error> {
    let mut src = Source::live("live", Box::new(std::io::Cursor::new(bytes.to_vec())));
    pipeline::run(&mut src, &Options::default())
}

pub fn report_of(run: &Run) -> Report {
    let mut syms: Vec<Symbolizer> = run.sessions.iter().map(|_| Symbolizer::none()).collect();
    report::build(run, &mut syms, &report::Options::default())
}

/// File decode + report, as JSON (the public contract).
pub fn json(bytes: &[u8]) -> serde_json::Value {
    let run = run_file(bytes).expect("decodes");
    serde_json::to_value(report_of(&run)).unwrap()
}

pub const ALIGN: u64 = 8;
