//! Starting and finishing a recording: from `MEMSCOPE_OUT`, or with
//! [`start`] for finer control.

use crate::event::Event;
use crate::local;
use crate::slot::full_ring::{self, FullRing};
use crate::slot::{Slot, EXITED};
use crate::stacks::{DEFAULT_DEPTH, MAX_DEPTH};
use crate::writer;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const STATS_ONLY: u8 = 2;
const RECORDING: u8 = 3;
/// The final flush runs: threads stop recording, exits go to the flush.
const CLOSING: u8 = 4;
const CLOSED: u8 = 5;

static MODE: AtomicU8 = AtomicU8::new(UNINIT);
static STACK_DEPTH: AtomicUsize = AtomicUsize::new(0);
/// Stream 0 is the control stream; threads get 1, 2, …
static NEXT_STREAM: AtomicU32 = AtomicU32::new(1);

/// Events of threads whose slot was already closed, while recording.
static UNTRACKED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Whether threads record their events now.
#[inline(always)]
pub(crate) fn recording() -> bool {
    // Acquire: pairs with the Release that started the recording, so the
    // clock choice and stack depth made before it are seen with it.
    MODE.load(Ordering::Acquire) == RECORDING
}

/// Call-stack depth (0: off).
#[inline(always)]
pub(crate) fn stack_depth() -> usize {
    // Relaxed: set before the Release store that starts the recording.
    STACK_DEPTH.load(Ordering::Relaxed)
}

pub(crate) fn next_stream_id() -> u32 {
    // Relaxed: only uniqueness matters.
    NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
}

/// Streams opened so far.
pub(crate) fn streams_opened() -> u32 {
    // Relaxed: read by the final flush after every thread stopped recording.
    NEXT_STREAM.load(Ordering::Relaxed) - 1
}

pub(crate) fn count_untracked(ev: Event) {
    let i = match ev {
        Event::Alloc { .. } => 0,
        Event::Dealloc { .. } => 1,
        Event::Realloc { .. } => 2,
    };
    // Relaxed: independent counters, read by the final flush.
    UNTRACKED[i].fetch_add(1, Ordering::Relaxed);
    if ev.failed() {
        UNTRACKED[3].fetch_add(1, Ordering::Relaxed);
    }
}

/// (allocs, deallocs, reallocs, failed) of [`count_untracked`].
pub(crate) fn untracked() -> [u64; 4] {
    // Relaxed: see `count_untracked`.
    UNTRACKED.each_ref().map(|c| c.load(Ordering::Relaxed))
}

pub(crate) fn wake_writer() {
    writer::wake();
}

/// The thread owning `s` is exiting.
pub(crate) fn thread_exited(s: &Slot) {
    // Relaxed: the owner wrote the stream id.
    let has_stream = s.stream.load(Ordering::Relaxed) != 0;
    // Acquire: see `recording`.
    let mode = MODE.load(Ordering::Acquire);
    if has_stream && (mode == RECORDING || mode == CLOSING) {
        // Release: the writer Acquire-loads the state and then reads
        // everything this thread wrote into the slot.
        s.state.store(EXITED, Ordering::Release);
        writer::wake();
    } else {
        local::release_slot(s);
    }
}

/// Where and how to record.
#[derive(Clone, Debug)]
pub struct Config {
    out: PathBuf,
    stacks: usize,
    full: FullRing,
}

impl Config {
    /// Record to the file `out`, with call stacks of the default depth (16),
    /// threads waiting for the writer when their ring is full
    /// ([`FullRing::DEFAULT`]).
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Config {
            out: out.into(),
            stacks: DEFAULT_DEPTH,
            full: FullRing::DEFAULT,
        }
    }

    /// Call-stack depth: 0 turns stacks off; at most 64.
    pub fn stacks(mut self, depth: usize) -> Self {
        self.stacks = depth.min(MAX_DEPTH);
        self
    }

    /// What a thread does with an event when its ring is full: wait for the
    /// writer thread (bounded; the default) or drop it (counted as lost).
    pub fn full_ring(mut self, full: FullRing) -> Self {
        self.full = full;
        self
    }

    /// `MEMSCOPE_OUT`, `MEMSCOPE_STACKS` and `MEMSCOPE_FULL` (`wait`,
    /// `wait:<milliseconds>` or `drop`: see [`FullRing`]); `None` when
    /// `MEMSCOPE_OUT` is unset or empty. An unreadable `MEMSCOPE_STACKS` or
    /// `MEMSCOPE_FULL` keeps the default.
    pub fn from_env() -> Option<Self> {
        let out = std::env::var_os("MEMSCOPE_OUT").filter(|s| !s.is_empty())?;
        let mut c = Config::new(out);
        if let Some(d) = std::env::var("MEMSCOPE_STACKS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        {
            c = c.stacks(d);
        }
        if let Some(f) = std::env::var("MEMSCOPE_FULL")
            .ok()
            .and_then(|s| FullRing::parse(&s))
        {
            c = c.full_ring(f);
        }
        Some(c)
    }

    /// The output file.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The call-stack depth.
    pub fn stack_depth(&self) -> usize {
        self.stacks
    }

    /// What a thread does when its ring is full.
    pub fn full_ring_policy(&self) -> FullRing {
        self.full
    }
}

/// Why [`start`] did not start a recording.
#[derive(Debug)]
pub enum StartError {
    /// A recording is running (perhaps started by `MEMSCOPE_OUT`).
    AlreadyRecording,
    /// This process recorded already; one recording per process.
    Finished,
    /// The output file could not be created, or the writer thread not spawned.
    Io(PathBuf, io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::AlreadyRecording => {
                f.write_str("memscope is already recording this process")
            }
            StartError::Finished => {
                f.write_str("memscope recorded this process already (one recording per process)")
            }
            StartError::Io(p, e) => write!(f, "memscope cannot record to {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StartError {}

/// A running recording: dropping it (or [`finish`](Self::finish)) flushes
/// every thread's events, writes the end records and closes the file. After
/// that the allocator keeps live statistics only.
#[must_use = "dropping the guard ends the recording at once"]
#[derive(Debug)]
pub struct Recording {
    out: PathBuf,
}

impl Recording {
    /// The file being written.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Ends the recording now; reports a write error if there was one.
    pub fn finish(self) -> io::Result<()> {
        let r = finish();
        std::mem::forget(self);
        r
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Err(e) = finish() {
            eprintln!("memscope: writing {} failed: {e}", self.out.display());
        }
    }
}

/// Starts recording to `config.out()`. Needs [`MemScope`](crate::MemScope) as
/// the global allocator (otherwise the trace holds no events). When
/// `MEMSCOPE_OUT` is also set and the recording has not started from it yet,
/// this call wins.
///
/// ```no_run
/// #[global_allocator]
/// static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();
///
/// let rec = memscope_std::start(memscope_std::Config::new("trace.bin").stacks(8)).unwrap();
/// let v: Vec<u64> = (0..1000).collect();
/// drop(v);
/// rec.finish().unwrap();
/// ```
pub fn start(config: Config) -> Result<Recording, StartError> {
    local::with(|l| {
        l.busy(|| {
            loop {
                // Acquire: see `recording`.
                match MODE.load(Ordering::Acquire) {
                    m @ (UNINIT | STATS_ONLY) => {
                        // Acquire/Relaxed: we only need to win the transition.
                        if MODE
                            .compare_exchange(m, STARTING, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            break;
                        }
                    }
                    STARTING => std::thread::yield_now(),
                    RECORDING => return Err(StartError::AlreadyRecording),
                    _ => return Err(StartError::Finished),
                }
            }
            let out = config.out.clone();
            match begin(config) {
                Ok(()) => Ok(Recording { out }),
                Err(e) => {
                    // Release: see `begin`.
                    MODE.store(STATS_ONLY, Ordering::Release);
                    Err(StartError::Io(out, e))
                }
            }
        })
    })
}

/// Called on the first allocator call of every thread until the mode is
/// decided: starts a recording when `MEMSCOPE_OUT` is set. Runs with the
/// thread's `busy` flag set, so its own allocations (reading the environment,
/// spawning the writer) are passed through.
pub(crate) fn start_from_env_once() {
    // Relaxed: a fast check; the CAS decides.
    if MODE.load(Ordering::Relaxed) != UNINIT {
        return;
    }
    if MODE
        .compare_exchange(UNINIT, STARTING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let Some(config) = Config::from_env() else {
        // Release: see `begin`.
        MODE.store(STATS_ONLY, Ordering::Release);
        return;
    };
    let out = config.out.clone();
    if let Err(e) = begin(config) {
        eprintln!(
            "memscope: cannot record to {} ({e}); keeping live statistics only",
            out.display()
        );
        // Release: see `begin`.
        MODE.store(STATS_ONLY, Ordering::Release);
    }
}

/// Opens the file, starts the writer, then switches threads to recording.
fn begin(config: Config) -> io::Result<()> {
    // Relaxed: published by the Release store of the mode below.
    STACK_DEPTH.store(config.stacks.min(MAX_DEPTH), Ordering::Relaxed);
    full_ring::configure(config.full);
    let calibration = crate::clock::init();
    // The frame walk accepts only return addresses inside loaded code.
    for m in crate::modules::scan() {
        for (s, e) in m.exec {
            crate::stacks::add_code_range(s as usize, e as usize);
        }
    }
    writer::open(&config.out, calibration)?;
    crate::exit::install_atexit();
    // Before any thread records (see `writer::register_barrier`).
    writer::register_barrier();
    writer::spawn()?;
    // Release: threads that see RECORDING (Acquire) see the clock choice,
    // the stack depth and the writer set up above.
    MODE.store(RECORDING, Ordering::Release);
    Ok(())
}

/// Flushes every thread, writes the end records, closes the file. Idempotent;
/// safe to call from `atexit`, a panic hook or a guard's drop.
pub(crate) fn finish() -> io::Result<()> {
    local::with(|l| {
        if l.busy.get() != 0 {
            // memscope's own code (the writer thread, say) panicked with
            // `panic = "abort"`: it may hold the writer's lock. Do not wait.
            return Ok(());
        }
        l.busy(|| {
            // AcqRel: only one caller moves RECORDING to CLOSING and runs the flush.
            if MODE
                .compare_exchange(RECORDING, CLOSING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Ok(());
            }
            let r = writer::finish();
            // Release: exiting threads that see CLOSED free their slots themselves.
            MODE.store(CLOSED, Ordering::Release);
            r
        })
    })
}

/// The process was forked and this is the child: it owns no writer thread
/// and shares the parent's file, so it stops recording without writing.
pub(crate) fn forked() {
    // Release: see `recording`.
    MODE.store(CLOSED, Ordering::Release);
}

/// Writes out what the threads recorded so far without ending the trace
/// (a panic that may be caught, for instance).
pub(crate) fn flush() {
    if recording() {
        local::with(|l| {
            // Not from memscope's own code (it may hold the writer's lock).
            if l.busy.get() == 0 {
                l.busy(writer::flush);
            }
        });
    }
}
