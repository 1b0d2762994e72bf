//! Times each pipeline stage on a trace file (CPU-bound stages, one pass):
//! `cargo run --release -p memscope-decode --example stages -- trace.bin`.
//! Used to see where decode time goes; prints events/s per cumulative stage.

use memscope_decode::analysis::Analyses;
use memscope_decode::frames::{read_frames, Flow, Piece};
use memscope_decode::merge::Merger;
use memscope_decode::records::{Decoder, Event};
use memscope_decode::state::State;
use std::time::Instant;

/// CPU time of this process so far (Linux: /proc/self/schedstat), which a
/// loaded machine inflates less than wall time; wall time elsewhere.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn main() {
    let path = std::env::args().nth(1).expect("trace path");
    let data = std::fs::read(&path).expect("readable trace");
    for stage in 0..4 {
        let t = Instant::now();
        let c = cpu_seconds();
        let mut dec = Decoder::new();
        let mut merger = Merger::new();
        let mut state = State::new();
        let mut an = Analyses::new(false);
        let mut buf: Vec<Event> = Vec::new();
        let mut n = 0u64;
        let mut frames = 0u64;
        read_frames(
            &data[..],
            |_| {},
            |p| {
                if let Piece::Frame(stream, recs, off) = p {
                    frames += 1;
                    if stage >= 1 {
                        buf.clear();
                        dec.decode_frame(stream, recs, off, 0, &mut |e| buf.push(e));
                        n += buf.len() as u64;
                        if stage >= 2 {
                            for e in buf.drain(..) {
                                merger.push(e);
                            }
                            merger.drain(|e| {
                                if stage >= 3 {
                                    an.apply(&mut state, e);
                                }
                            });
                        }
                    }
                }
                Flow::Continue
            },
        )
        .unwrap();
        merger.flush(|e| {
            if stage >= 3 {
                an.apply(&mut state, e);
            }
        });
        let s = t.elapsed().as_secs_f64();
        let cpu = match (c, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => s,
        };
        let name = ["deframe", "+records", "+merge", "+state+analyses"][stage];
        println!(
            "{name:>16}: {s:.3} s wall, {cpu:.3} s cpu, {frames} frames, {n} events, {:.1} M events/s (cpu)",
            n.max(1) as f64 / cpu / 1e6
        );
    }
}
