//! memscope-decode's throughput in heap events per second (criterion; an
//! element is one `records::Event` the decoder emits, which for the churn
//! trace is about 3 % more than allocs + frees + reallocs):
//!
//! - `decode/records`: frames + records only (COBS, CRC, varint deltas,
//!   stacks) from bytes in memory: the decoder proper;
//! - `decode/full`: the whole report pipeline (`pipeline::run`: merge of
//!   per-thread streams, live table, every analysis) on a file, as
//!   `memscope-decode trace.bin` runs it minus the terminal output;
//!
//! each on a synthetic trace (memscope-decode's `synth` workload: 2M events,
//! 2 threads) and on a real one: the trace in `MEMSCOPE_BENCH_TRACE`, or else
//! the one the comparison harness keeps
//! (`$CARGO_TARGET_DIR/compare/traces/memscope-stream---stacks-1t`, the churn
//! workload with call stacks). Without either the real-trace benches are
//! skipped with a message saying how to make one.
//!
//! `cargo bench -p memscope-benches --bench decode`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memscope_decode::frames::{read_frames, Flow, Piece};
use memscope_decode::pipeline;
use memscope_decode::records::Decoder;
use memscope_decode::source::Source;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn synthetic_trace() -> PathBuf {
    let dir = target_dir().join("bench-traces");
    std::fs::create_dir_all(&dir).expect("target directory is writable");
    let path = dir.join("synth-2m-2t.bin");
    let f = std::fs::File::create(&path).expect("trace file is writable");
    let w = std::io::BufWriter::with_capacity(1 << 20, f);
    memscope_decode::synth::workload(w, 2_000_000, 2, 2000).expect("synthetic trace written");
    path
}

fn real_trace() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEMSCOPE_BENCH_TRACE") {
        return Some(PathBuf::from(p));
    }
    let p = target_dir().join("compare/traces/memscope-stream---stacks-1t");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "decode: no real trace (set MEMSCOPE_BENCH_TRACE=trace.bin, or run \
             `cargo run --release -p memscope-benches --bin compare` once); real-trace benches skipped"
        );
        None
    }
}

/// Heap events in `data` (frames + records, no analysis).
fn decode_records(data: &[u8]) -> u64 {
    let mut dec = Decoder::new();
    let mut n = 0u64;
    read_frames(
        data,
        |_| {},
        |p| {
            if let Piece::Frame(stream, recs, off) = p {
                dec.decode_frame(stream, recs, off, 0, &mut |_| n += 1);
            }
            Flow::Continue
        },
    )
    .expect("reading from memory does not fail");
    n
}

fn bench_trace(c: &mut Criterion, label: &str, path: &Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let events = decode_records(&data);
    eprintln!(
        "decode: {label} trace {}: {events} heap events, {} bytes ({:.2} bytes/event)",
        path.display(),
        data.len(),
        data.len() as f64 / events.max(1) as f64
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(events));
    g.sample_size(10);
    g.bench_function(format!("records/{label}"), |b| {
        b.iter(|| decode_records(&data))
    });
    g.bench_function(format!("full/{label}"), |b| {
        b.iter(|| {
            let mut src = Source::open(path).expect("trace opens");
            pipeline::run(&mut src, &pipeline::Options::default()).expect("trace decodes")
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let synth = synthetic_trace();
    bench_trace(c, "synthetic", &synth);
    if let Some(real) = real_trace() {
        bench_trace(c, "churn", &real);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode
}
criterion_main!(benches);
