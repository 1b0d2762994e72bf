//! Allocation assertions for tests, per thread, so tests running in parallel
//! do not see each other's allocations.
//!
//! [`count`] runs a closure and counts the allocator calls the **calling
//! thread** makes meanwhile (threads it spawns are not counted). It works with
//! or without a recording, and needs [`MemScope`](crate::MemScope) as the
//! global allocator (it panics with a clear message otherwise, instead of
//! passing with zeros).
//!
//! ```
//! # #[global_allocator]
//! # static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();
//! use memscope_std::testing;
//!
//! let (sum, counts) = testing::count(|| {
//!     let v: Vec<u64> = (0..1000).collect();
//!     v.iter().sum::<u64>()
//! });
//! assert_eq!(sum, 499_500);
//! counts.assert_allocs(1).assert_no_leaks();
//! assert_eq!(counts.peak_bytes, 8000);
//! ```

use crate::event::Event;
use std::cell::Cell;

/// The calling thread's counters while a [`count`] runs.
pub(crate) struct TestCounters {
    depth: Cell<u32>,
    now: Cell<Counts>,
}

impl TestCounters {
    pub(crate) const fn new() -> Self {
        TestCounters {
            depth: Cell::new(0),
            now: Cell::new(Counts::ZERO),
        }
    }

    #[inline(always)]
    pub(crate) fn active(&self) -> bool {
        self.depth.get() > 0
    }

    #[inline]
    pub(crate) fn count(&self, ev: Event) {
        let mut c = self.now.get();
        let (bytes, blocks) = ev.net();
        match ev {
            Event::Alloc { .. } => c.allocs += 1,
            Event::Dealloc { .. } => c.deallocs += 1,
            Event::Realloc { .. } => c.reallocs += 1,
        }
        if ev.failed() {
            c.failed += 1;
        }
        if bytes >= 0 {
            c.allocated_bytes += bytes as u64;
        } else {
            c.freed_bytes += bytes.unsigned_abs();
        }
        c.net_bytes += bytes;
        c.net_blocks += blocks;
        if c.net_bytes > c.peak_bytes as i64 {
            c.peak_bytes = c.net_bytes as u64;
        }
        self.now.set(c);
    }
}

/// What one thread allocated during a [`count`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `alloc` + `alloc_zeroed` calls.
    pub allocs: u64,
    /// `dealloc` calls.
    pub deallocs: u64,
    /// `realloc` calls.
    pub reallocs: u64,
    /// Calls that returned null.
    pub failed: u64,
    /// Bytes handed out (a realloc counts its growth).
    pub allocated_bytes: u64,
    /// Bytes given back (a realloc counts its shrinkage).
    pub freed_bytes: u64,
    /// Live bytes at the end minus at the start: blocks allocated and not
    /// freed inside, less blocks from before that were freed inside.
    pub net_bytes: i64,
    /// The same in blocks.
    pub net_blocks: i64,
    /// Highest `net_bytes` reached at any moment inside (exact: one thread).
    pub peak_bytes: u64,
}

impl Counts {
    const ZERO: Counts = Counts {
        allocs: 0,
        deallocs: 0,
        reallocs: 0,
        failed: 0,
        allocated_bytes: 0,
        freed_bytes: 0,
        net_bytes: 0,
        net_blocks: 0,
        peak_bytes: 0,
    };

    /// Panics unless exactly `n` allocations (alloc + alloc_zeroed) happened.
    #[track_caller]
    pub fn assert_allocs(&self, n: u64) -> &Self {
        assert_eq!(
            self.allocs, n,
            "allocations: expected {n}, counted {self:?}"
        );
        self
    }

    /// Panics if more than `n` allocations happened.
    #[track_caller]
    pub fn assert_allocs_at_most(&self, n: u64) -> &Self {
        assert!(
            self.allocs <= n,
            "allocations: expected at most {n}, counted {self:?}"
        );
        self
    }

    /// Panics unless no allocator call at all happened.
    #[track_caller]
    pub fn assert_no_allocations(&self) -> &Self {
        assert!(
            self.allocs + self.reallocs + self.deallocs == 0,
            "expected no allocator call, counted {self:?}"
        );
        self
    }

    /// Panics if the peak of live bytes exceeded `bytes`.
    #[track_caller]
    pub fn assert_peak_at_most(&self, bytes: u64) -> &Self {
        assert!(
            self.peak_bytes <= bytes,
            "peak: expected at most {bytes} bytes, counted {self:?}"
        );
        self
    }

    /// Panics if blocks allocated inside were left live (net bytes or blocks
    /// above zero).
    #[track_caller]
    pub fn assert_no_leaks(&self) -> &Self {
        assert!(
            self.net_bytes <= 0 && self.net_blocks <= 0,
            "leak: {} bytes in {} blocks still live, counted {self:?}",
            self.net_bytes,
            self.net_blocks
        );
        self
    }
}

/// Runs `f` and counts the calling thread's allocator calls during it.
/// Nested calls each get their own counts (the outer one includes the inner).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, Counts) {
    let outer = crate::local::with(|l| {
        let t = &l.test;
        t.depth.set(t.depth.get() + 1);
        t.now.replace(Counts::ZERO)
    });
    // Restores the outer counts even if `f` panics.
    struct Restore(Counts);
    impl Drop for Restore {
        fn drop(&mut self) {
            crate::local::with(|l| {
                let t = &l.test;
                t.depth.set(t.depth.get() - 1);
                t.now.set(self.0.then(t.now.get()));
            });
        }
    }
    let restore = Restore(outer);
    assert_tracked();
    let r = f();
    let inner = crate::local::with(|l| l.test.now.get());
    drop(restore);
    (r, inner)
}

impl Counts {
    /// `self` followed by `next`.
    fn then(self, next: Counts) -> Counts {
        Counts {
            allocs: self.allocs + next.allocs,
            deallocs: self.deallocs + next.deallocs,
            reallocs: self.reallocs + next.reallocs,
            failed: self.failed + next.failed,
            allocated_bytes: self.allocated_bytes + next.allocated_bytes,
            freed_bytes: self.freed_bytes + next.freed_bytes,
            net_bytes: self.net_bytes + next.net_bytes,
            net_blocks: self.net_blocks + next.net_blocks,
            peak_bytes: self
                .peak_bytes
                .max((self.net_bytes + next.peak_bytes as i64).max(0) as u64),
        }
    }
}

/// Panics when `MemScope` is not the global allocator: counts would all be 0.
fn assert_tracked() {
    // Our probe, which must show up; then the counters restart at zero.
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    let seen = crate::local::with(|l| l.test.now.replace(Counts::ZERO));
    assert!(
        seen.allocs == 1 && seen.deallocs == 1,
        "memscope_std::testing needs `#[global_allocator] static GLOBAL: \
         memscope_std::MemScope = memscope_std::MemScope::system();` in the test crate"
    );
}
