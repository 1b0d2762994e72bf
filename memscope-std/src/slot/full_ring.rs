//! What a thread does when its ring is full: wait for the writer thread to
//! drain it (the default), for a bounded time, or drop the event.
//!
//! A trace that silently misses events is worth less than a program that
//! runs a little slower, so a thread whose ring is full wakes the writer and
//! yields its core until the writer has drained some of it — as heaptrack
//! blocks rather than drop. The record path must still never wait *without
//! bound*: the wait gives up, and the event is lost exactly as with
//! [`FullRing::Drop`] (counted, reported by the stream's next record and its
//! end record), when
//!
//! - the writer made no progress for the *patience* (1 s by default): no
//!   drain of this ring and no bytes written out. A writer blocked in
//!   `write` on a pipe nobody reads, or stopped by a debugger, costs each
//!   thread one such wait; a thread that gave up does not wait again until
//!   the writer drained some of its ring (see [`Waiter::gave_up`]). So does
//!   a writer that waits for a lock *the waiting thread* holds: the dynamic
//!   loader's (the writer's module rescan calls `dl_iterate_phdr`, and
//!   code that allocates inside its callback, such as std's backtrace
//!   symbolisation, holds it), the panic hook's (taken once, when the
//!   writer starts), stderr's (the writer's error message). The writer
//!   drains before it rescans, so the thread must have filled its whole
//!   ring under such a lock: rare, and never a deadlock;
//! - the writer cannot run: its thread ended (a panic in it), the recording
//!   is ending (the final flush, which cuts this very thread's stream, runs:
//!   `process::exit`, return from `main`) or ended, or this is a forked
//!   child (which stops recording).
//!
//! The writer thread itself, and any thread in memscope's own code (the
//! flush paths, which hold the writer's lock), never get here: their
//! allocations are passed through unrecorded (see `local`). A signal handler
//! that allocates while its thread's ring is full cannot be told apart and
//! waits too, at most the patience.
//!
//! The waiting thread leaves its slot's seqlock window meanwhile (nothing of
//! the event is in the ring or the counters yet), so a final flush that
//! starts during the wait cuts the stream at once instead of waiting for it.

use super::{Buffers, Slot, RING_BYTES};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// What a thread does with an event when its ring is full. Set with
/// [`Config::full_ring`](crate::Config::full_ring) or `MEMSCOPE_FULL`
/// (`wait`, `wait:<milliseconds>`, `drop`).
///
/// A wait ends when the writer thread made room, and gives up (the event is
/// then lost, counted, as with `Drop`) when the writer made no progress for
/// the patience, or at once when it cannot run (the recording is ending, the
/// writer thread ended, a forked child). A thread that gave up does not wait
/// again until the writer drained some of its ring, so a stuck writer costs
/// each thread one wait. The writer thread and memscope's own code never
/// wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullRing {
    /// Count the event as lost and go on (the trace says how many were
    /// lost, per thread): the program is never slowed by the writer.
    Drop,
    /// Wait for the writer thread to drain the ring, giving up (and
    /// dropping the event) when it made no progress for this long.
    Wait(Duration),
}

impl FullRing {
    /// The default: wait, with a patience of 1 s.
    pub const DEFAULT: FullRing = FullRing::Wait(DEFAULT_PATIENCE);

    /// Reads `MEMSCOPE_FULL`'s value: `drop`, `wait` (the default
    /// patience) or `wait:<milliseconds>`. `None` when unreadable.
    pub(crate) fn parse(s: &str) -> Option<FullRing> {
        match s.trim() {
            "drop" => Some(FullRing::Drop),
            "wait" => Some(FullRing::DEFAULT),
            s => {
                let ms = s.strip_prefix("wait:")?.trim().parse::<u64>().ok()?;
                Some(FullRing::Wait(Duration::from_millis(ms)))
            }
        }
    }
}

impl Default for FullRing {
    fn default() -> Self {
        FullRing::DEFAULT
    }
}

/// A writer thread kept off the cores of a loaded machine can stay off for
/// hundreds of milliseconds (its thread reniced to 19 next to two busy
/// threads on two cores: a drain about every half second), and a thread
/// that gave up then loses every event until the next drain (5.4M of 9.3M
/// in one such run with 50 ms, none with 1 s). A writer without progress
/// for a second is stuck (blocked output, a debugger); that costs each
/// thread one such wait.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(1);

/// The recording's patience in nanoseconds; 0: drop, do not wait.
static PATIENCE_NS: AtomicU64 = AtomicU64::new(0);

/// The writer thread's progress: bumped after every drain and every piece
/// of the file written, so a thread waits on as long as the writer moves,
/// even while it writes out a large backlog without draining.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

const WRITER_NOT_YET: u8 = 0;
const WRITER_RUNNING: u8 = 1;
const WRITER_GONE: u8 = 2;
static WRITER: AtomicU8 = AtomicU8::new(WRITER_NOT_YET);

/// Sets the recording's choice (before the recording starts).
pub(crate) fn configure(full: FullRing) {
    let ns = match full {
        FullRing::Drop => 0,
        // At least 1 ns: 0 means drop.
        FullRing::Wait(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
    };
    // Relaxed: published by the Release store that starts the recording.
    PATIENCE_NS.store(ns, Ordering::Relaxed);
}

/// The writer thread started (`running`) or ended.
pub(crate) fn writer_running(running: bool) {
    let state = if running { WRITER_RUNNING } else { WRITER_GONE };
    // Relaxed: a hint read by waiting threads; a stale value costs at most
    // one bounded wait.
    WRITER.store(state, Ordering::Relaxed);
}

/// The writer drained rings or wrote a piece of the file.
pub(crate) fn writer_progressed() {
    // Relaxed: a counter waiting threads compare with their last look; only
    // its changing matters, not what it orders.
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// The owner thread's wait state, kept in its slot.
pub(crate) struct Waiter {
    /// The ring's consumer position when this thread last gave up waiting:
    /// it does not wait again until the writer has drained past it (a stuck
    /// or dead writer costs one bounded wait, not one per event). Owner only.
    gave_up: core::cell::UnsafeCell<Option<usize>>,
    /// Set while the owner waits (read by tests, through
    /// [`threads_waiting`]).
    waiting: AtomicBool,
}

impl Waiter {
    pub(crate) const fn new() -> Self {
        Waiter {
            gave_up: core::cell::UnsafeCell::new(None),
            waiting: AtomicBool::new(false),
        }
    }

    /// Forgets a give-up (a new stream on the slot). Owner only.
    pub(crate) fn reset(&self) {
        // SAFETY: the owner is the only user of `gave_up`.
        unsafe { *self.gave_up.get() = None };
    }
}

/// What the wait looks at, apart from the ring: the recording and the
/// writer. A trait so that the unit tests drive the wait without a
/// recording (and under Miri).
pub(crate) trait Writer {
    /// Whether the writer can still drain the ring: recording, and its
    /// thread not ended.
    fn can_drain(&self) -> bool;
    /// A number that changes whenever the writer makes progress.
    fn progress(&self) -> u64;
    /// Asks the writer thread to run a cycle now.
    fn wake(&self);
}

/// The real writer thread of the recording.
pub(crate) struct TheWriter;

impl Writer for TheWriter {
    fn can_drain(&self) -> bool {
        // Relaxed: see `writer_running`.
        crate::session::recording() && WRITER.load(Ordering::Relaxed) != WRITER_GONE
    }

    fn progress(&self) -> u64 {
        // Relaxed: see `writer_progressed`.
        PROGRESS.load(Ordering::Relaxed)
    }

    fn wake(&self) {
        crate::session::wake_writer();
    }
}

/// The recording's patience; `None` when full rings drop.
pub(crate) fn patience() -> Option<Duration> {
    // Relaxed: see `configure`.
    match PATIENCE_NS.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

/// Free bytes a retried record needs: the longest ring entry.
const ROOM: usize = crate::record::ENTRY_MAX;

/// Sched-yields before sleeping: a writer queued on this core runs at once.
const YIELDS: u32 = 8;
/// Then sleeps this long between looks: the core goes idle, so the writer
/// runs here if it waits behind this thread or another one (the scheduler
/// pulls a waiting task to an idle core); a drain takes longer than this.
const NAP: Duration = Duration::from_micros(50);

/// The owner found its ring too full for the next record: waits until at
/// least [`ROOM`] bytes are free and returns `true`, or returns `false` at
/// once or after the patience (see the module docs). Owner only (it reads
/// the ring's consumer position as the producer does).
pub(crate) fn wait_for_room(s: &Slot, b: &Buffers, patience: Duration, w: &impl Writer) -> bool {
    let ring = &b.ring;
    // SAFETY (the ring calls below): the owner is the ring's producer.
    let head = unsafe { ring.head() };
    let tail = |len: usize| head.wrapping_sub(len);
    let mut len = unsafe { ring.refresh_len() };
    if len <= RING_BYTES - ROOM {
        return true;
    }
    // SAFETY: the owner is the only user of `gave_up`.
    let gave_up = unsafe { &mut *s.waiter.gave_up.get() };
    if *gave_up == Some(tail(len)) || !w.can_drain() {
        return false;
    }
    *gave_up = None;
    // Relaxed (both stores): a flag only tests poll; nothing is published.
    s.waiter.waiting.store(true, Ordering::Relaxed);
    w.wake();
    let mut progress = w.progress();
    let mut since = Instant::now();
    let mut looks = 0u32;
    let room = loop {
        if looks < YIELDS {
            std::thread::yield_now();
        } else {
            nap();
            // Again: the writer may have been mid-cycle (its next park then
            // returns at once anyway) or may have missed the first wake.
            w.wake();
        }
        looks = looks.saturating_add(1);
        // SAFETY: as above.
        let now_len = unsafe { ring.refresh_len() };
        if now_len <= RING_BYTES - ROOM {
            break true;
        }
        if !w.can_drain() {
            break false;
        }
        let now_progress = w.progress();
        if now_len != len || now_progress != progress {
            len = now_len;
            progress = now_progress;
            since = Instant::now();
        } else if since.elapsed() >= patience {
            *gave_up = Some(tail(len));
            break false;
        }
    };
    s.waiter.waiting.store(false, Ordering::Relaxed);
    room
}

/// Sleeps for [`NAP`], or less when a signal interrupts it.
fn nap() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: NAP.subsec_nanos() as _,
    };
    // SAFETY: a valid timespec; the remainder is not wanted (null). The
    // result is ignored: an interrupted nap is just a shorter one.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// How many threads wait for the writer right now (for tests that hold the
/// writer up and must know a thread reached a full ring).
pub(crate) fn threads_waiting() -> usize {
    // Relaxed: see `wait_for_room`.
    super::iter()
        .filter(|s| s.waiter.waiting.load(Ordering::Relaxed))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::atomic::AtomicU64;

    /// A writer the test drives: it counts the owner's wakes; its progress
    /// and whether it can drain are set by hand.
    #[derive(Default)]
    struct Fake {
        alive: AtomicBool,
        progress: AtomicU64,
        wakes: AtomicU64,
    }

    impl Writer for Fake {
        fn can_drain(&self) -> bool {
            self.alive.load(Ordering::Relaxed)
        }
        fn progress(&self) -> u64 {
            self.progress.load(Ordering::Relaxed)
        }
        fn wake(&self) {
            self.wakes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A slot of the test's own (not in the registry), freed on drop (Miri
    /// reports memory that is neither freed nor reachable from a static).
    struct TestSlot(Box<Slot>);

    impl Drop for TestSlot {
        fn drop(&mut self) {
            // The allocation's own pointer (one derived from `&Buffers` may
            // only read).
            let b = self.0.buffers.load(Ordering::Relaxed);
            if !b.is_null() {
                // SAFETY: allocated by `buffers_or_alloc` from `System` with
                // this layout; nothing uses it any more.
                unsafe {
                    std::alloc::GlobalAlloc::dealloc(
                        &System,
                        b.cast(),
                        core::alloc::Layout::new::<Buffers>(),
                    )
                };
            }
        }
    }

    /// A fresh slot of the test's own with its ring full.
    fn full_slot() -> TestSlot {
        let t = TestSlot(Box::new(Slot::new()));
        fill(t.0.buffers_or_alloc(&System).expect("memory"));
        t
    }

    /// Fills the empty ring in one push: each push borrows the whole ring,
    /// which Miri checks byte by byte, so a few pushes keep it fast there.
    fn fill(b: &Buffers) {
        // SAFETY: this test is the only producer.
        assert!(unsafe { b.ring.push(&[&vec![7u8; RING_BYTES]]) });
        assert!(b.ring.len() > RING_BYTES - ROOM);
    }

    fn drain(b: &Buffers) {
        // SAFETY: the test's consumer, alone on the consumer side.
        unsafe { b.ring.read(|x, y| x.len() + y.len()) };
    }

    #[test]
    fn a_writer_that_drains_ends_the_wait_with_room() {
        let t = full_slot();
        let (s, b) = (&*t.0, t.0.buffers().expect("allocated"));
        let w = Fake::default();
        w.alive.store(true, Ordering::Relaxed);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // The drain comes once the owner asked for it.
                while w.wakes.load(Ordering::Relaxed) == 0 {
                    std::thread::yield_now();
                }
                drain(s.buffers().expect("allocated"));
            });
            // A patience no test run reaches: the wait ends by the drain.
            assert!(wait_for_room(s, b, Duration::from_secs(3600), &w));
        });
        assert!(b.ring.len() <= RING_BYTES - ROOM);
        assert!(!s.waiter.waiting.load(Ordering::Relaxed));
    }

    #[test]
    fn a_stuck_writer_costs_one_bounded_wait_until_it_drains_again() {
        let t = full_slot();
        let (s, b) = (&*t.0, t.0.buffers().expect("allocated"));
        let w = Fake::default();
        w.alive.store(true, Ordering::Relaxed);
        // No progress: the wait gives up after the patience.
        assert!(!wait_for_room(s, b, Duration::from_millis(1), &w));
        let wakes = w.wakes.load(Ordering::Relaxed);
        assert!(wakes > 0, "the owner woke the writer");
        // The ring did not move since: no second wait (not even a wake).
        assert!(!wait_for_room(s, b, Duration::from_secs(3600), &w));
        assert_eq!(w.wakes.load(Ordering::Relaxed), wakes);
        // Progress elsewhere (a piece of the file written) is not a drain
        // of this ring: still no wait.
        w.progress.fetch_add(1, Ordering::Relaxed);
        assert!(!wait_for_room(s, b, Duration::from_secs(3600), &w));
        assert_eq!(w.wakes.load(Ordering::Relaxed), wakes);
    }

    #[test]
    fn after_a_give_up_a_drain_makes_the_thread_wait_again() {
        let t = full_slot();
        let (s, b) = (&*t.0, t.0.buffers().expect("allocated"));
        let w = Fake::default();
        w.alive.store(true, Ordering::Relaxed);
        assert!(!wait_for_room(s, b, Duration::from_millis(1), &w));
        // The writer drains, the ring fills again: the next full ring waits
        // (and gives up again: nobody drains now).
        drain(b);
        fill(b);
        let wakes = w.wakes.load(Ordering::Relaxed);
        assert!(!wait_for_room(s, b, Duration::from_millis(1), &w));
        assert!(w.wakes.load(Ordering::Relaxed) > wakes, "waited again");
    }

    #[test]
    fn no_wait_when_the_writer_cannot_drain_or_there_is_room() {
        let t = full_slot();
        let (s, b) = (&*t.0, t.0.buffers().expect("allocated"));
        let w = Fake::default();
        // Not alive (recording ended, writer gone): no wait, no wake.
        assert!(!wait_for_room(s, b, Duration::from_secs(3600), &w));
        assert_eq!(w.wakes.load(Ordering::Relaxed), 0);
        // Room already: true at once.
        drain(b);
        assert!(wait_for_room(s, b, Duration::from_secs(3600), &w));
        assert_eq!(w.wakes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_ring_settings_parse() {
        assert_eq!(FullRing::parse("drop"), Some(FullRing::Drop));
        assert_eq!(FullRing::parse(" wait "), Some(FullRing::DEFAULT));
        assert_eq!(
            FullRing::parse("wait:250"),
            Some(FullRing::Wait(Duration::from_millis(250)))
        );
        assert_eq!(FullRing::parse("wait:"), None);
        assert_eq!(FullRing::parse("block"), None);
    }
}
