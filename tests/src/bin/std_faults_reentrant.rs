//! A traced program whose inner allocator itself allocates through the
//! global allocator (as a logging or pooling allocator might), for
//! tests/std_faults.rs: memscope sees calls arrive from inside its own inner
//! call, and from inside its own bookkeeping (claiming a thread's slot and
//! ring goes to the inner allocator too).
//!
//! Global allocator: `Counted<MemScope<Reentrant>>`. `Reentrant` serves every
//! call from `System`, but first, once per call (not recursively), allocates
//! and frees a `Vec` of [`NESTED_SIZE`] bytes through the global allocator.
//!
//! Usage: `std_faults_reentrant`

use memscope_tests::counting::{self, Counted};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the nested allocation (a size nothing else here uses).
const NESTED_SIZE: usize = 13;

static NESTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

struct Reentrant;

impl Reentrant {
    fn nest(&self) {
        if INSIDE.with(|i| i.replace(true)) {
            return;
        }
        // Through the global allocator: memscope, then this allocator again
        // (which then goes straight to `System`).
        let v: Vec<u8> = black_box(Vec::with_capacity(NESTED_SIZE));
        drop(v);
        // Relaxed: a statistic read after every thread was joined.
        NESTED.fetch_add(1, Ordering::Relaxed);
        INSIDE.with(|i| i.set(false));
    }
}

// SAFETY: every call is served by `System` with the caller's arguments; the
// nested allocation is a separate, complete alloc/free pair.
unsafe impl GlobalAlloc for Reentrant {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.nest();
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.nest();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.nest();
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        self.nest();
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counted<memscope_std::MemScope<Reentrant>> =
    Counted(memscope_std::MemScope::new(Reentrant));

fn work(seed: usize) -> usize {
    let mut v: Vec<String> = Vec::new();
    for i in 0..2000 {
        v.push(format!("{seed}-{i}"));
        if v.len() > 30 {
            v.swap_remove(i % 30);
        }
    }
    v.iter().map(String::len).sum()
}

fn main() {
    let threads: Vec<_> = (1..=3)
        .map(|label| counting::spawn(&format!("reentrant-{label}"), label, move || work(label)))
        .collect();
    for t in threads {
        black_box(t.join().unwrap());
    }
    for label in 1..=3 {
        counting::print(&format!("reentrant-{label}"), label);
    }
    println!("nested {}", NESTED.load(Ordering::Relaxed));
    println!("done");
}
