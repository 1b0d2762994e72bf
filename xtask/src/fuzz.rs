//! Fuzzing: `cargo xtask fuzz-seeds` (the seed corpus, made from real
//! traces) and `cargo xtask fuzz [SECONDS]` (every target for a while; the
//! `fuzz` step of `cargo xtask test` runs it for [`CI_SECONDS`] each).
//!
//! The targets live in `fuzz/` (cargo-fuzz, nightly, its own workspace):
//! `frames_records` (memscope-core's deframer and record decoder),
//! `whole_stream` (memscope-decode's pipeline, report and every renderer)
//! and `symbolize_elf` (the symbolizer on a hostile ELF). fuzz/README.md
//! says how to run one by hand.
//!
//! Seeds, written to `fuzz/corpus/<target>/seed-*` (ignored by git):
//! - traces from memscope-decode's synthetic workload (`memscope-decode synth`);
//! - traces of a real program recorded by memscope-std (tests' `std_child`);
//! - a firmware trace: memscope-core's microcontroller recorder (`Stream`,
//!   one unchecked frame per event, heap region in the header) driven on the
//!   host with made-up addresses;
//! - for the symbolizer, a small C program compiled with and without DWARF
//!   by `cc` (when there is one; else the `std_child` executable's start).
//!
//! Each seed is cut to [`MAX_SEED`] bytes: libFuzzer mutates inputs up to the
//! largest seed's length, and longer inputs only slow every run down.

use crate::command::{on_path, Cmd};
use crate::failure::Failure;
use crate::setup::NIGHTLY;
use crate::workspace;
use memscope_core::{NoClock, Recorder, Sink, Stream, StreamInfo};
use std::alloc::Layout;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The fuzz targets, in the order the step runs them.
pub const TARGETS: [&str; 4] = [
    "frames_records",
    "whole_stream",
    "compressed_stream",
    "symbolize_elf",
];

/// Longest input libFuzzer makes per target: real-trace seeds are cut to it
/// when loaded (a few dozen frames are plenty), and shorter inputs run many
/// times faster. 0: the longest seed (the ELF seeds must stay whole).
fn max_len(target: &str) -> usize {
    match target {
        "frames_records" => 4096,
        "whole_stream" => 8192,
        "compressed_stream" => 4096,
        _ => 0,
    }
}

/// Seconds each target runs in `cargo xtask test`.
pub const CI_SECONDS: u32 = 30;

/// Longest seed, in bytes.
pub const MAX_SEED: usize = 64 * 1024;

/// libFuzzer options of every run: the memory a run may take (a hostile
/// length must not make the decoder allocate without bound), and how long one
/// input may take.
const LIBFUZZER_LIMITS: [&str; 3] = ["-rss_limit_mb=2048", "-malloc_limit_mb=1024", "-timeout=20"];

/// `cargo xtask fuzz-seeds`: writes the seed corpus; returns its directory.
pub fn seeds() -> Result<PathBuf, Failure> {
    let root = workspace::root();
    let target = workspace::target_dir()?;
    let corpus = root.join("fuzz").join("corpus");
    let work = target.join("fuzz-seeds");
    mkdir(&work)?;
    Cmd::cargo()
        .args(["build", "-p", "memscope-decode", "--bin", "memscope-decode"])
        .run()?;
    Cmd::cargo()
        .args(["build", "-p", "memscope-tests", "--bin", "std_child"])
        .run()?;
    let exe = std::env::consts::EXE_SUFFIX;
    let decode = target.join("debug").join(format!("memscope-decode{exe}"));
    let std_child = target.join("debug").join(format!("std_child{exe}"));

    let mut traces: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, events, threads) in [("synth-1t", "300", "1"), ("synth-3t", "2000", "3")] {
        let out = work.join(format!("{name}.bin"));
        Cmd::new(&decode)
            .args(["synth", "--events", events, "--threads", threads])
            .args(["--working-set", "40", "--out"])
            .arg(&out)
            .run()?;
        traces.push((name.into(), read(&out)?));
    }
    for (name, args) in [
        ("std-sequential", ["sequential", "3"]),
        ("std-threads", ["threads", "2"]),
    ] {
        let out = work.join(format!("{name}.bin"));
        let _ = std::fs::remove_file(&out);
        Cmd::new(&std_child)
            .args(args)
            .env("MEMSCOPE_OUT", &out)
            .dir(&work)
            .capture()?;
        traces.push((name.into(), read(&out)?));
    }
    traces.push(("firmware".into(), firmware_trace()));

    let mut written = 0;
    for (name, trace) in &traces {
        // frames_records: whole input at once, and in 7-byte pieces.
        for ctl in [0x00u8, 0x07] {
            written += seed(
                &corpus,
                "frames_records",
                &format!("{name}-{ctl:02x}"),
                ctl,
                trace,
            )?;
        }
        // whole_stream: as a live stream, and as a file read twice with
        // every export (and the flamegraph).
        for ctl in [0x00u8, 0x0D] {
            written += seed(
                &corpus,
                "whole_stream",
                &format!("{name}-{ctl:02x}"),
                ctl,
                trace,
            )?;
        }
        // compressed_stream: a control byte, a position (cut or flipped
        // byte), the trace: compressed whole, cut, one byte flipped, with a
        // zstd flush every 64 or 1024 bytes.
        for ctl in [0x00u8, 0x01, 0x02, 0x3d] {
            let mut input = vec![ctl, 0xa7, 0x01];
            input.extend_from_slice(trace);
            written += seed_raw(
                &corpus,
                "compressed_stream",
                &format!("{name}-{ctl:02x}"),
                &input,
            )?;
        }
    }
    // ELF seeds must be whole (section headers sit at the end): small C
    // programs when there is a compiler, else the start of a Rust one.
    let mut elves = small_c_programs(&work)?;
    if elves.is_empty() {
        elves.push(("std_child-start".to_string(), read(&std_child)?));
    }
    for (name, elf) in &elves {
        // Module base 0, addresses 16 bytes apart.
        let mut input = vec![0u8; 8];
        input.extend_from_slice(&0x10u64.to_le_bytes());
        input.extend_from_slice(elf);
        written += seed_raw(&corpus, "symbolize_elf", name, &input)?;
    }
    println!(
        "    fuzz-seeds: {written} seeds in {}",
        workspace::display(&corpus)
    );
    Ok(corpus)
}

/// `cargo xtask fuzz [SECONDS]`: seeds, then every target for `seconds`.
pub fn run_all(seconds: u32) -> Result<(), Failure> {
    seeds()?;
    let dir = workspace::root().join("fuzz");
    // One build of the three targets (cargo builds them together), then runs.
    fuzz_cmd(&dir)?.args(["build", "-O"]).run()?;
    for t in TARGETS {
        let corpus = dir.join("corpus").join(t);
        fuzz_cmd(&dir)?
            .args(["run", "-O", t])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-max_len={}", max_len(t)))
            .args(LIBFUZZER_LIMITS)
            .arg("-print_final_stats=1")
            .run()
            .map_err(|e| {
                Failure::new(format!(
                    "fuzz target {t} failed ({e}); the input that failed is in fuzz/artifacts/{t}/, \
                     rerun it with `cargo +{NIGHTLY} fuzz run {t} fuzz/artifacts/{t}/<file>` in fuzz/"
                ))
            })?;
    }
    Ok(())
}

/// cargo-fuzz on nightly, from `fuzz/`, in the workspace's target
/// directory: cargo-fuzz builds for an explicit `--target`, so its
/// instrumented builds sit in `<target>/<triple>/` apart from the others.
fn fuzz_cmd(dir: &Path) -> Result<Cmd, Failure> {
    Ok(Cmd::new("cargo")
        .arg(format!("+{NIGHTLY}"))
        .arg("fuzz")
        .env("CARGO_TARGET_DIR", workspace::target_dir()?)
        .env_remove("RUSTFLAGS")
        .dir(dir))
}

/// A firmware trace from memscope-core's microcontroller recorder, the
/// `Stream` a firmware installs, fed made-up allocator results.
fn firmware_trace() -> Vec<u8> {
    /// Collects the frames (the sink of a real firmware is an RTT channel).
    struct Frames(RefCell<Vec<u8>>);
    impl Sink for Frames {
        fn write_frame(&self, frame: &[u8]) -> bool {
            self.0.borrow_mut().extend_from_slice(frame);
            true
        }
    }
    const HEAP: u64 = 0x2000_0000;
    let info = StreamInfo::new("fuzz-seed-firmware").with_heap(HEAP as usize, 0x4000);
    let rec = Stream::new(Frames(RefCell::new(Vec::new())), NoClock, info);
    let mut live: Vec<(u64, Layout)> = Vec::new();
    let mut next = HEAP;
    for i in 0..200u64 {
        let layout = Layout::from_size_align(8 + (i % 5) as usize * 24, 4).expect("valid layout");
        match i % 4 {
            0 | 1 => {
                let addr = next;
                next += layout.size() as u64;
                rec.alloc(layout, i % 8 == 1, || addr as usize as *mut u8);
                live.push((addr, layout));
            }
            2 => {
                if let Some((addr, l)) = live.pop() {
                    rec.dealloc(addr as usize as *mut u8, l, || {});
                }
            }
            _ => {
                if let Some((addr, l)) = live.pop() {
                    let new = next;
                    next += 64;
                    rec.realloc(addr as usize as *mut u8, l, 64, || new as usize as *mut u8);
                    live.push((new, Layout::from_size_align(64, 4).expect("valid layout")));
                }
            }
        }
    }
    rec.finish();
    rec.sink().0.take()
}

/// A small C program compiled three ways (DWARF 5 optimised with an inline
/// frame, DWARF 4 unoptimised, stripped), when a C compiler is installed.
fn small_c_programs(work: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    if !on_path("cc") {
        println!(
            "    fuzz-seeds: no `cc`; the symbolizer's seed is the start of a Rust executable"
        );
        return Ok(Vec::new());
    }
    let src = work.join("seed.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nstatic inline void *grow(void *p, int n) { return realloc(p, n); }\n\
         int main(int argc, char **argv) { void *p = malloc(argc); p = grow(p, 64); free(p); return 0; }\n",
    )
    .map_err(|e| Failure::new(format!("cannot write {}: {e}", src.display())))?;
    let mut out = Vec::new();
    for (name, flags) in [
        ("c-dwarf5-O1", &["-g", "-O1"][..]),
        ("c-dwarf4-O0", &["-gdwarf-4", "-O0"][..]),
        ("c-stripped", &["-s", "-O1"][..]),
    ] {
        let exe = work.join(name);
        Cmd::new("cc")
            .args(flags)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .run()?;
        out.push((name.to_string(), read(&exe)?));
    }
    Ok(out)
}

/// Writes `ctl` + `bytes` (cut to [`MAX_SEED`]) as `corpus/<target>/seed-<name>`.
fn seed(corpus: &Path, target: &str, name: &str, ctl: u8, bytes: &[u8]) -> Result<usize, Failure> {
    let mut input = vec![ctl];
    input.extend_from_slice(bytes);
    seed_raw(corpus, target, name, &input)
}

fn seed_raw(corpus: &Path, target: &str, name: &str, input: &[u8]) -> Result<usize, Failure> {
    let dir = corpus.join(target);
    mkdir(&dir)?;
    let path = dir.join(format!("seed-{name}"));
    std::fs::write(&path, &input[..input.len().min(MAX_SEED)])
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(1)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))
}

fn mkdir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))
}
