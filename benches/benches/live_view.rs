//! memscope-decode: what keeping the live view up to date costs.
//!
//! `cargo bench -p memscope-benches --bench live_view`
//!
//! While a live source streams, the decoder applies every heap event to its
//! state (live table, totals, peak, sites, timelines: `Analyses::apply`) and,
//! at most every `live_view::REFRESH`, redraws one line on the terminal.
//!
//! - `live_view/apply/live`: applying one event the way a live source does
//!   (`Analyses::new(true)`: the live set is copied at every new peak, since
//!   the input cannot be read a second time). Throughput in events per
//!   CPU-second; the time is per run of [`EVENTS`] events.
//! - `live_view/apply/file`: the same events as a file is read (peak copies
//!   within a budget, a second pass otherwise), for comparison.
//! - `live_view/refresh`: one redraw: gathering the figures, formatting the
//!   line and writing it (to `io::sink`, so the terminal's own cost is not in
//!   it).
//! - `live_view/due_check`: what every decoded frame pays while no redraw is
//!   due: reading the clock and comparing.
//!
//! The events are memscope-decode's synthetic churn (`synth::workload`, one
//! thread, 2000 blocks live), decoded once before measuring. Times are the
//! benchmark thread's CPU time (see `shared/thread_cpu.rs`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use memscope_decode::analysis::Analyses;
use memscope_decode::frames::{read_frames, Flow, Piece};
use memscope_decode::live_view::{Figures, LiveView, REFRESH};
use memscope_decode::pipeline::Options;
use memscope_decode::records::{Decoder, Event};
use memscope_decode::state::State;
use std::time::{Duration, Instant};

#[path = "shared/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

/// Heap events applied per benchmark iteration.
const EVENTS: u64 = 100_000;

/// The synthetic churn's events, decoded, and its clock rate.
fn events() -> (Vec<Event>, u64) {
    let mut bytes = Vec::new();
    memscope_decode::synth::workload(&mut bytes, EVENTS, 1, 2000).expect("written to memory");
    let mut dec = Decoder::new();
    let mut events = Vec::new();
    read_frames(
        &bytes[..],
        |_| {},
        |p| {
            if let Piece::Frame(stream, recs, off) = p {
                dec.decode_frame(stream, recs, off, 0, &mut |e| events.push(e));
            }
            Flow::Continue
        },
    )
    .expect("reading from memory does not fail");
    let tps = dec
        .session
        .header
        .as_ref()
        .map(|h| h.ticks_per_second)
        .unwrap_or(0);
    (events, tps)
}

/// Applies every event to fresh state, as one session of the decoder does.
fn apply_all(events: &[Event], tps: u64, live: bool) -> (Analyses, State) {
    let mut analyses = Analyses::new(live);
    analyses.set_clock(tps, Options::default().short_lived_ns);
    let mut state = State::new();
    for ev in events {
        analyses.apply(&mut state, ev);
    }
    (analyses, state)
}

/// The figures the line shows, gathered as the pipeline does.
fn figures(a: &Analyses) -> Figures {
    Figures {
        current_bytes: a.peak.current_bytes,
        current_blocks: a.peak.current_blocks,
        peak_bytes: a.peak.peak_bytes,
        allocations: a.totals.allocations + a.totals.reallocations,
        lost: 0,
        session: 1,
    }
}

fn live_view(c: &mut Criterion<ThreadCpu>) {
    let (events, tps) = events();
    assert!(
        events.len() as u64 >= EVENTS,
        "the synthetic trace has the events asked for"
    );
    let mut g = c.benchmark_group("live_view");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(20);
    for (label, live) in [("apply/live", true), ("apply/file", false)] {
        g.bench_function(label, |b| {
            b.iter(|| apply_all(black_box(&events), tps, live))
        });
    }

    let (analyses, _) = apply_all(&events, tps, true);
    assert!(analyses.peak.peak_bytes > 0, "the churn reached a peak");
    g.throughput(Throughput::Elements(1));
    g.sample_size(100);
    g.bench_function("refresh", |b| {
        let mut view = LiveView::new(std::io::sink(), true);
        let mut now = Instant::now();
        b.iter(|| {
            // A redraw is due every time: the clock moves on by the interval.
            now += REFRESH;
            view.update(now, &figures(black_box(&analyses)));
        })
    });
    g.bench_function("due_check", |b| {
        let mut view = LiveView::new(std::io::sink(), true);
        // Drawn once, far in the future: never due again while measuring.
        view.update(
            Instant::now() + Duration::from_secs(3600),
            &figures(&analyses),
        );
        b.iter(|| black_box(view.due(Instant::now())))
    });
    g.finish();
}

fn config() -> Criterion<ThreadCpu> {
    Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = live_view
}
criterion_main!(benches);
