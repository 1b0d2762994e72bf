//! A traced program that puts memscope-std in hostile situations, for
//! tests/std_faults.rs.
//!
//! The global allocator is `Counted<MemScope<System>>`: the outer wrapper
//! counts, per labelled thread, every call that reaches memscope, so the test
//! can check that each one is recorded, counted as lost, or counted as
//! untracked — exactly. Threads print `counted <name> <a> <d> <r>` lines.
//!
//! Usage: `std_faults_child <scenario>`, one of `burst`, `held-writer`,
//! `exit-mid-burst`, `abort-in-hook`, `fork`, `tls-dtor`.

use memscope_tests::counting::{self, Counted};
use std::alloc::System;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counted<memscope_std::MemScope<System>> =
    Counted(memscope_std::MemScope::new(System));

/// `n` allocation/free pairs of a 32-byte box: about eight bytes of trace each.
fn churn(n: u64) -> u64 {
    let mut sum = 0;
    for i in 0..n {
        let b = black_box(Box::new([i; 4]));
        sum += b[0];
    }
    sum
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
}

/// Fills the pipe the trace goes to (the test does not read it yet), so the
/// writer thread blocks in `write` and every ring fills up from here on.
fn block_the_writer() {
    // About 240 KB of trace: more than a pipe holds (64 KiB), less than a ring.
    black_box(churn(30_000));
    std::thread::sleep(Duration::from_millis(200));
}

/// Two threads overflow their rings and exit while the writer is blocked:
/// their slots wait, full, with losses not yet reported in any `Lost` record.
fn burst() {
    block_the_writer();
    let threads: Vec<_> = (1..=2)
        .map(|label| counting::spawn(&format!("burst-{label}"), label, || churn(400_000)))
        .collect();
    for t in threads {
        black_box(t.join().unwrap());
    }
    for label in 1..=2 {
        counting::print(&format!("burst-{label}"), label);
    }
    say(&format!("lost {}", memscope_std::stats().lost));
    say("done");
}

/// A thread allocates far more than its ring, the pipe and one drain of the
/// writer hold while the writer is blocked: it must wait for the writer
/// (the test sets a patience no run reaches). The child says `ready` once the
/// thread waits, and the test only then reads the pipe.
fn held_writer() {
    block_the_writer();
    // About 12 MB of trace; the writer holds at most a pipe (64 KiB), one
    // cycle's drain and the ring (2 MiB each) while blocked.
    let held = counting::spawn("held", 1, || churn(1_500_000));
    // Waits for a full ring, which must come (the give-up only ends a broken
    // run, before the test's watchdog, with a `waiting 0` line).
    let give_up = Instant::now() + Duration::from_secs(90);
    while memscope_std::threads_waiting_for_writer() == 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    say(&format!(
        "waiting {}",
        memscope_std::threads_waiting_for_writer()
    ));
    say("ready");
    black_box(held.join().unwrap());
    counting::print("held", 1);
    say(&format!("lost {}", memscope_std::stats().lost));
    say("done");
}

/// Threads overflow their rings, then a worker calls `process::exit` while
/// they keep allocating: the final flush must cut each running thread's
/// stream consistently.
fn exit_mid_burst() {
    block_the_writer();
    // Each spinner says when it recorded its first events: the test expects
    // every spinner's stream to hold some, which must not depend on whether
    // the scheduler ran a new thread before another spinner overflowed.
    let (started_tx, started) = std::sync::mpsc::channel();
    for i in 0..3 {
        let started_tx = started_tx.clone();
        std::thread::Builder::new()
            .name(format!("spinner-{i}"))
            .spawn(move || {
                black_box(churn(10));
                started_tx.send(()).unwrap();
                loop {
                    black_box(churn(1000));
                }
            })
            .unwrap();
    }
    for _ in 0..3 {
        started.recv().unwrap();
    }
    // Rings of 512 KiB at about eight bytes a pair: wait until one overflows.
    // That takes milliseconds of CPU; the give-up only ends a broken run
    // (the test's watchdog is at two minutes) with a `lost 0` line.
    let before = memscope_std::stats().lost;
    let give_up = Instant::now() + Duration::from_secs(90);
    while memscope_std::stats().lost == before && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    say(&format!("lost {}", memscope_std::stats().lost));
    say("ready");
    std::thread::Builder::new()
        .name("exiter".into())
        .spawn(|| {
            black_box(churn(1000));
            std::process::exit(0);
        })
        .unwrap()
        .join()
        .unwrap();
    unreachable!("the exiter ends the process");
}

/// Waits until memscope's writer thread wrote the trace's first bytes: it
/// installs its panic hook before its first write, so the hook is in place.
fn wait_for_the_writer() {
    let out = std::env::var_os("MEMSCOPE_OUT").expect("MEMSCOPE_OUT");
    // Milliseconds normally; generous for a loaded machine, below the
    // test's two-minute watchdog so that this message is what it reports.
    let give_up = std::time::Instant::now() + Duration::from_secs(90);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "memscope's writer thread wrote nothing to the trace in 90 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A hook that aborts after the previous hooks ran (memscope's among them,
/// installed by its writer thread): the process dies without `atexit`.
fn abort_in_hook() {
    let worker = counting::spawn("worker", 1, || churn(5000));
    black_box(worker.join().unwrap());
    counting::print("worker", 1);
    black_box(churn(100));
    wait_for_the_writer();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        std::process::abort();
    }));
    panic!("deliberate panic, then abort");
}

/// Size of the blocks the forked child allocates: must not be in the trace.
const FORKED_SIZE: usize = 77_777;

/// `fork` while a worker runs; the forked child allocates (on its only thread
/// and on a thread of its own) and exits normally.
fn fork() {
    let before = counting::spawn("before-fork", 1, || churn(2000));
    black_box(before.join().unwrap());
    let spinner = counting::spawn("during-fork", 2, || churn(200_000));
    // SAFETY: the child only allocates, spawns and joins a thread, prints and
    // exits (as the parent's allocator state allows: memscope's atfork
    // handler stops recording, glibc's malloc resets its locks).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let v: Vec<Vec<u8>> = (0..100).map(|_| vec![1u8; FORKED_SIZE]).collect();
        let t = std::thread::spawn(|| vec![2u8; FORKED_SIZE].len());
        let n = t.join().unwrap() + v.len();
        say(&format!(
            "forked child ok {n} {}",
            memscope_std::stats().allocs > 0
        ));
        std::process::exit(0);
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    black_box(spinner.join().unwrap());
    let after = counting::spawn("after-fork", 3, || churn(2000));
    black_box(after.join().unwrap());
    for (name, label) in [("before-fork", 1), ("during-fork", 2), ("after-fork", 3)] {
        counting::print(name, label);
    }
    say("done");
}

/// Blocks a thread-local destructor allocates: 4241 bytes for one that runs
/// before memscope's (recorded), 4243 for one that runs after (untracked).
const LATE_SIZE: usize = 4241;
const EARLY_SIZE: usize = 4243;
const DTOR_ALLOCS: usize = 10;

/// (allocations, frees) the destructors made, by block size: the test
/// compares the trace with these, not with constants of its own.
static DTOR_CALLS: [[AtomicU64; 2]; 2] = [
    [AtomicU64::new(0), AtomicU64::new(0)],
    [AtomicU64::new(0), AtomicU64::new(0)],
];

fn dtor_calls(size: usize) -> &'static [AtomicU64; 2] {
    &DTOR_CALLS[usize::from(size == EARLY_SIZE)]
}

struct AllocatesOnDrop(usize);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        let calls = dtor_calls(self.0);
        for i in 0..DTOR_ALLOCS {
            let v = black_box(vec![i as u8; self.0]);
            // Relaxed: read after the thread was joined.
            calls[0].fetch_add(1, Ordering::Relaxed);
            drop(v);
            // Relaxed: as above.
            calls[1].fetch_add(1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static EARLY: AllocatesOnDrop = const { AllocatesOnDrop(EARLY_SIZE) };
    static LATE: AllocatesOnDrop = const { AllocatesOnDrop(LATE_SIZE) };
}

/// The `early-tls` thread: a raw POSIX thread, so that nothing (not even
/// the standard library's thread start-up) allocates before `EARLY` is
/// registered.
extern "C" fn early_tls(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: a NUL-terminated name of at most 15 bytes for this thread.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"early-tls".as_ptr()) };
    // Registered before the thread's first allocation, hence before
    // memscope's own destructor; destructors run in reverse order.
    EARLY.with(|e| black_box(e.0));
    // Unwinding out of an `extern "C"` function would abort: catch it.
    let r = std::panic::catch_unwind(|| {
        let _scope = memscope_std::Scope::enter(memscope_tests::trace::MARK);
        counting::begin(1);
        black_box(churn(1000));
    });
    if r.is_err() {
        std::process::abort();
    }
    std::ptr::null_mut()
}

/// Thread-local destructors that allocate, registered before memscope's (so
/// they run after it: the thread's stream is closed) and after it.
fn tls_dtor() {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `thread` is a valid out-pointer, default attributes, and
    // `early_tls` has the signature `pthread_create` expects.
    let rc = unsafe {
        libc::pthread_create(
            &mut thread,
            std::ptr::null(),
            early_tls,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "pthread_create");
    // SAFETY: joins the thread created above, once.
    assert_eq!(
        unsafe { libc::pthread_join(thread, std::ptr::null_mut()) },
        0
    );
    let late = counting::spawn("late-tls", 2, || {
        let n = churn(1000);
        LATE.with(|e| black_box(e.0));
        n
    });
    black_box(late.join().unwrap());
    counting::print("early-tls", 1);
    counting::print("late-tls", 2);
    for (name, size) in [("early", EARLY_SIZE), ("late", LATE_SIZE)] {
        // Relaxed: both threads were joined.
        let [a, f] = dtor_calls(size)
            .each_ref()
            .map(|c| c.load(Ordering::Relaxed));
        say(&format!("dtor-{name} {size} {a} {f}"));
    }
    say("done");
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "burst" => burst(),
        "held-writer" => held_writer(),
        "exit-mid-burst" => exit_mid_burst(),
        "abort-in-hook" => abort_in_hook(),
        "fork" => fork(),
        "tls-dtor" => tls_dtor(),
        _ => {
            eprintln!(
                "usage: std_faults_child burst|held-writer|exit-mid-burst|abort-in-hook|fork|tls-dtor"
            );
            std::process::exit(2);
        }
    }
}
