//! Loom model of memscope-std's slot registry (`memscope-std/src/slot.rs`):
//! the push-only lock-free list of per-thread slots, claiming a free slot or
//! publishing a new one, the owner handing its slot back at thread exit, and
//! the writer thread draining, resetting and freeing exited slots for reuse.
//!
//! slot.rs itself cannot run under loom as it is (its list head is a `static`
//! and its slots are built by `const fn`s, which loom's atomics are not), so
//! this file **replicates its protocol**: the same states, the same
//! operations, the same memory orderings, on loom's atomics and cells. A
//! change of an ordering or of the claim/release steps in slot.rs, local.rs
//! (`release_slot`), session.rs (`thread_exited`) or writer.rs (`drain_all`)
//! must be made here too.
//!
//! Run with (about half a minute, release mode):
//! `RUSTFLAGS="--cfg loom" cargo test -p memscope-core --release --test loom_slot_registry`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::ptr;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const EXITED: u8 = 2;

/// A slot: `work` stands for everything its owner writes (counters, ring,
/// encoder) and the writer reads and resets after the owner left.
struct Slot {
    next: UnsafeCell<*const Slot>,
    state: AtomicU8,
    work: UnsafeCell<u64>,
}

struct Registry {
    head: AtomicPtr<Slot>,
}

impl Registry {
    fn new() -> Self {
        Registry {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// `Slot::claim`: a free slot (CAS FREE -> LIVE), or a new one pushed
    /// onto the list with a CAS loop.
    fn claim(&self) -> &'static Slot {
        for s in self.iter() {
            // Acquire: pairs with the Release that freed it (slot.rs).
            if s.state
                .compare_exchange(FREE, LIVE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return s;
            }
        }
        // Slots are never freed (as in memscope-std).
        let p: &'static Slot = Box::leak(Box::new(Slot {
            next: UnsafeCell::new(ptr::null()),
            state: AtomicU8::new(LIVE),
            work: UnsafeCell::new(0),
        }));
        // Relaxed: the CAS below re-reads it.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: not yet published, so still exclusively ours.
            p.next.with_mut(|n| unsafe { *n = head });
            // Release: publishes the slot's initialisation (slot.rs).
            match self.head.compare_exchange_weak(
                head,
                p as *const Slot as *mut Slot,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return p,
                Err(h) => head = h,
            }
        }
    }

    /// `slot::iter`: every slot ever published, newest first.
    fn iter(&self) -> impl Iterator<Item = &'static Slot> {
        // Acquire: pairs with the Release that published each slot.
        let mut p = self.head.load(Ordering::Acquire).cast_const();
        std::iter::from_fn(move || {
            // SAFETY: slots are leaked, never freed.
            let s: &'static Slot = unsafe { p.as_ref()? };
            // SAFETY: `next` is written before publication only.
            p = s.next.with(|n| unsafe { *n });
            Some(s)
        })
    }

    /// One pass of the writer (`Writer::drain_all`): takes what exited
    /// slots hold, resets and frees them (`local::release_slot`).
    fn drain(&self) -> u64 {
        let mut taken = 0;
        for s in self.iter() {
            // Acquire: pairs with the exiting owner's Release.
            if s.state.load(Ordering::Acquire) == EXITED {
                // SAFETY: the owner is gone (EXITED), the writer alone uses it.
                taken += s.work.with_mut(|w| unsafe { std::mem::take(&mut *w) });
                // Release: the next claimer (Acquire CAS) sees the reset.
                s.state.store(FREE, Ordering::Release);
            }
        }
        taken
    }
}

/// A thread's life: claim a slot, find it reset, work in it, exit
/// (`session::thread_exited`: Release store of EXITED).
fn live(reg: &Registry) {
    let s = reg.claim();
    // SAFETY: a LIVE slot belongs to its claimer alone; loom reports any
    // other access at the same time.
    s.work.with_mut(|w| unsafe {
        assert_eq!(*w, 0, "a claimed slot is reset");
        *w += 1;
    });
    // Release: the writer Acquire-loads the state, then reads the slot.
    s.state.store(EXITED, Ordering::Release);
}

/// Three threads start (two at once, one after the first exited) while the
/// writer drains: no slot is ever owned by two threads at once or touched by
/// the writer while owned, a reused slot is always found reset, the list
/// never holds more slots than threads, and every thread's work is drained
/// exactly once.
#[test]
fn threads_claim_publish_release_and_reuse_slots_while_the_writer_drains() {
    let mut builder = loom::model::Builder::new();
    // `LOOM_MAX_PREEMPTIONS` set (read by `Builder::new`) wins, for longer runs.
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(|| {
        let reg = Arc::new(Registry::new());
        let first = {
            let reg = reg.clone();
            thread::spawn(move || {
                live(&reg);
                // A later thread of the program: may reuse the first slot.
                live(&reg);
            })
        };
        let second = {
            let reg = reg.clone();
            thread::spawn(move || live(&reg))
        };
        let writer = {
            let reg = reg.clone();
            thread::spawn(move || reg.drain() + reg.drain())
        };
        let mut drained = writer.join().unwrap();
        first.join().unwrap();
        second.join().unwrap();
        // The final flush: whatever the writer had not taken yet.
        drained += reg.drain();
        assert_eq!(drained, 3, "each thread's work drained exactly once");
        let slots = reg.iter().count();
        assert!((1..=3).contains(&slots), "{slots} slots for 3 threads");
        assert!(reg.iter().all(|s| s.state.load(Ordering::Relaxed) == FREE));
    });
}
