//! A traced program that allocates from a signal handler, for
//! tests/std_faults.rs.
//!
//! No general-purpose allocator may be called from a signal handler (glibc's
//! malloc can deadlock on its own arena lock), so the inner allocator here is
//! a bump allocator over a static arena whose only shared state is one atomic
//! counter: async-signal-safe. What is tested is memscope's part: a handler
//! that interrupts memscope's own code on the same thread.
//!
//! Thread `target` churns allocations while thread `sender` sends it SIGUSR1
//! about every 50 µs; the handler allocates and frees a block of
//! [`HANDLER_SIZE`] bytes. Prints the counted lines and `handled <n>`.
//!
//! Usage: `std_faults_signal`

use memscope_tests::counting::{self, Counted};
use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A size nothing but the handler uses.
const HANDLER_SIZE: usize = 1234;

const ARENA: usize = 512 << 20;

/// Hands out the arena front to back and never reuses a byte.
struct Bump {
    arena: UnsafeCell<[u8; ARENA]>,
    next: AtomicUsize,
}

// SAFETY: blocks are disjoint ranges handed out by an atomic counter.
unsafe impl Sync for Bump {}

// SAFETY: each block is a fresh, suitably aligned range of the arena, never
// handed out twice; null when the arena is exhausted.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        // Relaxed: only the uniqueness of the ranges matters.
        let mut at = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + at).next_multiple_of(l.align()) - base;
            let end = start + l.size();
            if end > ARENA {
                return std::ptr::null_mut();
            }
            // Relaxed: as above.
            match self
                .next
                .compare_exchange_weak(at, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => at = now,
            }
        }
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    // `alloc_zeroed` keeps the default (alloc, then write zeros).
}

static INNER_ARENA: Bump = Bump {
    arena: UnsafeCell::new([0; ARENA]),
    next: AtomicUsize::new(0),
};

struct ArenaRef;

// SAFETY: forwards to the static bump allocator.
unsafe impl GlobalAlloc for ArenaRef {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { INNER_ARENA.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { INNER_ARENA.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counted<memscope_std::MemScope<ArenaRef>> =
    Counted(memscope_std::MemScope::new(ArenaRef));

static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Handler runs the target waits for (tests/std_faults.rs wants over 100).
const ENOUGH: u64 = 500;

extern "C" fn on_signal(_: libc::c_int) {
    let b = black_box(vec![7u8; HANDLER_SIZE]);
    drop(b);
    // Relaxed: a statistic read after the threads were joined.
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn main() {
    // SAFETY: installs a plain handler for SIGUSR1 with an empty mask;
    // `sigaction` is a valid, zero-initialised struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let stop = &*Box::leak(Box::new(AtomicBool::new(false)));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let target = counting::spawn("target", 1, move || {
        // SAFETY: plain call.
        tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
        let mut sum = 0u64;
        // At least 300 000 rounds, and on until the handler ran often enough
        // for the test to mean something: on a loaded machine the sender
        // may get little CPU while this thread churns. Bounded, so the
        // arena (about 45 bytes a round) cannot run out.
        let mut i = 0u64;
        // Relaxed: a statistic; only its growth matters.
        while i < 300_000 || (HANDLED.load(Ordering::Relaxed) < ENOUGH && i < 3_000_000) {
            let b = black_box(Box::new([i; 4]));
            sum += b[0];
            if i.is_multiple_of(64) {
                let v: Vec<u64> = black_box((0..i % 100).collect());
                sum += v.len() as u64;
            }
            i += 1;
        }
        // Acquire/Release: none needed, the sender only polls it.
        stop.store(true, Ordering::Relaxed);
        sum
    });
    let thread = tid_rx.recv().unwrap();
    let sender = std::thread::Builder::new()
        .name("sender".into())
        .spawn(move || {
            let mut sent = 0u64;
            // Relaxed: a stop flag.
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the target thread is alive until it sets `stop`,
                // and joined only after this thread.
                unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
                sent += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            sent
        })
        .unwrap();
    let sent = sender.join().unwrap();
    black_box(target.join().unwrap());
    counting::print("target", 1);
    println!("handled {} sent {sent}", HANDLED.load(Ordering::Relaxed));
    println!("done");
}
