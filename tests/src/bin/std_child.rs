//! A traced program for memscope-std's end-to-end tests (tests/std_e2e.rs).
//!
//! `MemScope` wraps a counting allocator that counts, per thread, the calls it
//! receives while the thread's `MEASURING` flag is on. Each worker turns it on
//! inside `track_scope!("measured")` and prints what it counted, so the test
//! can compare those counts with the events the trace holds inside that scope.
//!
//! Usage: `std_child threads N` | `std_child exit-from-worker` | `std_child panic-main`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static COUNTS: Cell<[u64; 3]> = const { Cell::new([0; 3]) };
}

fn bump(i: usize) {
    if MEASURING.with(Cell::get) {
        COUNTS.with(|c| {
            let mut v = c.get();
            v[i] += 1;
            c.set(v);
        });
    }
}

// SAFETY: forwards every call to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump(0);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        bump(0);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        bump(1);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump(2);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: memscope_std::MemScope<Counting> = memscope_std::MemScope::new(Counting);

/// Mixed work: vectors grown by push, strings, a map, frees in another order.
/// A block whose alignment the wire format cannot put in the tag.
#[repr(align(256))]
struct Aligned([u8; 32]);

fn work(seed: u64, rounds: usize) -> u64 {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut keep: Vec<Vec<u8>> = Vec::new();
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut sum = 0u64;
    for i in 0..rounds {
        let n = (rnd() % 2000) as usize + 1;
        let v = vec![i as u8; n];
        sum += v.len() as u64;
        keep.push(v);
        if keep.len() > 50 {
            let at = (rnd() as usize) % keep.len();
            keep.swap_remove(at);
        }
        let mut grow = Vec::new();
        for j in 0..(rnd() % 100) {
            grow.push(j);
        }
        sum += grow.len() as u64;
        map.insert(rnd() % 500, format!("value {i}"));
        let b = Box::new([0u64; 4]);
        sum += b[0];
        if i % 8 == 0 {
            // An alignment of 128 or more has its own field on the wire
            // (memscope's general record path, not the in-place one).
            let a = Box::new(Aligned([i as u8; 32]));
            sum += u64::from(std::hint::black_box(&a).0[0]);
        }
    }
    sum + map.len() as u64
}

/// Runs `f` measured: scope, counting on, then prints the counts.
fn measured(label: &str, f: impl FnOnce() -> u64) -> u64 {
    let r;
    let counts;
    {
        memscope_std::track_scope!("measured");
        COUNTS.with(|c| c.set([0; 3]));
        MEASURING.with(|m| m.set(true));
        r = std::hint::black_box(f());
        MEASURING.with(|m| m.set(false));
        counts = COUNTS.with(Cell::get);
    }
    let line = format!(
        "counted {label} {} {} {}\n",
        counts[0], counts[1], counts[2]
    );
    std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("threads") => {
            let n: usize = args[2].parse().unwrap();
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    std::thread::Builder::new()
                        .name(format!("worker-{i}"))
                        .spawn(move || {
                            // Worker 0 exits early; the others work longer.
                            let rounds = if i == 0 { 10 } else { 3000 * i };
                            measured(&format!("worker-{i}"), || work(i as u64 + 7, rounds))
                        })
                        .unwrap()
                })
                .collect();
            let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            let cache: HashMap<u64, String> = (0..100).map(|i| (i, i.to_string())).collect();
            memscope_std::track!(cache);
            // Main keeps working after the workers exited, so their streams
            // are closed by the writer thread, not the final flush.
            let more = measured("main", || work(99, 2000));
            std::thread::sleep(std::time::Duration::from_millis(20));
            println!("done {} {}", total + more, cache.len());
        }
        Some("sequential") => {
            // One thread after another: each exits before the next starts,
            // so their slots (and rings) are reused.
            // `sequential N [ROUNDS]`: ROUNDS of work per thread (50 unless given).
            let n: usize = args[2].parse().unwrap();
            let rounds: usize = args.get(3).map_or(50, |r| r.parse().unwrap());
            for i in 0..n {
                std::thread::Builder::new()
                    .name(format!("seq-{i}"))
                    .spawn(move || measured(&format!("seq-{i}"), || work(i as u64 + 11, rounds)))
                    .unwrap()
                    .join()
                    .unwrap();
            }
        }
        Some("panic-main") => {
            let h = std::thread::Builder::new()
                .name("worker".into())
                .spawn(|| measured("worker", || work(5, 500)))
                .unwrap();
            h.join().unwrap();
            let v = vec![1u8; 100];
            std::hint::black_box(&v);
            panic!("deliberate panic in main");
        }
        Some("exit-from-worker") => {
            // Busy threads that are still running when the process exits.
            let (started_tx, started) = std::sync::mpsc::channel();
            for i in 0..3 {
                let started_tx = started_tx.clone();
                std::thread::Builder::new()
                    .name(format!("spinner-{i}"))
                    .spawn(move || {
                        std::hint::black_box(work(i + 1, 10));
                        started_tx.send(()).unwrap();
                        loop {
                            std::hint::black_box(work(i + 1, 100));
                        }
                    })
                    .unwrap();
            }
            for _ in 0..3 {
                started.recv().unwrap();
            }
            let h = std::thread::Builder::new()
                .name("exiter".into())
                .spawn(|| {
                    measured("exiter", || work(3, 2000));
                    std::process::exit(0);
                })
                .unwrap();
            h.join().unwrap();
            unreachable!("the exiter ends the process");
        }
        _ => {
            eprintln!("usage: std_child threads N | exit-from-worker");
            std::process::exit(2);
        }
    }
}
