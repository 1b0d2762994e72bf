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
//! memscope-core's encoder, for tests and benchmarks.
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
pub mod merge;
pub mod pipeline;
pub mod records;
pub mod render;
pub mod report;
pub mod source;
pub mod state;
pub mod symbolize;
pub mod synth;
