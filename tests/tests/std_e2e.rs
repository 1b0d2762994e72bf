//! End-to-end tests of memscope-std: run `std_child` with `MEMSCOPE_OUT` set,
//! decode the trace with the shared reader (`memscope_tests::trace`, over
//! memscope-core's `Deframer` and `Records`), and compare
//! with what the child's own counting allocator (wrapped inside `MemScope`)
//! counted — exactly — and check that every stream proves itself complete.

use memscope_tests::trace::{self, Trace};
use memscope_tests::{parse_counted, scratch_dir};
use std::path::PathBuf;
use std::process::Command;

/// The scope std_child opens around the work it counts.
const MEASURED: &str = "measured";

/// Nothing damaged or out of place (frame numbers included), and every
/// stream has an end record whose totals equal the decoded events plus the
/// lost ones; the control stream counts the streams and lists modules, and
/// the output starts with the writer's 0x00.
fn assert_complete(t: &Trace) {
    t.assert_complete();
    assert!(t.leading_zero, "the output starts with a 0x00");
    assert!(t.modules > 0, "module records");
}

fn run(args: &[&str], out: &str, stacks: &str) -> (Trace, Vec<(String, [u64; 3])>) {
    run_expecting(args, out, stacks, Some(0))
}

fn run_expecting(
    args: &[&str],
    out: &str,
    stacks: &str,
    code: Option<i32>,
) -> (Trace, Vec<(String, [u64; 3])>) {
    // One directory per test (`out` names the test's trace), removed once read.
    let dir = scratch_dir(&format!("std-e2e-{out}"));
    let path: PathBuf = dir.join(out);
    let o = Command::new(env!("CARGO_BIN_EXE_std_child"))
        .args(args)
        .env("MEMSCOPE_OUT", &path)
        .env("MEMSCOPE_STACKS", stacks)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), code, "child: {o:?}");
    let counted = parse_counted(&String::from_utf8(o.stdout).unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (trace::decode(&bytes), counted)
}

/// The measured scope of the thread named `name` matches the child's counts.
fn assert_measured(t: &Trace, name: &str, counted: [u64; 3]) {
    let s = t.stream(name);
    assert!(counted[0] > 0, "{name}: the child counted nothing");
    let m = s.inside.get(MEASURED).copied().unwrap_or_default();
    let decoded: u64 = m.events.iter().sum();
    if m.lost == 0 {
        assert_eq!(
            m.events, counted,
            "{name}: decoded vs counted (alloc, dealloc, realloc)"
        );
    } else {
        assert_eq!(decoded + m.lost, counted.iter().sum::<u64>(), "{name}");
    }
}

#[test]
fn one_thread_counts_match_exactly() {
    let (t, counted) = run(&["threads", "1"], "one.bin", "0");
    assert_complete(&t);
    assert_eq!(counted.len(), 2);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
}

#[test]
fn four_threads_with_stacks_and_an_early_exit_match_exactly() {
    let (t, counted) = run(&["threads", "4"], "four.bin", "16");
    // Includes: no event below a watermark written before its frame.
    assert_complete(&t);
    assert!(t.watermarks > 0, "the writer wrote watermarks");
    assert_eq!(counted.len(), 5);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
    let w = t.stream("worker-3");
    assert!(
        w.stacks > 0 && w.allocs_with_stack > 0,
        "stacks recorded: {w:?}"
    );
    let main = t.stream("main");
    let (var, ty, file, line) = main.names.first().expect("track!(cache) wrote a name");
    assert_eq!(var, "cache");
    assert!(ty.contains("HashMap<u64, alloc::string::String"), "{ty}");
    assert!(file.ends_with("std_child.rs") && *line > 0, "{file}:{line}");
}

#[test]
fn a_panic_in_main_still_ends_the_trace() {
    let (t, counted) = run_expecting(&["panic-main"], "panic.bin", "4", Some(101));
    assert_complete(&t);
    assert_measured(&t, "worker", counted[0].1);
}

#[test]
fn process_exit_from_a_worker_keeps_every_committed_event() {
    let (t, counted) = run(&["exit-from-worker"], "exit.bin", "8");
    assert_complete(&t);
    assert_eq!(counted.len(), 1);
    assert_measured(&t, "exiter", counted[0].1);
    for i in 0..3 {
        let name = format!("spinner-{i}");
        // Still running at exit: cut consistently (checked by assert_complete).
        let s = t.stream(&name);
        assert!(
            s.end.is_some(),
            "{name} still running at exit has an end record"
        );
        assert!(s.events[0] > 0, "{name} recorded its work");
    }
}

#[test]
fn sequential_threads_reuse_slots_and_match_exactly() {
    let (t, counted) = run(&["sequential", "12"], "seq.bin", "8");
    assert_complete(&t);
    assert_eq!(counted.len(), 12);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
    // One stream per thread (a reused slot opens a new stream).
    let seq = t
        .streams
        .values()
        .filter(|s| s.name.as_deref().is_some_and(|n| n.starts_with("seq-")));
    assert_eq!(seq.count(), 12);
}
