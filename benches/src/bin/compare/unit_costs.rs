//! The unit costs the issue names, measured on this machine in this process:
//! a `rdtsc`, an `lfence; rdtsc`, and a System alloc/free pair (64 B).
//! Best of several batches, so a loaded machine inflates them less.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Instant;

fn best_ns(iters: u64, mut f: impl FnMut()) -> f64 {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// (label, ns) pairs.
pub fn measure() -> Vec<(&'static str, f64)> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc and lfence exist on every x86_64 CPU.
        v.push((
            "rdtsc",
            best_ns(2_000_000, || unsafe {
                black_box(core::arch::x86_64::_rdtsc());
            }),
        ));
        // SAFETY: as above.
        v.push((
            "lfence; rdtsc",
            best_ns(2_000_000, || unsafe {
                core::arch::x86_64::_mm_lfence();
                black_box(core::arch::x86_64::_rdtsc());
            }),
        ));
    }
    v.push((
        "Instant::now()",
        best_ns(2_000_000, || {
            black_box(Instant::now());
        }),
    ));
    let layout = Layout::from_size_align(64, 8).expect("valid layout");
    v.push((
        "System alloc + free, 64 B",
        best_ns(2_000_000, || {
            // SAFETY: non-zero layout; the block is freed with the same layout.
            unsafe {
                let p = System.alloc(layout);
                System.dealloc(black_box(p), layout);
            }
        }),
    ));
    v
}
