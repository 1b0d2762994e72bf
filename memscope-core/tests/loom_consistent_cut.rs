//! Loom model of memscope-std's consistent cut: how the final flush drains a
//! thread that is still recording and writes an end record whose totals match
//! exactly the bytes it drained (`memscope-std/src/record.rs`: `enter` /
//! `leave` around each record; `writer.rs`: `Writer::cut`).
//!
//! The ring is memscope-core's own (loom's atomics and cells under
//! `--cfg loom`); the seqlock around it is replicated from memscope-std with
//! the same orderings (memscope-std's slot cannot run under loom as written:
//! see tests/loom_slot_registry.rs). Change both together.
//!
//! Run with (about 25 s, release mode):
//! `RUSTFLAGS="--cfg loom" cargo test -p memscope-core --release --test loom_consistent_cut`
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use memscope_core::Ring;

/// What a recording thread shares: the seqlock, one of the stream's counters
/// (single writer: load + store, as memscope-std's `Counter`) and the ring.
struct Slot {
    seq: AtomicUsize,
    allocs: AtomicU64,
    ring: Ring<8>,
}

impl Slot {
    /// One event, as `record::event` writes it: counter and one byte in the
    /// ring inside the seqlock window. A full ring loses the byte (and would
    /// count it as lost; here the ring never fills).
    fn record(&self, byte: u8) {
        // `enter`. Relaxed: only this thread writes `seq`.
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        // Release fence: the odd value is visible before the window's writes.
        fence(Ordering::Release);
        // `Counter::add`. Relaxed: ordered by the seqlock.
        self.allocs
            .store(self.allocs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: this thread is the ring's only producer.
        assert!(unsafe { self.ring.push(&[&[byte]]) });
        // `leave`. Release: the window's writes happen before it is seen closed.
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// `Writer::cut`: the counter and the bytes drained at one instant
    /// between two records; retries while a record is being written.
    fn cut(&self) -> (u64, Vec<u8>) {
        loop {
            // Acquire: pairs with the owner's Release closing its last window.
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                thread::yield_now();
                continue;
            }
            // Relaxed: validated by the re-check of `seq` below.
            let allocs = self.allocs.load(Ordering::Relaxed);
            let mut drained = None;
            // SAFETY: this thread is the ring's only consumer.
            unsafe {
                self.ring.read(|a, b| {
                    // Acquire fence: the reads above happen before the re-check.
                    fence(Ordering::Acquire);
                    // Relaxed: ordered by the fence.
                    if self.seq.load(Ordering::Relaxed) != before {
                        return 0;
                    }
                    drained = Some([a, b].concat());
                    a.len() + b.len()
                })
            };
            if let Some(bytes) = drained {
                return (allocs, bytes);
            }
            thread::yield_now();
        }
    }
}

/// A thread records two events while the final flush cuts its stream and
/// a third thread reads its counter (`stats()`): the cut's count always
/// equals the events whose bytes it drained, which are a prefix of what was
/// recorded, and the reader never sees the counter go backwards.
#[test]
fn a_cut_of_a_running_thread_matches_its_counts_exactly() {
    let mut builder = loom::model::Builder::new();
    // `LOOM_MAX_PREEMPTIONS` set (read by `Builder::new`) wins, for longer runs.
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(|| {
        let slot = Arc::new(Slot {
            seq: AtomicUsize::new(0),
            allocs: AtomicU64::new(0),
            ring: Ring::new(),
        });
        let owner = {
            let slot = slot.clone();
            thread::spawn(move || {
                for byte in 1..=2 {
                    slot.record(byte);
                }
            })
        };
        let reader = {
            let slot = slot.clone();
            thread::spawn(move || {
                // Relaxed: as `stats()` reads the counters.
                let first = slot.allocs.load(Ordering::Relaxed);
                let second = slot.allocs.load(Ordering::Relaxed);
                assert!(second >= first, "counter went from {first} to {second}");
            })
        };
        let flush = {
            let slot = slot.clone();
            thread::spawn(move || slot.cut())
        };
        let (allocs, bytes) = flush.join().unwrap();
        assert_eq!(allocs as usize, bytes.len(), "end totals vs drained bytes");
        assert_eq!(bytes, (1..=allocs as u8).collect::<Vec<_>>());
        owner.join().unwrap();
        reader.join().unwrap();
    });
}
