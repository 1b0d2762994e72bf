//! memscope-core: what one record costs on the way into the ring.
//!
//! `cargo bench -p memscope-benches --bench core_record`
//!
//! - `encode_push/{alloc,dealloc}`: `StreamEncoder::prepare` + `Ring::push` +
//!   `commit`, the work a per-thread recorder does per event (records batched
//!   into the ring, no framing per record).
//! - `encode_frame_push/{alloc,dealloc}`: the same plus one COBS frame per
//!   record, as the microcontroller `Stream` recorder does.
//! - `tracking_allocator/*`: a whole alloc + dealloc pair through `System`
//!   bare, through `TrackingAllocator` with `StatsOnly`, and with
//!   `Stream<RingSink>` (its critical section is critical-section's `std`
//!   implementation here: a global mutex, not an interrupt mask).
//!
//! The ring is drained (released without copying) whenever it is full; that
//! costs one atomic store per 64 KiB and is included.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not
//! wall time: on a shared machine a descheduled thread would otherwise bill
//! other processes' time to the code under test.

use core::alloc::{GlobalAlloc, Layout};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use memscope_core::frame::{encode_frame, max_frame_len, MAX_HEAD_LEN};
use memscope_core::wire::{Alloc, Dealloc, Record, MAX_EVENT_LEN};
use memscope_core::{
    NoClock, Ring, RingSink, StatsOnly, Stream, StreamEncoder, StreamInfo, TrackingAllocator,
};
use std::alloc::System;

#[path = "shared/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

/// Addresses and sizes as a heap hands them out: 1024 blocks at 16-byte
/// granularity within 4 MiB of a base, sizes 8 B – 4 KiB (xorshift, fixed seed).
fn workload() -> Vec<(u64, u64)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..1024)
        .map(|_| {
            let addr = 0x5555_5560_0000 + (next() % (4 << 20)) / 16 * 16;
            let size = 8u64 << (next() % 10);
            (addr, size + next() % size)
        })
        .collect()
}

fn release_all<const N: usize>(ring: &Ring<N>) {
    // SAFETY: the benchmark thread is the only consumer.
    unsafe { ring.read(|a, b| a.len() + b.len()) };
}

fn alloc_rec(ts: u64, (addr, size): (u64, u64)) -> Record<'static> {
    Record::Alloc(Alloc {
        ts,
        addr: Some(addr),
        size,
        align: 8,
        zeroed: false,
        stack: None,
    })
}

fn dealloc_rec(ts: u64, (addr, size): (u64, u64)) -> Record<'static> {
    Record::Dealloc(Dealloc {
        ts,
        ts_exact: false,
        addr,
        size,
        align: 8,
        stack: None,
    })
}

fn encode_push(c: &mut Criterion<ThreadCpu>) {
    let work = workload();
    let mut g = c.benchmark_group("encode_push");
    for (name, make) in [
        ("alloc", alloc_rec as fn(u64, (u64, u64)) -> Record<'static>),
        ("dealloc", dealloc_rec),
    ] {
        g.bench_function(name, |b| {
            let ring = Ring::<65536>::new();
            let mut enc = StreamEncoder::new();
            let mut buf = [0u8; MAX_EVENT_LEN];
            let mut i = 0usize;
            let mut ts = 0u64;
            b.iter(|| {
                i = (i + 1) & 1023;
                ts += 37;
                let rec = make(ts, work[i]);
                let p = enc.prepare(black_box(&rec), &mut buf).unwrap();
                // SAFETY: the benchmark thread is the only producer.
                if !unsafe { ring.push(&[&buf[..p.len]]) } {
                    release_all(&ring);
                    // SAFETY: as above.
                    assert!(unsafe { ring.push(&[&buf[..p.len]]) });
                }
                enc.commit(p);
            });
        });
    }
    g.finish();
}

fn encode_frame_push(c: &mut Criterion<ThreadCpu>) {
    let work = workload();
    let mut g = c.benchmark_group("encode_frame_push");
    for (name, make) in [
        ("alloc", alloc_rec as fn(u64, (u64, u64)) -> Record<'static>),
        ("dealloc", dealloc_rec),
    ] {
        g.bench_function(name, |b| {
            let ring = Ring::<65536>::new();
            let mut enc = StreamEncoder::new();
            let mut buf = [0u8; MAX_HEAD_LEN + MAX_EVENT_LEN];
            let mut frame = [0u8; max_frame_len(MAX_HEAD_LEN + MAX_EVENT_LEN)];
            let mut i = 0usize;
            let mut ts = 0u64;
            b.iter(|| {
                i = (i + 1) & 1023;
                ts += 37;
                let rec = make(ts, work[i]);
                let p = enc.prepare(black_box(&rec), &mut buf).unwrap();
                let n = encode_frame(0, false, &[&buf[..p.len]], &mut frame).unwrap();
                // SAFETY: the benchmark thread is the only producer.
                if !unsafe { ring.push(&[&frame[..n]]) } {
                    release_all(&ring);
                    // SAFETY: as above.
                    assert!(unsafe { ring.push(&[&frame[..n]]) });
                }
                enc.commit(p);
            });
        });
    }
    g.finish();
}

static STATS: TrackingAllocator<System, StatsOnly> =
    TrackingAllocator::new(System, StatsOnly::new());
static STREAM: TrackingAllocator<System, Stream<RingSink<65536>, NoClock>> = TrackingAllocator::new(
    System,
    Stream::new(RingSink::new(), NoClock, StreamInfo::new("bench")),
);

fn pair<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: non-zero-sized layout; the block is freed once with it.
    unsafe {
        let p = a.alloc(black_box(layout));
        a.dealloc(black_box(p), layout);
    }
}

fn tracking_allocator(c: &mut Criterion<ThreadCpu>) {
    let layout = Layout::from_size_align(48, 8).unwrap();
    let mut g = c.benchmark_group("tracking_allocator");
    g.bench_function("system_pair", |b| b.iter(|| pair(&System, layout)));
    g.bench_function("stats_only_pair", |b| b.iter(|| pair(&STATS, layout)));
    g.bench_function("stream_ring_pair", |b| {
        let sink = STREAM.recorder().sink();
        b.iter(|| {
            if sink.len() > 60_000 {
                sink.drain(|a, b| a.len() + b.len());
            }
            pair(&STREAM, layout)
        })
    });
    g.finish();
    assert_eq!(
        STREAM.stats().lost,
        0,
        "the bench drains before the ring fills"
    );
}

fn config() -> Criterion<ThreadCpu> {
    Criterion::default().with_measurement(ThreadCpu)
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode_push, encode_frame_push, tracking_allocator
}
criterion_main!(benches);
