//! The churn workload of the memscope-std issue, built once per allocator
//! (one cargo feature each; none = the System baseline) by the comparison
//! harness (`cargo run --release -p memscope-benches --bin compare`).
//!
//! Usage: `workload [THREADS] [DIVISOR]` (defaults 1 and 1). Every thread runs
//! the same churn: 2M alloc/free of mixed sizes (8 B - 4 KiB) with a 1000-slot
//! live window, a 200k-entry `BTreeMap<u64, String>` built and dropped, 20k
//! `Vec<u32>` grown to 1000 elements by push; each count divided by DIVISOR
//! (the harness's callgrind runs use 10, to stay short under the emulation). The harness times the whole process from
//! outside (wait4), so start-up and each tracker's exit work count too.

#[cfg(feature = "memscope")]
#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

#[cfg(feature = "stats_alloc")]
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

#[cfg(feature = "tracking_allocator")]
#[global_allocator]
static GLOBAL: tracking_allocator::Allocator<std::alloc::System> =
    tracking_allocator::Allocator::system();

#[cfg(feature = "dhat")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

// memscope-rs's `tracking-allocator` feature installs its own
// `#[global_allocator]` (memscope_rs::GLOBAL); the workload only initialises it.

/// The least a tracking-allocator tracker does: count events and bytes
/// (what stats_alloc does), with relaxed shared atomics like its users write.
#[cfg(feature = "tracking_allocator")]
mod counting_tracker {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tracking_allocator::{AllocationGroupId, AllocationTracker};

    pub static EVENTS: AtomicU64 = AtomicU64::new(0);
    pub static BYTES: AtomicU64 = AtomicU64::new(0);

    pub struct Counting;

    impl AllocationTracker for Counting {
        fn allocated(&self, _addr: usize, size: usize, _wrapped: usize, _g: AllocationGroupId) {
            // Relaxed: independent counters read once at the end, after join.
            EVENTS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size as u64, Ordering::Relaxed);
        }
        fn deallocated(
            &self,
            _addr: usize,
            _size: usize,
            _wrapped: usize,
            _source: AllocationGroupId,
            _current: AllocationGroupId,
        ) {
            // Relaxed: as above.
            EVENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn churn(seed: u64, divisor: u64) -> u64 {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut window: Vec<Option<Vec<u8>>> = (0..1000).map(|_| None).collect();
    let mut sum = 0u64;
    for _ in 0..2_000_000 / divisor {
        let size = 8usize << (rnd() % 10); // 8 B .. 4 KiB
        let slot = (rnd() % 1000) as usize;
        let v = Vec::with_capacity(size);
        sum += v.capacity() as u64;
        window[slot] = Some(v);
    }
    drop(window);
    let mut map = std::collections::BTreeMap::new();
    for i in 0..200_000 / divisor {
        map.insert(rnd(), format!("{i}"));
    }
    sum += map.len() as u64;
    drop(map);
    for _ in 0..20_000 / divisor {
        let mut v: Vec<u32> = Vec::new();
        for j in 0..1000 {
            v.push(j);
        }
        sum += std::hint::black_box(&v).len() as u64;
    }
    sum
}

fn main() {
    #[cfg(feature = "dhat")]
    let _profiler = dhat::Profiler::new_heap();
    #[cfg(feature = "tracking_allocator")]
    {
        tracking_allocator::AllocationRegistry::set_global_tracker(counting_tracker::Counting)
            .expect("no other tracker is installed");
        tracking_allocator::AllocationRegistry::enable_tracking();
    }
    #[cfg(feature = "memscope_rs")]
    memscope_rs::init_global_tracking().expect("memscope-rs initialises once");

    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let divisor: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .filter(|&d| d > 0)
        .unwrap_or(1);
    let handles: Vec<_> = (0..threads)
        .map(|i| std::thread::spawn(move || std::hint::black_box(churn(i as u64 + 1, divisor))))
        .collect();
    let mut sum = 0u64;
    for h in handles {
        sum = sum.wrapping_add(h.join().expect("a churn thread panicked"));
    }
    // Printed so the work cannot be optimised away and runs can be compared.
    println!("checksum={sum}");
    #[cfg(feature = "memscope")]
    {
        let s = memscope_std::stats();
        println!(
            "memscope events={} lost={}",
            s.allocs + s.deallocs + s.reallocs,
            s.lost
        );
    }
    #[cfg(feature = "tracking_allocator")]
    println!(
        "tracking-allocator events={}",
        counting_tracker::EVENTS.load(std::sync::atomic::Ordering::Relaxed)
    );
}
