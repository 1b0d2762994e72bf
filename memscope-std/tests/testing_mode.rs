//! `testing::count` counts only the calling thread, so these tests give exact
//! numbers while libtest runs them in parallel, and `stats()` sees them all.

use memscope_std::testing;
use std::collections::HashMap;

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

#[test]
fn a_vec_with_capacity_is_one_allocation() {
    for _ in 0..200 {
        let (_, c) = testing::count(|| {
            let v: Vec<u64> = Vec::with_capacity(100);
            drop(v);
        });
        c.assert_allocs(1).assert_no_leaks();
        assert_eq!(c.deallocs, 1);
        assert_eq!(c.peak_bytes, 800);
    }
}

#[test]
fn growth_by_push_reallocates() {
    for _ in 0..200 {
        let (len, c) = testing::count(|| {
            let mut v = Vec::new();
            for i in 0..1000u32 {
                v.push(i);
            }
            v.len()
        });
        assert_eq!(len, 1000);
        assert_eq!(c.allocs, 1);
        assert!(c.reallocs > 3, "{c:?}");
        assert_eq!(c.peak_bytes, 4096, "capacity 1024 u32 at the end: {c:?}");
        c.assert_no_leaks();
    }
}

#[test]
fn a_leak_is_reported() {
    for _ in 0..200 {
        let (_, c) = testing::count(|| {
            let kept = Box::leak(Box::new([0u8; 48]));
            std::hint::black_box(kept);
        });
        assert_eq!(
            (c.allocs, c.deallocs, c.net_bytes, c.net_blocks),
            (1, 0, 48, 1)
        );
        let r = std::panic::catch_unwind(|| {
            c.assert_no_leaks();
        });
        assert!(r.is_err(), "assert_no_leaks must fail on a leak");
    }
}

#[test]
fn nested_counts_add_up_and_other_threads_do_not_count() {
    let mut inner = None;
    let mut spawn = None;
    let (_, outer) = testing::count(|| {
        let a = vec![1u8; 10];
        inner = Some(
            testing::count(|| {
                let m: HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
                drop(m);
            })
            .1,
        );
        // A spawned thread allocates on its own counters, not ours (the spawn
        // itself allocates on ours; its thread frees some of that).
        spawn = Some(
            testing::count(|| {
                std::thread::spawn(|| vec![0u8; 1 << 20]).join().unwrap();
            })
            .1,
        );
        drop(a);
    });
    let (inner, spawn) = (inner.unwrap(), spawn.unwrap());
    inner.assert_no_leaks();
    assert!(inner.allocs >= 1);
    assert!(
        spawn.peak_bytes < 1 << 20,
        "the thread's 1 MiB is not ours: {spawn:?}"
    );
    // The outer block saw its own Vec plus exactly what the inner blocks saw.
    assert_eq!(outer.allocs, 1 + inner.allocs + spawn.allocs, "{outer:?}");
    assert_eq!(
        outer.deallocs,
        1 + inner.deallocs + spawn.deallocs,
        "{outer:?}"
    );
    assert_eq!(
        outer.net_bytes,
        inner.net_bytes + spawn.net_bytes,
        "{outer:?}"
    );
    assert!(outer.peak_bytes >= 10 + inner.peak_bytes, "{outer:?}");
}

#[test]
fn stats_see_every_thread() {
    let before = memscope_std::stats();
    let held: Vec<Vec<u8>> = (0..4)
        .map(|_| std::thread::spawn(|| vec![7u8; 100_000]).join().unwrap())
        .collect();
    let after = memscope_std::stats();
    assert!(after.allocs >= before.allocs + 4);
    assert!(after.allocated_bytes >= before.allocated_bytes + 400_000);
    assert!(after.peak_bytes >= 400_000, "{after:?}");
    drop(held);
}
