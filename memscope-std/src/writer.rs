//! The writer thread: drains every thread's ring into the output file.
//!
//! Every 2 ms (or sooner when a ring passes a quarter full) it takes each thread's
//! committed bytes and writes them as frames of that thread's stream
//! (checked, at most [`FRAME_PAYLOAD_MAX`] payload bytes each, cut at record
//! boundaries). Stream 0, the control stream, gets the header, the module
//! records (again after a `dlopen`), after each cycle a watermark when it
//! rose (every event with an earlier timestamp is in the frames before it:
//! see [`settled`]; a reader merging the streams by time then need not wait
//! the 50 ms it otherwise allows for a thread descheduled between its clock
//! read and its commit) and, at the end, an end record stating how many
//! streams were opened. Each thread's stream ends with an end record
//! stating its totals, written once the thread exited and its ring is empty,
//! or by the final flush for threads still running.
//!
//! The final flush takes, for a running thread, a *consistent cut*: it reads
//! the thread's counters and ring between two equal even values of the slot's
//! seqlock, so the end record's totals describe exactly the events in the
//! frames before it.

use crate::clock::{self, Calibration};
use crate::framing;
use crate::local;
use crate::modules::{self, ModuleInfo};
use crate::session;
use crate::slot::{self, full_ring, Buffers, Slot, EXITED, FRAME_PAYLOAD_MAX, MARK_CHUNK};
use memscope_core::wire::{Delta, End, Header, Module, Record};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How often the writer drains when nobody wakes it.
const INTERVAL: Duration = Duration::from_millis(2);
/// Frames are held back (and the header not written) until the tick rate was
/// measured over this long.
const CALIBRATION: Duration = Duration::from_millis(10);
/// Module rescans: every this many cycles, when the loader's count changed.
const MODULE_CHECK_CYCLES: u64 = 50;
/// How long the final flush waits, in all, for running threads to leave a
/// record. A thread is inside one for nanoseconds unless it was descheduled
/// there, which on a loaded machine can last hundreds of milliseconds; one
/// deadline for the whole flush bounds the wait at exit whatever the number
/// of threads stopped mid-record (e.g. by a debugger).
const CUT_PATIENCE: Duration = Duration::from_secs(3);

/// How long a drain waits for a thread to leave the record it is inside
/// before it takes the thread as descheduled there (see [`settled`] and
/// [`allows`]). A record takes well under a microsecond, one with a call
/// stack a few; a longer wait only takes a core from the program (it was
/// 100 µs while a thread stuck in a record gave up the cycle's watermark).
const SETTLE_PATIENCE: Duration = Duration::from_micros(10);

/// Where [`barrier_on_every_thread`] is not available: how long after
/// publishing a clock reading a cycle checks the threads, so that one that
/// had not yet entered a record then reads a clock, or the published
/// reading, no earlier than it (see [`settled`]): far longer than a store
/// takes to leave a core's buffer, which is all the two could otherwise be
/// out of step by.
const PUBLISH_GAP: Duration = Duration::from_micros(50);

/// Has every other thread of the process that is running now execute a full
/// memory barrier before this returns: Linux's `membarrier` (private
/// expedited: an interrupt to each CPU running one of them, 0.4 µs here;
/// one not running passed a barrier when it was switched out). Returns
/// false where that is not available (other systems, kernels before 4.14,
/// a sandbox that refuses it), and the caller waits [`PUBLISH_GAP`]
/// instead.
fn barrier_on_every_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        // From the kernel's uapi `linux/membarrier.h`.
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        // SAFETY: a syscall that reads and writes none of our memory; a
        // process that registered may ask for it.
        register_barrier()
            && unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Registers the process for [`barrier_on_every_thread`] (once; returns
/// whether it may be used). Called before the recording starts: when the
/// process has other threads, registering waits for an RCU grace period
/// (14-16 ms here). Made lazily by the first cycle, after it had taken its
/// clock reading, that wait held the cycle's watermark back while the
/// threads filled their rings: the first watermark in the file came after
/// 4 MB of frames (700K events of the 2-thread churn workload), all of
/// which the decoder had to hold.
pub(crate) fn register_barrier() -> bool {
    #[cfg(target_os = "linux")]
    {
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        *REGISTERED.get_or_init(|| {
            // SAFETY: a syscall that reads and writes none of our memory.
            unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The file is written in pieces of this size (see `write_out`).
const WRITE_PIECE: usize = 1 << 20;

static STATE: Mutex<Option<Writer>> = Mutex::new(None);
static THREAD: OnceLock<Thread> = OnceLock::new();

struct Writer {
    file: crate::compressed::Output,
    path: PathBuf,
    /// Frames waiting to be written.
    pending: Pending,
    /// Each stream's next frame number.
    numbering: framing::Numbering,
    calibration: Calibration,
    header_written: bool,
    /// Stream 0's records from before the header was written (a program
    /// that ends within the clock's calibration writes its End then): where
    /// they were in `pending`, and their bytes. They are framed, and so
    /// numbered, after the header, which must be stream 0's frame 0.
    deferred: Vec<(usize, Vec<u8>)>,
    modules: Vec<ModuleInfo>,
    loads: u64,
    cycles: u64,
    /// The last watermark written (see [`Writer::cycle`]).
    watermark: u64,
    error: Option<io::Error>,
}

fn lock() -> MutexGuard<'static, Option<Writer>> {
    // A panic while holding the lock leaves consistent data (whole frames):
    // keep going.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the output file.
pub(crate) fn open(path: &Path, calibration: Calibration) -> io::Result<()> {
    let file = crate::compressed::Output::create(path)?;
    *lock() = Some(Writer {
        file,
        path: path.to_path_buf(),
        pending: Pending::default(),
        numbering: framing::Numbering::default(),
        calibration,
        header_written: false,
        deferred: Vec::new(),
        modules: Vec::new(),
        loads: 0,
        cycles: 0,
        watermark: 0,
        error: None,
    });
    Ok(())
}

/// Starts the writer thread: a plain POSIX thread, so that no allocation of
/// the standard library's thread start-up runs before it marks itself as
/// memscope's own (those would be half recorded: freed on a stream that never
/// saw them allocated).
#[cfg(unix)]
pub(crate) fn spawn() -> io::Result<()> {
    extern "C" fn start(_: *mut libc::c_void) -> *mut libc::c_void {
        local::become_busy_forever();
        #[cfg(target_os = "linux")]
        // SAFETY: a valid thread handle and a NUL-terminated name of at most
        // 15 bytes.
        unsafe {
            libc::pthread_setname_np(libc::pthread_self(), c"memscope-writer".as_ptr());
        }
        // Unwinding out of an `extern "C"` function would abort the process.
        let _ = std::panic::catch_unwind(run);
        std::ptr::null_mut()
    }
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `thread` is a valid out-pointer; default attributes; `start`
    // has the signature pthread_create expects and ignores its argument.
    let rc =
        unsafe { libc::pthread_create(&mut thread, std::ptr::null(), start, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: a thread we created and never join.
    unsafe { libc::pthread_detach(thread) };
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn spawn() -> io::Result<()> {
    std::thread::Builder::new()
        .name("memscope-writer".into())
        .spawn(|| {
            local::become_busy_forever();
            run()
        })?;
    Ok(())
}

fn run() {
    let _ = THREAD.set(std::thread::current());
    crate::exit::install_panic_hook();
    // Threads with a full ring wait for this thread only while it runs.
    full_ring::writer_running(true);
    struct Ended;
    impl Drop for Ended {
        fn drop(&mut self) {
            full_ring::writer_running(false);
        }
    }
    let _ended = Ended;
    loop {
        std::thread::park_timeout(INTERVAL);
        {
            let mut g = lock();
            let Some(w) = g.as_mut() else {
                return;
            };
            w.cycle();
        }
        // Samples the process-wide current bytes for `stats().peak_bytes`.
        crate::stats::stats();
    }
}

/// Wakes the writer thread (a ring passed a quarter full, a thread exited).
pub(crate) fn wake() {
    if let Some(t) = THREAD.get() {
        t.unpark();
    }
}

/// Writes out everything recorded so far.
pub(crate) fn flush() {
    if let Some(w) = lock().as_mut() {
        w.cycle();
        w.write_out(true);
    }
}

/// The final flush: drains every thread, writes all end records, closes.
pub(crate) fn finish() -> io::Result<()> {
    let Some(mut w) = lock().take() else {
        return Ok(());
    };
    w.drain_all(true, 0);
    w.rescan_modules();
    let [allocs, deallocs, reallocs, failed] = session::untracked();
    w.control(&Record::End(End {
        allocs,
        deallocs,
        reallocs,
        failed,
        // Events of threads whose slot was closed: none was recorded.
        lost: allocs + deallocs + reallocs,
        streams: session::streams_opened(),
    }));
    w.write_out(true);
    if let Err(e) = w.file.finish() {
        w.error.get_or_insert(e);
    }
    match w.error.take() {
        Some(e) => Err(io::Error::new(
            e.kind(),
            format!("{}: {e}", w.path.display()),
        )),
        None => Ok(()),
    }
}

impl Writer {
    fn cycle(&mut self) {
        clock::publish_recent();
        // The watermark this cycle may write: the reading just published,
        // once every thread sees it (see `settled`).
        let horizon = clock::recent();
        if !barrier_on_every_thread() {
            std::thread::sleep(PUBLISH_GAP);
        }
        let watermark = self.drain_all(false, horizon);
        if watermark > self.watermark {
            self.control(&Record::Watermark { ts: watermark });
            self.watermark = watermark;
        }
        self.cycles += 1;
        if self.cycles % MODULE_CHECK_CYCLES == 1 {
            self.rescan_modules();
        }
        self.write_out(false);
    }

    /// Drains every thread; returns the watermark that may follow: at most
    /// `horizon`, the reading this cycle published, and lowered to what
    /// each thread allows (see [`allows`]).
    fn drain_all(&mut self, last: bool, horizon: u64) -> u64 {
        let give_up = Instant::now() + CUT_PATIENCE;
        let mut watermark = horizon;
        for s in slot::iter() {
            // Acquire: pairs with the exiting owner's Release, so its last
            // records and counters are visible.
            let state = s.state.load(Ordering::Acquire);
            // Acquire: pairs with the Release that published the stream.
            let stream = s.stream.load(Ordering::Acquire);
            if stream == 0 {
                continue;
            }
            let Some(b) = s.buffers() else { continue };
            if last {
                let end = self.cut(s, b, stream, give_up);
                if let Some(end) = end {
                    self.record(stream, &Record::End(end));
                }
            } else if state == EXITED {
                watermark = watermark.min(allows(s, horizon));
                self.drain(s, b, stream);
                let end = counts(s);
                self.record(stream, &Record::End(end));
                self.numbering.close(stream);
                local::release_slot(s);
            } else {
                watermark = watermark.min(allows(s, horizon));
                self.drain(s, b, stream);
                // Relaxed: a hint flag, see `record::wake_if_filling`.
                s.wake.store(false, Ordering::Relaxed);
            }
        }
        full_ring::writer_progressed();
        watermark
    }

    /// Drains whatever is committed.
    fn drain(&mut self, s: &Slot, b: &Buffers, stream: u32) {
        // SAFETY: the writer (under `STATE`'s lock) is the ring's only consumer.
        unsafe {
            b.ring.read(|x, y| {
                self.emit(s, stream, x, y);
                x.len() + y.len()
            })
        };
    }

    /// Drains a thread at a consistent cut and returns the end record for
    /// exactly what was drained; `None` if the thread stayed inside a record
    /// past `give_up` (its stream then has no end record).
    fn cut(&mut self, s: &Slot, b: &Buffers, stream: u32, give_up: Instant) -> Option<End> {
        loop {
            // Acquire: pairs with the owner's Release closing its last window.
            let before = s.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                if Instant::now() > give_up {
                    self.drain(s, b, stream);
                    return None;
                }
                std::thread::yield_now();
                continue;
            }
            let end = counts(s);
            let mut consistent = false;
            // SAFETY: as in `drain`.
            unsafe {
                b.ring.read(|x, y| {
                    // Acquire fence: the counter and head reads above happen
                    // before the re-check of `seq` below.
                    fence(Ordering::Acquire);
                    // Relaxed: ordered by the fence.
                    if s.seq.load(Ordering::Relaxed) != before {
                        return 0;
                    }
                    consistent = true;
                    self.emit(s, stream, x, y);
                    x.len() + y.len()
                })
            };
            if consistent {
                return Some(end);
            }
        }
    }

    /// Frames the committed bytes `x ++ y` of a thread's ring, cut at record
    /// boundaries into payloads of at most `FRAME_PAYLOAD_MAX` bytes.
    fn emit(&mut self, s: &Slot, stream: u32, x: &[u8], y: &[u8]) {
        let total = x.len() + y.len();
        // SAFETY: `drained` belongs to the ring's consumer, which we are.
        let start = unsafe { *s.drained.get() };
        let head = start.wrapping_add(total);
        let mut done = 0;
        while done < total {
            let from = start.wrapping_add(done);
            let mut len = total - done;
            if len > FRAME_PAYLOAD_MAX {
                let limit = from + FRAME_PAYLOAD_MAX;
                let mut chunk = limit / MARK_CHUNK;
                while chunk > from / MARK_CHUNK {
                    match s.boundary_in(chunk) {
                        Some(m) if m > from && m <= limit && m <= head => {
                            len = m - from;
                            break;
                        }
                        _ => chunk -= 1,
                    }
                }
                // No boundary found (cannot happen while records are far
                // shorter than a chunk): the frame stays longer.
            }
            let (p, q) = sub(x, y, done, len);
            self.frame(stream, &[p, q]);
            done += len;
        }
        // SAFETY: as above.
        unsafe { *s.drained.get() = head };
    }

    fn frame(&mut self, stream: u32, parts: &[&[u8]]) {
        if stream == 0 && !self.header_written {
            self.deferred.push((self.pending.len, parts.concat()));
            return;
        }
        let payload: usize = parts.iter().map(|p| p.len()).sum();
        // Encoded straight into `pending`, no intermediate copy.
        let out = self.pending.space(framing::out_len(payload));
        let n = self.numbering.encode(stream, parts, out).unwrap_or(0);
        self.pending.advance(n);
    }

    /// Appends frames already encoded.
    fn pending_extend(&mut self, frames: &[u8]) {
        let n = frames.len();
        self.pending.space(n)[..n].copy_from_slice(frames);
        self.pending.advance(n);
    }

    /// A record on `stream` that does not use the delta base.
    fn record(&mut self, stream: u32, rec: &Record<'_>) {
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = rec.encode(Delta::default(), &mut buf) {
            self.frame(stream, &[&buf[..n]]);
        }
    }

    fn control(&mut self, rec: &Record<'_>) {
        self.record(0, rec);
    }

    fn rescan_modules(&mut self) {
        let loads = modules::loads();
        if loads == self.loads && !self.modules.is_empty() {
            return;
        }
        self.loads = loads;
        for m in modules::scan() {
            if self.modules.contains(&m) {
                continue;
            }
            for &(s, e) in &m.exec {
                crate::stacks::add_code_range(s as usize, e as usize);
            }
            if self.header_written {
                self.control(&module_record(&m));
            }
            self.modules.push(m);
        }
    }

    /// Writes the pending frames; until the tick rate is measured (or when
    /// `force`d) the header goes first.
    fn write_out(&mut self, force: bool) {
        if !self.header_written {
            if !force && clock::since(&self.calibration) < CALIBRATION {
                return;
            }
            if self.modules.is_empty() {
                self.rescan_modules();
            }
            let held = self.pending.bytes().to_vec();
            let deferred = std::mem::take(&mut self.deferred);
            self.pending.clear();
            // From here on stream 0 is framed directly, the header first.
            self.header_written = true;
            // One 0x00 first: after a reset in the middle of a frame (a
            // process writing to the same pipe again), it ends the half
            // frame, so this header is not lost with it.
            self.pending.space(1)[0] = 0;
            self.pending.advance(1);
            let program = self
                .modules
                .first()
                .map(|m| m.path.clone())
                .unwrap_or_default();
            let build_id = self
                .modules
                .first()
                .map(|m| m.build_id.clone())
                .unwrap_or_default();
            let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
            let mut h = Header::new(
                core::mem::size_of::<usize>() as u8,
                clock::ticks_per_second(&self.calibration),
                &program,
            );
            h.build_id = &build_id;
            h.target = &target;
            self.control(&Record::Header(h));
            for m in self.modules.clone() {
                self.control(&module_record(&m));
            }
            // The held frames, with stream 0's deferred records framed
            // where they were, so the file keeps the order they came in.
            let mut at = 0;
            for (pos, record) in deferred {
                self.pending_extend(&held[at..pos]);
                self.frame(0, &[&record]);
                at = pos;
            }
            self.pending_extend(&held[at..]);
        }
        if self.pending.is_empty() || self.error.is_some() {
            self.pending.clear();
            return;
        }
        // In pieces, each one progress for threads waiting on a full ring
        // (see `full_ring`): a backlog going out slowly is no stuck writer.
        let written = self
            .pending
            .bytes()
            .chunks(WRITE_PIECE)
            .try_for_each(|piece| {
                self.file.write_all(piece)?;
                full_ring::writer_progressed();
                Ok::<(), io::Error>(())
            });
        if let Err(e) = written {
            eprintln!(
                "memscope: writing {} failed: {e}; recording stops",
                self.path.display()
            );
            self.error = Some(e);
        }
        self.pending.clear();
    }
}

/// The frames of one cycle. The buffer keeps its length (and its bytes)
/// between cycles, so framing writes into memory that is already there
/// instead of zero-filling a fresh stretch for every frame (a `memset` of
/// every byte written, 10 % of the writer's instructions).
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    len: usize,
}

impl Pending {
    /// At least `n` writable bytes after the frames so far.
    fn space(&mut self, n: usize) -> &mut [u8] {
        let need = self.len + n;
        if self.buf.is_empty() {
            // Zeroed by the allocator (fresh pages from the kernel for a
            // buffer this size), not by a `memset` of the whole megabyte.
            self.buf = vec![0; need.max(1 << 20)];
        } else if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        &mut self.buf[self.len..]
    }

    /// The first `n` bytes of the last [`space`](Self::space) hold frames.
    fn advance(&mut self, n: usize) {
        self.len += n;
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Whether `s`'s owner is settled: it cannot commit an event this drain
/// misses with a timestamp below the reading this cycle published. Checked
/// before the drain; waits up to [`SETTLE_PATIENCE`] for the owner to leave
/// a record.
///
/// The watermark a cycle writes is at most the reading it published at its
/// start, before it checks any thread. An event the drain misses is one
/// whose record the owner entered (`seq` odd) after this check saw it
/// outside one: its clock read, or its load of `recent` (a free's), comes
/// after that entry in program order. Only a store buffer could put them
/// out of step (the entry's store not yet seen here while the read already
/// ran), and between the publication and the checks every running thread
/// passed a full barrier ([`barrier_on_every_thread`]; the interrupt's
/// return is serializing, so a later clock read runs after it too): an
/// entry from before the barrier is seen here, and a read after it sees the
/// publication and is later than the reading. (Without `membarrier`, the
/// [`PUBLISH_GAP`] stands in: far longer than a store buffer takes to
/// drain.) So its timestamp is at least the watermark.
///
/// Not settled: the owner inside a record past the patience (descheduled
/// there), waiting for room outside the window with a timestamp already
/// read (`Slot::retrying`), or inside a realloc (`Slot::reallocating`, from
/// before its inner call: the decoder orders the release of the old block
/// at the thread's previous timestamp, and the block may be handed to
/// another thread before the realloc's record is written; a watermark past
/// that timestamp would let that thread's allocation of it be merged before
/// its release). [`allows`] then holds the watermark down.
fn settled(s: &Slot) -> bool {
    // Acquire: pairs with `leave`'s Release (and with the Release fence of
    // `enter` for a later value), so that a record seen closed is in the
    // ring for the drain that follows.
    let seq = s.seq.load(Ordering::Acquire);
    if seq % 2 == 1 {
        let give_up = Instant::now() + SETTLE_PATIENCE;
        // Any change means the record seen open was closed (a later odd
        // value is a record entered after this check began).
        // Acquire: as above.
        while s.seq.load(Ordering::Acquire) == seq {
            if Instant::now() > give_up {
                return false;
            }
            std::hint::spin_loop();
        }
    }
    // Acquire: pairs with the Release that ends a wait for room, so that
    // the event pushed then is in the ring for the drain.
    s.retrying.load(Ordering::Acquire).is_multiple_of(2)
        // Acquire: pairs with `realloc_end`'s Release, as above.
        && s.reallocating.load(Ordering::Acquire) == 0
}

/// The watermark thread `s` allows this cycle: `horizon` if it is
/// [`settled`] now. Else (descheduled inside a record, or waiting for room)
/// the later of what it allowed when it was last settled (an event it has
/// not committed yet was entered after that check) and the timestamp of
/// its latest record (`Slot::pending_ts`: its timestamps never decrease,
/// and every record before that one was committed before it was stored,
/// so the drain that follows takes them) — but not that timestamp inside a
/// realloc, whose release the decoder orders at the one before.
fn allows(s: &Slot, horizon: u64) -> u64 {
    // SAFETY: the writer (under `STATE`'s lock) is the slot's only consumer,
    // the only user of `horizon`.
    let h = unsafe { &mut *s.horizon.get() };
    if settled(s) {
        *h = horizon;
    } else if s.reallocating.load(Ordering::Acquire) == 0 {
        // (Acquire: as in `settled`.) Not inside a realloc, whose released
        // block is ordered at the previous timestamp, before this one.
        // Acquire: pairs with the Release store of the record path, so the
        // records committed before it are in the ring for the drain.
        *h = (*h).max(s.pending_ts.load(Ordering::Acquire));
    }
    *h
}

fn module_record(m: &ModuleInfo) -> Record<'_> {
    Record::Module(Module {
        base: m.base,
        size: m.size,
        path: &m.path,
        build_id: &m.build_id,
    })
}

/// The stream's totals as its end record states them.
fn counts(s: &Slot) -> End {
    let c = &s.counts;
    End {
        allocs: c.allocs.get(),
        deallocs: c.deallocs.get(),
        reallocs: c.reallocs.get(),
        failed: c.failed.get(),
        lost: c.lost.get(),
        streams: 0,
    }
}

/// Bytes `[at, at + len)` of `x ++ y`, as two slices.
fn sub<'a>(x: &'a [u8], y: &'a [u8], at: usize, len: usize) -> (&'a [u8], &'a [u8]) {
    let end = at + len;
    if end <= x.len() {
        (&x[at..end], &[])
    } else if at >= x.len() {
        (&y[at - x.len()..end - x.len()], &[])
    } else {
        (&x[at..], &y[..end - x.len()])
    }
}
