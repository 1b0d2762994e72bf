//! The allocation workload every memscope firmware example runs, so the
//! Cortex-M4 and Cortex-M0 traces (and their snapshot tests) cover the same
//! cases: `Vec` growth (reallocs), `String`, `Box`, `BTreeMap` nodes, an
//! allocation from an interrupt handler, a deliberate leak and deliberate
//! fragmentation.
//!
//! Everything except the leak is freed before [`run`] returns, so at the end
//! the live heap is exactly [`LEAKED_BYTES`] in [`LEAKED_BLOCKS`] blocks.
//! [`qemu`] is the rest of the QEMU examples' `main`, the same for both.
#![no_std]

extern crate alloc;

pub mod qemu;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

/// Bytes the workload leaks on purpose (a 48-byte `Box` and a 20-byte `Vec`).
pub const LEAKED_BYTES: usize = 48 + 20;
/// Blocks the workload leaks on purpose.
pub const LEAKED_BLOCKS: usize = 2;

/// How often the interrupt handler allocated.
static FROM_INTERRUPT: AtomicU32 = AtomicU32::new(0);

/// Call from an interrupt handler: allocates and frees a small block there,
/// which memscope records like any other (its critical section keeps the
/// order right).
pub fn from_interrupt() {
    let b = Box::new([FROM_INTERRUPT.load(Ordering::Relaxed); 6]);
    core::hint::black_box(&b);
    // Load and store, not fetch_add: a Cortex-M0 has no read-modify-write
    // atomics, and this handler is the only writer (it cannot preempt
    // itself). Relaxed: the count is read after the handler ran, on one core.
    let n = FROM_INTERRUPT.load(Ordering::Relaxed);
    FROM_INTERRUPT.store(n + 1, Ordering::Relaxed);
}

/// How many times [`from_interrupt`] ran.
pub fn interrupt_allocations() -> u32 {
    // Relaxed: see `from_interrupt`.
    FROM_INTERRUPT.load(Ordering::Relaxed)
}

/// Runs the workload. `interrupt` must make the interrupt handler that calls
/// [`from_interrupt`] run (for example by pending SysTick); it is called
/// between steps, with allocations live.
pub fn run(mut interrupt: impl FnMut()) {
    // Vec growth: a few reallocs as capacity doubles, then a shrink.
    let mut v: Vec<u32> = Vec::new();
    for i in 0..40 {
        v.push(i);
    }
    v.truncate(10);
    v.shrink_to_fit();

    // String built by formatting (grows through realloc too).
    let mut s = String::new();
    for i in 0..6 {
        let _ = write!(s, "item {i}; ");
    }

    interrupt();

    // Box of an array and a boxed trait object. black_box: LLVM may remove
    // an allocation whose pointer never escapes, depending on what it inlines
    // (it did once `run` and its caller shared a crate).
    let b = core::hint::black_box(Box::new([7u8; 64]));
    let d: Box<dyn Fn(u32) -> u32> = core::hint::black_box(Box::new(move |x| x + u32::from(b[0])));

    // BTreeMap: enough keys for the root to split into several nodes.
    let mut m = BTreeMap::new();
    for i in 0..24u32 {
        m.insert(i, d(i));
    }
    for i in (0..24u32).step_by(3) {
        m.remove(&i);
    }

    interrupt();

    // Deliberate fragmentation: 12 blocks of 32 bytes, every other one
    // freed, then a 96-byte block that none of the 32-byte holes can take.
    let mut blocks: Vec<Option<Box<[u8; 32]>>> = (0..12).map(|i| Some(Box::new([i; 32]))).collect();
    for slot in blocks.iter_mut().step_by(2) {
        *slot = None;
    }
    let big = Box::new([1u8; 96]);

    interrupt();

    // Deliberate leak: never freed.
    // (black_box: the compiler may otherwise elide an allocation it can
    // see is never used.)
    core::hint::black_box(Box::leak(core::hint::black_box(Box::new([0xAAu8; 48]))));
    let lost: Vec<u8> = core::hint::black_box(Vec::with_capacity(20));
    core::mem::forget(lost);

    core::hint::black_box((&v, &s, &m, &blocks, &big));
}

/// Prints memscope's live statistics, and the inner heap's own `used`/`free`
/// figures when it has them, over semihosting in the `key=value` form the
/// QEMU tests parse.
pub fn print_stats(s: &memscope_core::StatsSnapshot, heap: Option<(usize, usize)>) {
    cortex_m_semihosting::hprintln!(
        "memscope allocs={} deallocs={} reallocs={} failed={} lost={} current_bytes={} current_blocks={} peak_bytes={} allocated_bytes={} freed_bytes={}",
        s.allocs,
        s.deallocs,
        s.reallocs,
        s.failed,
        s.lost,
        s.current_bytes,
        s.current_blocks,
        s.peak_bytes,
        s.allocated_bytes,
        s.freed_bytes
    );
    if let Some((used, free)) = heap {
        cortex_m_semihosting::hprintln!("embedded-alloc used={} free={}", used, free);
    }
    cortex_m_semihosting::hprintln!("interrupt allocations={}", interrupt_allocations());
}

/// Waits until `drained()` says the host read everything, for at most
/// `spins` polls: without a host attached the firmware still stops.
/// Returns whether it drained.
pub fn wait_for_host(mut drained: impl FnMut() -> bool, spins: u32) -> bool {
    for _ in 0..spins {
        if drained() {
            return true;
        }
        core::hint::spin_loop();
    }
    drained()
}
