//! Fault suite of memscope-std's tracker: child programs (src/bin/std_faults_*)
//! run with `MEMSCOPE_OUT` set in hostile situations; the trace is decoded
//! (memscope_tests::trace) and compared with what the child counted itself,
//! exactly: every allocator call that reached memscope is recorded, counted as
//! lost in its stream's end record, or counted as untracked in the control
//! stream's end record.
//!
//! To overflow rings on purpose, some runs write the trace into a named pipe
//! the test does not read until the child says so: memscope's writer thread
//! blocks in `write` and nothing drains the rings. A thread whose ring is full
//! then waits for the writer (the default, `MEMSCOPE_FULL=wait`) and gives up
//! after 1 s without progress, or drops at once (`MEMSCOPE_FULL=drop`);
//! either way every thread that keeps allocating loses events, exactly
//! counted. With a patience longer than the hold-up, nothing is lost.

use memscope_tests::trace::{self, Trace};
use memscope_tests::{parse_counted, scratch_dir};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = env!("CARGO_BIN_EXE_std_faults_child");
/// A child that takes longer than this is taken to be deadlocked.
const DEADLINE: Duration = Duration::from_secs(120);

/// What a child run left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    trace: Trace,
}

impl Run {
    fn counted(&self) -> Vec<(String, [u64; 3])> {
        parse_counted(&self.stdout)
    }

    /// The number after `word` on the line that starts with it.
    fn number(&self, word: &str) -> u64 {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(word)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{word}` line in {:?}", self.stdout))
            .parse()
            .unwrap()
    }
}

/// Kills the child (SIGKILL, by its pid) if it is still running at the
/// deadline, so a deadlock fails the test instead of hanging it.
fn watchdog(child: &Child) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let pid = child.id() as libc::pid_t;
    let flag = done.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + DEADLINE;
        // Relaxed: a stop flag.
        while !flag.load(Ordering::Relaxed) {
            if Instant::now() > until {
                eprintln!("child {pid} still running after {DEADLINE:?}: killing it");
                // SAFETY: signals our own child, not yet reaped (the flag is
                // set only after `wait` returned).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    done
}

/// Waits for the child; fails if the watchdog had to kill it.
fn wait(child: &mut Child, done: &AtomicBool) -> ExitStatus {
    let status = child.wait().unwrap();
    // Relaxed: a stop flag.
    done.store(true, Ordering::Relaxed);
    assert_ne!(
        status.signal(),
        Some(libc::SIGKILL),
        "the child deadlocked (killed by the watchdog after {DEADLINE:?})"
    );
    status
}

/// Runs `bin args` writing its trace to a file.
fn run(bin: &str, args: &[&str], dir: &Path) -> Run {
    let out = dir.join(format!("{}.bin", args.first().unwrap_or(&"trace")));
    let mut child = Command::new(bin)
        .args(args)
        .env("MEMSCOPE_OUT", &out)
        .env("MEMSCOPE_STACKS", "4")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let done = watchdog(&child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = wait(&mut child, &done);
    let bytes = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    Run {
        status,
        stdout,
        trace: trace::decode(&bytes),
    }
}

/// Runs `std_faults_child scenario` with its trace going into a named pipe
/// that is read only once the child printed the line `ready`; `env` adds to
/// the child's environment.
fn run_blocked(scenario: &str, ready: &str, dir: &Path, env: &[(&str, &str)]) -> Run {
    let fifo: PathBuf = dir.join(format!("{scenario}.fifo"));
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let mut child = Command::new(CHILD)
        .arg(scenario)
        .env("MEMSCOPE_OUT", &fifo)
        .env("MEMSCOPE_STACKS", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let done = watchdog(&child);
    // Opening blocks until the child's writer opens its end; reading waits
    // for the go-ahead.
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = File::open(&fifo).unwrap();
            let _ = wait_go.recv();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        stdout.push_str(&line);
        if line.trim_end() == ready {
            break;
        }
    }
    go.send(()).unwrap();
    lines.read_to_string(&mut stdout).unwrap();
    let status = wait(&mut child, &done);
    // A child that died before opening the pipe leaves the reader waiting in
    // `open`: open the writing end once, without blocking, to release it.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    let bytes = reader.join().unwrap();
    let _ = std::fs::remove_file(&fifo);
    Run {
        status,
        stdout,
        trace: trace::decode(&bytes),
    }
}

/// A thread's stream, with the loss that tests here expect checked.
fn lost_in(t: &Trace, name: &str) -> u64 {
    t.stream(name).end.expect("end record").lost
}

/// Two threads overflow their rings (the writer is blocked) and exit while
/// their rings are still full: for each, recorded + lost == performed,
/// exactly, where "performed" is what the child counted itself. By default
/// (`wait`) each thread first waits for the stuck writer and gives up after
/// the patience: that it gave up is shown by the losses and the child's end
/// (a wait without bound would hang it until the watchdog).
#[test]
fn a_burst_that_overflows_the_ring_is_accounted_for_exactly() {
    burst_accounted_for_exactly("faults-burst", &[]);
}

/// As above with `MEMSCOPE_FULL=drop`: a full ring drops at once, without
/// waiting for the writer.
#[test]
fn a_burst_that_overflows_the_ring_with_drop_is_accounted_for_exactly() {
    burst_accounted_for_exactly("faults-burst-drop", &[("MEMSCOPE_FULL", "drop")]);
}

fn burst_accounted_for_exactly(test: &str, env: &[(&str, &str)]) {
    let dir = scratch_dir(test);
    let r = run_blocked("burst", "done", &dir, env);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    let t = &r.trace;
    t.assert_complete();
    let counted = r.counted();
    assert_eq!(counted.len(), 2);
    for (name, c) in &counted {
        let s = t.stream(name);
        let lost = lost_in(t, name);
        assert!(lost > 0, "{name}: the burst overflowed its ring: {s:?}");
        assert!(s.recorded() > 0, "{name}: recorded before the ring filled");
        // 400 000 alloc/free pairs, plus the thread's own few calls.
        assert!(c[0] >= 400_000 && c[1] >= 400_000, "{name}: {c:?}");
        // Reported in `Lost` records or (thread exited with a full ring) only
        // in the end record.
        assert!(s.lost_reported <= lost);
        println!(
            "{name}: counted {c:?}, recorded {}, lost {lost} ({} in Lost records)",
            s.recorded(),
            s.lost_reported
        );
    }
    t.assert_accounts_for(&counted);
    assert!(
        r.number("lost ") > 0,
        "stats() saw the losses: {}",
        r.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Threads overflow their rings, then a worker calls `process::exit` while
/// they keep allocating: every running thread's stream is cut consistently
/// (end record totals == recorded + lost), with the writer unblocked only
/// once the exit began.
#[test]
fn process_exit_from_a_worker_mid_burst_cuts_every_stream_consistently() {
    let dir = scratch_dir("faults-exit-mid-burst");
    let r = run_blocked("exit-mid-burst", "ready", &dir, &[]);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    assert!(r.number("lost ") > 0, "rings overflowed: {}", r.stdout);
    let t = &r.trace;
    t.assert_complete();
    // The child goes on once any ring overflowed: some spinners may not
    // have filled theirs by then.
    let mut lost = 0;
    for i in 0..3 {
        let name = format!("spinner-{i}");
        lost += lost_in(t, &name);
        assert!(t.stream(&name).recorded() > 0, "{name} recorded");
    }
    assert!(lost > 0, "a spinner's ring overflowed");
    assert!(t.stream("exiter").end.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The writer is held up (blocked on the pipe) but not stuck for good: a
/// thread allocating far more than its ring holds waits for it (here with a
/// patience longer than the test's watchdog), and once the test reads the
/// pipe the trace comes out complete with nothing lost. The child says
/// `ready` only once the thread waits, so the wait is what is tested; and
/// it could not have finished otherwise (its trace is larger than the pipe,
/// the ring and the writer's one drain before it blocked).
#[test]
fn a_thread_waits_for_a_held_up_writer_and_loses_nothing() {
    let dir = scratch_dir("faults-held-writer");
    let r = run_blocked(
        "held-writer",
        "ready",
        &dir,
        &[("MEMSCOPE_FULL", "wait:600000")],
    );
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    assert!(
        r.number("waiting ") >= 1,
        "the thread waited for the writer: {}",
        r.stdout
    );
    let t = &r.trace;
    // Includes: no event below a watermark written before it, though the
    // thread waited for room holding events it had taken the time of.
    t.assert_complete();
    assert!(t.watermarks > 0, "the writer wrote watermarks");
    let counted = r.counted();
    let (name, c) = &counted[0];
    assert!(c[0] >= 1_500_000, "{name}: {c:?}");
    assert_eq!(lost_in(t, name), 0, "{name}: nothing lost");
    assert_eq!(t.stream(name).lost_reported, 0);
    let end = t.control_end.expect("control end");
    assert_eq!(end.lost, 0, "nothing untracked");
    t.assert_accounts_for(&counted);
    assert_eq!(r.number("lost "), 0, "stats() saw no loss: {}", r.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A panic hook that aborts after the previous hooks ran (this binary is
/// built with `panic = "unwind"`, so memscope's hook flushes but does not end
/// the trace): the process dies by SIGABRT without `atexit`. Documented
/// behaviour: the trace is intact up to the panic, a thread that exited
/// before is complete and exact, the running ones and the control stream have
/// no end record (the trace says it is incomplete instead of claiming to be
/// whole).
#[test]
fn abort_from_a_panic_hook_leaves_an_intact_trace_that_says_it_is_incomplete() {
    let dir = scratch_dir("faults-abort");
    let r = run(CHILD, &["abort-in-hook"], &dir);
    assert_eq!(r.status.signal(), Some(libc::SIGABRT), "{:?}", r.status);
    let t = &r.trace;
    t.assert_intact();
    let worker = t.stream("worker");
    let end = worker.end.expect("the exited worker's end record");
    assert_eq!(worker.recorded() + end.lost, worker.performed());
    let (_, c) = &r.counted()[0];
    let before: u64 = worker.before_mark.iter().sum();
    assert_eq!(
        c.iter().sum::<u64>(),
        worker.performed() - before,
        "worker: counted vs recorded + lost"
    );
    let main = t.stream("main");
    assert!(main.recorded() > 0, "main's events up to the panic");
    assert!(main.end.is_none(), "main cannot be complete after abort");
    assert!(t.control_end.is_none(), "no control end record after abort");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fork` while a worker allocates; the forked child allocates on its thread
/// and a new one, then exits normally (running `atexit`). Documented
/// behaviour: the child stops recording and writes nothing; the parent's
/// trace stays intact and exact, and goes on after the fork.
#[test]
fn fork_leaves_the_parents_trace_intact_and_the_child_unrecorded() {
    let dir = scratch_dir("faults-fork");
    let r = run(CHILD, &["fork"], &dir);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    assert!(
        r.stdout.contains("forked child ok 77877 true"),
        "the forked child ran and kept live statistics: {}",
        r.stdout
    );
    let t = &r.trace;
    t.assert_complete();
    t.assert_accounts_for(&r.counted());
    assert_eq!(
        t.allocs_by_size.get(&77_777),
        None,
        "no allocation of the forked child is in the parent's trace"
    );
    assert!(t.stream("after-fork").recorded() >= 4000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Thread-local destructors that allocate: one registered after memscope's
/// (runs first: recorded in the thread's stream), one registered before it
/// (runs after the stream closed: counted as untracked in the control
/// stream's end record). The child reports what each destructor did; the
/// trace must show exactly that.
#[test]
fn allocating_thread_local_destructors_are_recorded_or_counted_as_untracked() {
    let dir = scratch_dir("faults-tls");
    let r = run(CHILD, &["tls-dtor"], &dir);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    let t = &r.trace;
    t.assert_complete();
    t.assert_accounts_for(&r.counted());
    // `dtor-<which> <block size> <allocs> <frees>`, as the child counted.
    let dtor = |which: &str| -> [u64; 3] {
        let line = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("dtor-{which} ")))
            .unwrap_or_else(|| panic!("no dtor-{which} line in {:?}", r.stdout));
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        v.try_into().expect("size, allocs, frees")
    };
    let [late_size, late_allocs, late_frees] = dtor("late");
    let [early_size, early_allocs, early_frees] = dtor("early");
    assert!(late_allocs > 0 && early_allocs > 0, "{}", r.stdout);
    // The destructor that runs before memscope's: recorded.
    assert_eq!(
        t.allocs_by_size.get(&late_size),
        Some(&late_allocs),
        "late destructor recorded"
    );
    // The one that runs after it: not in any stream...
    assert_eq!(
        t.allocs_by_size.get(&early_size),
        None,
        "early destructor not recorded"
    );
    // ...but counted, exactly: in this child no other call is made after
    // its thread's stream closed.
    assert_eq!(
        t.untracked(),
        [early_allocs, early_frees, 0],
        "untracked calls vs. the early destructor's (late one: {late_allocs}/{late_frees})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An inner allocator that allocates through the global allocator on every
/// call (re-entering memscope from inside its inner call, and from inside
/// its slot and ring set-up): no recursion, no deadlock, and every call of
/// the program, nested ones included, is accounted for exactly.
#[test]
fn an_inner_allocator_that_reenters_the_global_allocator_is_recorded_exactly() {
    let dir = scratch_dir("faults-reentrant");
    let r = run(
        env!("CARGO_BIN_EXE_std_faults_reentrant"),
        &["reentrant"],
        &dir,
    );
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    let t = &r.trace;
    t.assert_complete();
    let counted = r.counted();
    assert_eq!(counted.len(), 3);
    t.assert_accounts_for(&counted);
    let nested = r.number("nested ");
    let recorded_nested = t.allocs_by_size.get(&13).copied().unwrap_or(0);
    // Every call of a worker reaches `Reentrant` once and nests exactly one
    // alloc/free pair (which does not nest again): a third of its calls are
    // outer ones, and each nested allocation is recorded. Other threads'
    // nested allocations are recorded too, memscope's own (its writer's)
    // pass through unrecorded.
    let performed: u64 = counted.iter().map(|(_, c)| c[0] + c[1] + c[2]).sum();
    assert_eq!(performed % 3, 0, "worker calls {performed}");
    assert!(
        recorded_nested >= performed / 3 && recorded_nested <= nested,
        "nested {nested}, recorded {recorded_nested}, worker calls {performed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signal handler that allocates, interrupting a thread that churns
/// (inner allocator: async-signal-safe bump allocator). Documented
/// behaviour: no deadlock, the trace stays intact and every stream
/// consistent, and no call is missing: a handler call that lands while
/// memscope's record path runs on that thread cannot be recorded and is
/// counted as untracked in the control stream's end record instead, so
/// recorded + lost + untracked == performed, exactly.
#[test]
fn allocation_from_a_signal_handler_neither_deadlocks_nor_corrupts_the_trace() {
    let dir = scratch_dir("faults-signal");
    let r = run(env!("CARGO_BIN_EXE_std_faults_signal"), &["signal"], &dir);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stdout);
    let t = &r.trace;
    t.assert_complete();
    let handled = r.number("handled ");
    assert!(handled > 100, "the handler ran: {}", r.stdout);
    let (name, c) = &r.counted()[0];
    let s = t.stream(name);
    let before: u64 = s.before_mark.iter().sum();
    let performed: u64 = c.iter().sum();
    let untracked: u64 = t.untracked().iter().sum();
    let seen = s.performed() - before + untracked;
    let lost = s.end.unwrap().lost;
    let handler_recorded = t.allocs_by_size.get(&1234).copied().unwrap_or(0);
    println!(
        "signal: handled {handled}, handler allocs recorded {handler_recorded}, \
         untracked calls {untracked}, lost {lost}, performed {performed}, seen {seen}"
    );
    let missed = performed.checked_sub(seen).unwrap_or_else(|| {
        panic!("the trace claims more than happened: performed {performed} < seen {seen}")
    });
    assert_eq!(missed, 0, "calls neither recorded, lost nor untracked");
    // The handler's calls that were not recorded were not lost either
    // (`lost` bounds those, as the ring may have dropped some): each
    // unrecorded invocation's alloc and free are among the untracked.
    assert!(handler_recorded <= handled);
    assert!(
        untracked + lost >= 2 * (handled - handler_recorded),
        "unrecorded handler calls {} vs untracked {untracked} + lost {lost}",
        2 * (handled - handler_recorded)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds `std_faults_abort` with `panic = "abort"` for memscope-std as well
/// (so its `cfg!(panic = "abort")` holds), as a cargo project of its own in
/// this test's scratch target directory, offline, with the workspace's
/// lock file. The first build takes about a minute; later ones are no-ops.
fn build_with_panic_abort() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("panic-abort");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        r#"[package]
name = "std-faults-abort"
version = "0.0.0"
edition = "2021"
publish = false

[[bin]]
name = "std_faults_abort"
path = "{bin}"

[dependencies]
memscope-std = {{ path = "{std}" }}

[profile.dev]
panic = "abort"

[workspace]
"#,
        bin = root.join("tests/src/bin/std_faults_abort.rs").display(),
        std = root.join("memscope-std").display(),
    );
    let path = dir.join("Cargo.toml");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(manifest.as_str()) {
        std::fs::write(&path, manifest).unwrap();
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = dir.join("target");
    let o = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--bin", "std_faults_abort"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "building std_faults_abort with panic = \"abort\" failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    target.join("debug/std_faults_abort")
}

/// A panic in a program built with `panic = "abort"`: no `atexit` handler
/// runs, so memscope's panic hook ends the trace. Every stream is complete:
/// the worker that exited before, main, and a thread still allocating
/// during the panic (cut consistently).
#[test]
fn a_panic_with_panic_abort_still_ends_the_trace() {
    let bin = build_with_panic_abort();
    let dir = scratch_dir("faults-panic-abort");
    let r = run(bin.to_str().unwrap(), &["panic-abort"], &dir);
    assert_eq!(r.status.signal(), Some(libc::SIGABRT), "{:?}", r.status);
    assert!(r.stdout.contains("panic = abort"), "{}", r.stdout);
    let t = &r.trace;
    t.assert_complete();
    for name in ["worker", "main", "running"] {
        let s = t.stream(name);
        assert!(s.end.is_some() && s.recorded() > 0, "{name}: {s:?}");
    }
    assert!(t.stream("worker").recorded() >= 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same program built as usual (`panic = "unwind"`): the panic unwinds
/// out of `main`, `atexit` ends the trace.
#[test]
fn the_same_panic_with_panic_unwind_ends_the_trace_too() {
    let dir = scratch_dir("faults-panic-unwind");
    let r = run(
        env!("CARGO_BIN_EXE_std_faults_abort"),
        &["panic-unwind"],
        &dir,
    );
    assert_eq!(r.status.code(), Some(101), "{:?}", r.status);
    assert!(r.stdout.contains("panic = unwind"), "{}", r.stdout);
    r.trace.assert_complete();
    assert!(r.trace.stream("running").end.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
