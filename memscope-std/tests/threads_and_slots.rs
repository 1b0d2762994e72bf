//! memscope-std's per-thread state under threads that come and go: slots
//! claimed, released at thread exit and reused by later threads, blocks freed
//! by another thread than the one that allocated them, and a third thread
//! summing everybody's counters (`stats()`) meanwhile.
//!
//! Small enough to run under Miri, which is the point: Miri's data-race
//! detector and weak-memory emulation check the real slot registry, the
//! thread-exit hand-over and the counters' single-writer stores
//! (`cargo +nightly miri test -p memscope-std --test threads_and_slots`, about
//! a minute). No recording: that needs the module scan and the writer thread,
//! which Miri cannot run.

use memscope_std::testing;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

const ROUNDS: usize = if cfg!(miri) { 2 } else { 20 };
const THREADS: usize = 3;
const BLOCKS: usize = if cfg!(miri) { 20 } else { 2000 };

#[test]
fn threads_that_exit_free_each_others_blocks_and_are_counted_exactly() {
    let before = memscope_std::stats();
    let stop = Arc::new(AtomicBool::new(false));
    // The third party: sums every slot's counters while threads come and go
    // (what it sums is a moment's values; what is checked here is that
    // walking the registry and reading the counters races with nothing,
    // which Miri verifies).
    // It says when it has read once, and the rounds start only then: that
    // it overlaps with them must not depend on when the scheduler runs it.
    let (reading, reader_started) = mpsc::channel();
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::hint::black_box(memscope_std::stats());
            reading.send(()).unwrap();
            let mut reads = 1u64;
            // Relaxed: a stop flag.
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(memscope_std::stats());
                reads += 1;
                std::thread::yield_now();
            }
            reads
        })
    };
    reader_started.recv().unwrap();
    let mut sent_total = 0;
    for _ in 0..ROUNDS {
        // Each thread sends its blocks to the next one, which frees them;
        // every thread's own calls are counted exactly by `testing::count`.
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel()).unzip();
        let mut txs: Vec<Option<mpsc::Sender<Box<[u8; 24]>>>> = txs.into_iter().map(Some).collect();
        let threads: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let tx = txs[(i + 1) % THREADS].take().unwrap();
                std::thread::spawn(move || {
                    let (freed, c) = testing::count(|| {
                        for k in 0..BLOCKS {
                            tx.send(Box::new([k as u8; 24])).unwrap();
                        }
                        drop(tx);
                        // Counting drops (frees) each block as it arrives.
                        rx.iter().count()
                    });
                    (freed, c)
                })
            })
            .collect();
        for t in threads {
            let (freed, c) = t.join().unwrap();
            assert_eq!(freed, BLOCKS, "every block of the neighbour arrived");
            // Its own BLOCKS boxes (and the channel's internal blocks).
            assert!(c.allocs >= BLOCKS as u64, "{c:?}");
            // The neighbour's boxes it freed, at least.
            assert!(c.deallocs >= BLOCKS as u64, "{c:?}");
            sent_total += BLOCKS as u64;
        }
    }
    // Relaxed: a stop flag.
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    println!("stats() read {reads} times while the threads came and went");
    let after = memscope_std::stats();
    // Exited threads' counters were folded into the shared totals, not lost.
    assert!((after.allocs - before.allocs) as u64 >= sent_total);
    assert!((after.deallocs - before.deallocs) as u64 >= sent_total);
}
