//! memscope-core: encode and decode of one record, per record kind.
//!
//! `cargo bench -p memscope-benches --bench core_codec`
//!
//! Each benchmark encodes (`Record::encode` against the stream's delta base,
//! as a producer does) or decodes (`Record::decode`, as the host does) a run
//! of [`RUN`] records of one kind with varied values, and criterion reports
//! the time per run and the throughput in records per CPU-second; divide the
//! time by [`RUN`] for one record. The bytes each kind takes are printed
//! once, before the measurements (`codec: <kind> <bytes>/record`).
//!
//! Kinds: the hot heap events (alloc with and without a stack id, dealloc
//! with the stream's previous timestamp and with its own, realloc), the
//! records a producer puts around them (sync, lost), and every extension
//! record (header, heap region, end, a 16-frame stack, thread, scope enter
//! and exit, name, module, mark). Values follow a heap's shape: addresses
//! within 4 MiB at 16-byte granularity, sizes 8 B – 8 KiB, timestamps a few
//! hundred ticks apart (xorshift, fixed seed).
//!
//! Times are the benchmark thread's CPU time (see `shared/thread_cpu.rs`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use memscope_core::wire::{
    Alloc, Dealloc, Delta, End, Frames, Header, HeapRegion, Module, Name, Realloc, Record, Stack,
    Thread,
};
use std::time::Duration;

#[path = "shared/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

/// Records per benchmark iteration.
const RUN: usize = 256;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn addr(&mut self) -> u64 {
        0x5555_5560_0000 + (self.next() % (4 << 20)) / 16 * 16
    }
    fn size(&mut self) -> u64 {
        let s = 8u64 << (self.next() % 10);
        s + self.next() % s
    }
    fn dts(&mut self) -> u64 {
        100 + self.next() % 400
    }
}

/// Return addresses of the stacks: 16 frames within one text segment.
fn frames(rng: &mut Rng) -> Vec<u64> {
    (0..16)
        .map(|_| 0x5555_5555_0000 + rng.next() % 0x20_0000)
        .collect()
}

/// `RUN` records of each kind. `frames` backs the stack records.
fn kinds(frames: &[Vec<u64>]) -> Vec<(&'static str, Vec<Record<'_>>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ts = 0u64;
    let mut run = |f: &mut dyn FnMut(&mut Rng, u64) -> Record<'static>| {
        (0..RUN)
            .map(|_| {
                ts += rng.dts();
                f(&mut rng, ts)
            })
            .collect::<Vec<_>>()
    };
    let alloc = |stack: bool| {
        move |r: &mut Rng, ts: u64| {
            Record::Alloc(Alloc {
                ts,
                addr: Some(r.addr()),
                size: r.size(),
                align: 8,
                zeroed: false,
                stack: stack.then(|| (r.next() % 500) as u32),
            })
        }
    };
    let alloc_plain = run(&mut alloc(false));
    let alloc_stack = run(&mut alloc(true));
    // A dealloc without its own timestamp decodes with the base's (0 here:
    // a run of deallocs only never moves it), so it carries 0 to round-trip.
    let dealloc = run(&mut |r, _| {
        Record::Dealloc(Dealloc {
            ts: 0,
            ts_exact: false,
            addr: r.addr(),
            size: r.size(),
            align: 8,
            stack: None,
        })
    });
    let dealloc_ts = run(&mut |r, ts| {
        Record::Dealloc(Dealloc {
            ts,
            ts_exact: true,
            addr: r.addr(),
            size: r.size(),
            align: 8,
            stack: None,
        })
    });
    let realloc = run(&mut |r, ts| {
        let old_size = r.size();
        Record::Realloc(Realloc {
            ts,
            old_addr: r.addr(),
            old_size,
            new_addr: Some(r.addr()),
            new_size: old_size * 2,
            align: 8,
            stack: None,
        })
    });
    let sync = run(&mut |r, ts| {
        Record::Sync(Delta {
            ts: ts << 20,
            addr: r.addr(),
        })
    });
    let lost = run(&mut |r, _| Record::Lost {
        count: 1 + r.next() % 300,
    });
    let header = run(&mut |_, ts| {
        let mut h = Header::new(8, 2_900_000_000, "target/release/server");
        h.build_id = &[0x5a; 20];
        h.target = "x86_64-unknown-linux-gnu";
        h.ticks_per_second += ts;
        Record::Header(h)
    });
    let heap_region = run(&mut |r, _| {
        Record::HeapRegion(HeapRegion {
            start: 0x2000_0000 + r.next() % 0x1000,
            len: 16 * 1024,
        })
    });
    let end = run(&mut |r, _| {
        let allocs = 1_000_000 + r.next() % 1000;
        Record::End(End {
            allocs,
            deallocs: allocs - 1000,
            reallocs: 20_000,
            failed: 0,
            lost: r.next() % 10,
            streams: 0,
        })
    });
    let thread = run(&mut |r, _| {
        Record::Thread(Thread {
            os_id: 4000 + r.next() % 1000,
            name: "tokio-runtime-worker",
        })
    });
    let scope_enter = run(&mut |_, _| Record::ScopeEnter {
        name: "handle_request",
    });
    let scope_exit = run(&mut |_, _| Record::ScopeExit);
    let name = run(&mut |r, _| {
        Record::Name(Name {
            addr: r.addr(),
            var: "buf",
            type_name: "Vec<u8>",
            file: "src/server/conn.rs",
            line: 100 + (r.next() % 900) as u32,
        })
    });
    let module = run(&mut |r, _| {
        Record::Module(Module {
            base: 0x7f00_0000_0000 + (r.next() % 0x1000) * 0x1000,
            size: 2 << 20,
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6",
            build_id: &[0xa5; 20],
        })
    });
    let mark = run(&mut |_, _| Record::Mark { name: "warmed up" });
    let stack: Vec<Record<'_>> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Record::Stack(Stack {
                id: i as u32,
                frames: Frames::Slice(f),
            })
        })
        .collect();
    vec![
        ("alloc", alloc_plain),
        ("alloc_stack", alloc_stack),
        ("dealloc", dealloc),
        ("dealloc_ts", dealloc_ts),
        ("realloc", realloc),
        ("sync", sync),
        ("lost", lost),
        ("header", header),
        ("heap_region", heap_region),
        ("end", end),
        ("stack16", stack),
        ("thread", thread),
        ("scope_enter", scope_enter),
        ("scope_exit", scope_exit),
        ("name", name),
        ("module", module),
        ("mark", mark),
    ]
}

/// Encodes `records` one after the other from a fresh stream base, as a
/// producer does; returns the bytes used.
#[inline]
fn encode_run(records: &[Record<'_>], out: &mut [u8]) -> usize {
    let mut delta = Delta::default();
    let mut pos = 0;
    for r in records {
        let (n, next) = r
            .encode(delta, &mut out[pos..])
            .expect("the buffer holds a run");
        pos += n;
        delta = next;
    }
    pos
}

/// Decodes a run; returns the records read.
#[inline]
fn decode_run(bytes: &[u8]) -> usize {
    let mut delta = Delta::default();
    let mut pos = 0;
    let mut n = 0;
    while pos < bytes.len() {
        let (rec, used) = Record::decode(&bytes[pos..], &mut delta).expect("a run we encoded");
        black_box(&rec);
        pos += used;
        n += 1;
    }
    n
}

fn codec(c: &mut Criterion<ThreadCpu>) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let stack_frames: Vec<Vec<u64>> = (0..RUN).map(|_| frames(&mut rng)).collect();
    let kinds = kinds(&stack_frames);
    let mut buf = vec![0u8; RUN * 256];
    // Encode once to size the runs and check that each decodes to what was
    // encoded: a benchmark of a codec that does not round-trip measures nothing.
    let encoded: Vec<Vec<u8>> = kinds
        .iter()
        .map(|(name, recs)| {
            let n = encode_run(recs, &mut buf);
            let bytes = buf[..n].to_vec();
            let mut delta = Delta::default();
            let mut pos = 0;
            for want in recs {
                let (got, used) = Record::decode(&bytes[pos..], &mut delta).expect("decodes");
                assert_eq!(&got, want, "{name} round-trips");
                pos += used;
            }
            assert_eq!(pos, n, "{name}: nothing left over");
            eprintln!(
                "codec: {name:<12} {:>6.2} bytes/record",
                n as f64 / RUN as f64
            );
            bytes
        })
        .collect();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(RUN as u64));
    for (name, recs) in &kinds {
        g.bench_function(*name, |b| b.iter(|| encode_run(black_box(recs), &mut buf)));
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(RUN as u64));
    for ((name, _), bytes) in kinds.iter().zip(&encoded) {
        g.bench_function(*name, |b| b.iter(|| decode_run(black_box(bytes))));
    }
    g.finish();
}

fn config() -> Criterion<ThreadCpu> {
    // 34 benchmarks of a few microseconds each: short windows keep a full run
    // near a minute and are still thousands of iterations per sample.
    Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec
}
criterion_main!(benches);
