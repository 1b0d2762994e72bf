//! The recording path must not allocate: every allocator call of the program
//! reaches the inner allocator exactly once, and memscope adds none of its
//! own while recording events, new stacks, names and scopes.
//!
//! The inner allocator counts its calls per thread and refuses (returns null)
//! any call made while it is already inside a call on the same thread, which
//! would be recursion through the global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Strict;

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    static REFUSED: Cell<u64> = const { Cell::new(0) };
}

fn enter() -> bool {
    if INSIDE.with(|i| i.replace(true)) {
        REFUSED.with(|r| r.set(r.get() + 1));
        return false;
    }
    CALLS.with(|c| c.set(c.get() + 1));
    true
}

fn leave() {
    INSIDE.with(|i| i.set(false));
}

// SAFETY: forwards to `System` or returns null (a legal allocation failure).
unsafe impl GlobalAlloc for Strict {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !enter() {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(l) };
        leave();
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if !enter() {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(l) };
        leave();
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // A free cannot fail: count it, flag re-entry, and do it.
        let ok = enter();
        unsafe { System.dealloc(p, l) };
        if ok {
            leave();
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if !enter() {
            return std::ptr::null_mut();
        }
        let q = unsafe { System.realloc(p, l, n) };
        leave();
        q
    }
}

#[global_allocator]
static GLOBAL: memscope_std::MemScope<Strict> = memscope_std::MemScope::new(Strict);

fn calls() -> u64 {
    CALLS.with(Cell::get)
}

#[inline(never)]
fn site(depth: u32, n: usize) -> Vec<u8> {
    // Different call depths give different stacks: new Stack records.
    if depth == 0 {
        vec![1u8; n]
    } else {
        site(depth - 1, n + 1)
    }
}

#[test]
fn recording_adds_no_allocator_call_and_no_recursion() {
    let path = std::env::temp_dir().join(format!("memscope-reentrancy-{}.bin", std::process::id()));
    let rec = memscope_std::start(memscope_std::Config::new(&path).stacks(32)).unwrap();
    // This thread's first recorded call opens its stream (memscope's own
    // allocations, passed through): not part of what is measured.
    drop(Box::new(0u8));

    let before = calls();
    let mut expected = 0;
    for i in 0..2000 {
        let v = site(i % 40, 8 + i as usize);
        memscope_std::track!(v);
        {
            memscope_std::track_scope!("phase");
            let mut w = Vec::new();
            for j in 0..50 {
                w.push(j); // a few reallocs
            }
            expected += 1; // w's alloc
            expected += w.capacity().trailing_zeros() as u64 - 2; // reallocs 4->8->...->64
            expected += 1; // w's dealloc
        }
        drop(v);
        expected += 2;
    }
    let seen = calls() - before;
    assert_eq!(
        seen, expected,
        "the inner allocator saw calls memscope made itself"
    );
    assert_eq!(REFUSED.with(Cell::get), 0, "re-entered the allocator");
    rec.finish().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let _ = std::fs::remove_file(&path);
    assert!(size > 2000 * 4, "the events were recorded ({size} bytes)");
}
