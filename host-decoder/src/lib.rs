//! memscope-decode: reads a memscope trace and answers what a developer asks
//! of a heap: how much at most (the exact peak, and who held it), what leaked
//! and from where, which call sites allocate most, what was only needed for a
//! moment, what is wrong (double frees, layout mismatches), and what was lost.
//!
//! The pipeline's stages are its modules, in order:
//!
//! [`source`] (bytes: file, stdin, live) → [`frames`] (COBS frames, damage by
//! offset) → [`records`] (heap events, per-stream deltas and stacks) →
//! [`merge`] (per-thread streams in timestamp order) → [`state`] (live blocks)
//! → [`analysis`] (one streaming pass) → [`symbolize`] + [`inference`] →
//! [`report`] (the serde model, `docs/REPORT-SCHEMA.md`) → [`render`]
//! (terminal, JSON). [`pipeline`] runs them; [`budget`] (`check`) and
//! [`diff`] work on finished reports. [`synth`] writes synthetic traces with
//! memscope-core's encoder, for tests and benchmarks. While a live source
//! streams, [`live_view`] keeps one line on a terminal's stderr up to date.
//!
//! On the command line (`memscope-decode --help` for everything):
//!
//! ```text
//! memscope-decode trace.bin                      # one screen: peak, leaks, hot sites, errors
//! memscope-decode trace.bin --json report.json   # the full report (docs/REPORT-SCHEMA.md)
//! memscope-decode fw.bin --elf target/thumbv7em-none-eabihf/release/app
//! memscope-decode check trace.bin --max-peak 64KiB --no-leaks   # CI gate: exit 1 when exceeded
//! memscope-decode diff before.bin after.bin      # what grew, what shrank, by call site
//! ```
//!
//! Exit codes are listed in [`error`]. Memory use grows with the blocks live
//! at once and the distinct call stacks, not with the length of the trace: the
//! input is streamed (a file is read a second time, up to the peak, only when
//! the peak's live set was too costly to copy on the way), and the merge of
//! per-thread streams holds a bounded window of events.
//!
//! As a library:
//!
//! ```no_run
//! use memscope_decode::{pipeline, source::Source};
//! let mut src = Source::open("trace.bin".as_ref()).unwrap();
//! let run = pipeline::run(&mut src, &pipeline::Options::default()).unwrap();
//! println!("peak: {} bytes", run.sessions.last().unwrap().analyses.peak.peak_bytes);
//! ```

pub mod analysis;
pub mod budget;
pub mod cli;
pub mod diff;
pub mod error;
pub mod frames;
pub mod inference;
pub mod live_table;
pub mod live_view;
pub mod merge;
pub mod pipeline;
pub mod records;
pub mod render;
pub mod report;
pub mod source;
pub mod state;
pub mod symbolize;
pub mod synth;
