//! Stress for memscope-std, for tests/std_stress.rs: `N` threads in a ring,
//! each allocating `M` blocks and sending every one to the next thread
//! through a bounded channel, which frees it. So each block is allocated on
//! one thread's stream and freed on another's, while all threads allocate,
//! free and wake the writer at once.
//!
//! Block sizes are `3001 + 64 * thread + k % 64` bytes: sizes nothing else in
//! the program uses, and a block's size says which thread allocated it, so
//! the test can check from the trace alone that each block was freed on the
//! next thread's stream. Prints a `counted` line per thread (see
//! memscope_tests::counting), a `sizes <thread> <smallest> <largest>` line per
//! thread (the sizes it used), then `blocks <total> bytes <total>`.
//!
//! Usage: `std_stress_child N M`

use memscope_tests::counting::{self, Counted};
use std::alloc::System;
use std::hint::black_box;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};

#[global_allocator]
static GLOBAL: Counted<memscope_std::MemScope<System>> =
    Counted(memscope_std::MemScope::new(System));

/// Distinct sizes per thread.
const SIZES: usize = 64;

pub fn block_size(thread: usize, k: usize) -> usize {
    3001 + SIZES * thread + k % SIZES
}

/// Frees whatever arrived; returns whether the sender is gone.
fn free_arrived(rx: &Receiver<Vec<u8>>, freed: &mut u64) -> bool {
    loop {
        match rx.try_recv() {
            Ok(block) => {
                *freed += block.len() as u64;
                drop(black_box(block));
            }
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

fn worker(i: usize, m: usize, tx: SyncSender<Vec<u8>>, rx: Receiver<Vec<u8>>) -> u64 {
    let mut freed = 0;
    for k in 0..m {
        let mut block = black_box(vec![k as u8; block_size(i, k)]);
        // Never block on a full channel while our own inbox fills: that
        // could deadlock the ring of threads.
        loop {
            match tx.try_send(block) {
                Ok(()) => break,
                Err(TrySendError::Full(b)) => {
                    block = b;
                    free_arrived(&rx, &mut freed);
                    std::thread::yield_now();
                }
                Err(TrySendError::Disconnected(_)) => unreachable!("receivers outlive senders"),
            }
        }
        free_arrived(&rx, &mut freed);
    }
    drop(tx);
    while !free_arrived(&rx, &mut freed) {
        std::thread::yield_now();
    }
    freed
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N M"))
        .collect();
    let [n, m] = args[..] else {
        eprintln!("usage: std_stress_child N M");
        std::process::exit(2);
    };
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| sync_channel::<Vec<u8>>(64)).unzip();
    // Thread i sends to thread i + 1: it gets the sender of channel i + 1.
    let mut txs: Vec<Option<SyncSender<Vec<u8>>>> = txs.into_iter().map(Some).collect();
    let threads: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let tx = txs[(i + 1) % n].take().unwrap();
            counting::spawn(&format!("stress-{i}"), i + 1, move || worker(i, m, tx, rx))
        })
        .collect();
    let freed: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    for i in 0..n {
        counting::print(&format!("stress-{i}"), i + 1);
    }
    for i in 0..n {
        let sizes = (0..m).map(|k| block_size(i, k));
        let (lo, hi) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
        println!("sizes stress-{i} {lo} {hi}");
    }
    let bytes: u64 = (0..n)
        .flat_map(|i| (0..m).map(move |k| block_size(i, k) as u64))
        .sum();
    assert_eq!(freed, bytes, "every block arrived and was freed");
    println!("blocks {} bytes {bytes}", n * m);
    println!("done");
}
