//! Stress test of memscope-std: `N` threads x `M` blocks, each block freed by
//! another thread than the one that allocated it (src/bin/std_stress_child.rs),
//! with exact totals from the decoded trace against the child's own counts.

use memscope_tests::trace;
use memscope_tests::{parse_counted, scratch_dir};
use std::process::Command;

/// Threads and blocks per thread; `MEMSCOPE_STRESS=THREADS,BLOCKS` for a
/// longer run (docs/RELIABILITY.md gives one).
fn size() -> (usize, usize) {
    match std::env::var("MEMSCOPE_STRESS") {
        Ok(v) => {
            let (t, b) = v.split_once(',').expect("MEMSCOPE_STRESS=THREADS,BLOCKS");
            (t.parse().unwrap(), b.parse().unwrap())
        }
        Err(_) => (8, 20_000),
    }
}

/// Block sizes the child's workers use, and nothing else in it.
fn is_block(size: u64) -> bool {
    (3001..3001 + 64).contains(&size)
}

#[test]
fn threads_freeing_each_others_blocks_add_up_exactly() {
    let (threads, blocks_each) = size();
    let dir = scratch_dir("stress");
    let out = dir.join("stress.bin");
    let o = Command::new(env!("CARGO_BIN_EXE_std_stress_child"))
        .args([threads.to_string(), blocks_each.to_string()])
        .env("MEMSCOPE_OUT", &out)
        .env("MEMSCOPE_STACKS", "8")
        .output()
        .unwrap();
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{:?}\n{stdout}", o.status);
    let t = trace::decode(&std::fs::read(&out).unwrap());
    t.assert_complete();
    let counted = parse_counted(&stdout);
    assert_eq!(counted.len(), threads);
    // Every call of every worker: recorded, lost, or untracked. Exact.
    t.assert_accounts_for(&counted);

    let mut lost_any = false;
    let mut blocks = 0;
    for (name, _) in &counted {
        let s = t.stream(name);
        let lost = s.end.unwrap().lost;
        lost_any |= lost > 0;
        let (a, f) = s
            .by_size
            .iter()
            .filter(|(size, _)| is_block(**size))
            .fold((0, 0), |(a, f), (_, (x, y))| (a + x, f + y));
        blocks += a;
        if lost == 0 {
            // Each worker allocates its M blocks and frees its neighbour's M.
            assert_eq!((a, f), (blocks_each as u64, blocks_each as u64), "{name}");
        }
        println!("{name}: recorded {}, lost {lost}", s.recorded());
    }
    if !lost_any {
        assert_eq!(blocks, (threads * blocks_each) as u64);
        // Every block was freed, on another stream than its own.
        for (size, balance) in &t.balance_by_size {
            if is_block(*size) {
                assert_eq!(*balance, 0, "size {size}: blocks left live");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
