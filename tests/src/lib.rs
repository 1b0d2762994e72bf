//! Shared pieces of memscope's cross-crate tests.
//!
//! - [`counting`]: a global allocator wrapper for *child programs* (the
//!   binaries in `src/bin/`) that counts, per labelled thread, every call that
//!   reaches the allocator it wraps. Wrapped around `MemScope`, it counts
//!   exactly the calls memscope sees, whatever memscope does with them
//!   (records, loses, or passes through untracked).
//! - [`trace`]: decodes a memscope-std trace with memscope-core's `Deframer`
//!   and `Records` into per-stream summaries, keeping damage as data (fault
//!   tests assert on it) instead of panicking, and checks that every stream
//!   proves itself complete.
//!
//! A fault or stress test runs a child with `MEMSCOPE_OUT` set, reads the
//! `counted <label> <allocs> <deallocs> <reallocs>` lines it prints
//! ([`parse_counted`]), decodes the trace ([`trace::decode`]) and compares.

pub mod counting {
    //! Per-thread call counts of a wrapped global allocator, for child programs.
    //!
    //! A thread opts in with [`begin`]`(label)` (labels `1..LABELS`); from then
    //! until it dies, every `alloc`/`alloc_zeroed`, `dealloc` and `realloc` it
    //! makes is counted under its label, including calls from its thread-local
    //! destructors and from signal handlers that interrupt it. The counters are
    //! atomics (a read-modify-write is one instruction, so a signal handler on
    //! the same thread cannot tear it); other threads read them with [`get`]
    //! after joining the counted thread.

    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::Cell;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// How many labels there are (label 0 means "not counted").
    pub const LABELS: usize = 256;

    static COUNTS: [[AtomicU64; 3]; LABELS] = [const { [const { AtomicU64::new(0) }; 3] }; LABELS];

    thread_local! {
        // Const-initialised, no destructor: readable from any allocator call,
        // also during thread exit.
        static LABEL: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts the calling thread's allocator calls under `label` from now on.
    pub fn begin(label: usize) {
        assert!(label > 0 && label < LABELS, "label {label} out of range");
        LABEL.with(|l| l.set(label));
    }

    /// Stops counting the calling thread.
    pub fn end() {
        LABEL.with(|l| l.set(0));
    }

    /// (allocs, deallocs, reallocs) counted under `label` so far.
    pub fn get(label: usize) -> [u64; 3] {
        // Relaxed: read after joining the counted thread (the join orders it)
        // or as a moment's value.
        COUNTS[label].each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    fn bump(kind: usize) {
        // `try_with`: never panics, also after the thread's TLS is torn down.
        let label = LABEL.try_with(Cell::get).unwrap_or(0);
        if label != 0 {
            // Relaxed: independent counters; readers synchronise by joining.
            COUNTS[label][kind].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spawns a thread named `name` that opens the `counted` scope (marking in
    /// its stream where counting starts), counts under `label`, then runs `f`.
    pub fn spawn<T: Send + 'static>(
        name: &str,
        label: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _scope = memscope_std::Scope::enter(crate::trace::MARK);
                begin(label);
                f()
            })
            .expect("spawn a thread")
    }

    /// Prints `counted <name> <allocs> <deallocs> <reallocs>` for `label`
    /// (after its thread was joined: everything it did, up to its death).
    pub fn print(name: &str, label: usize) {
        use std::io::Write;
        let [a, d, r] = get(label);
        let line = format!("counted {name} {a} {d} {r}\n");
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes()).expect("stdout");
        out.flush().expect("stdout");
    }

    /// Wraps `A`, counting calls of labelled threads.
    pub struct Counted<A>(pub A);

    // SAFETY: every method forwards to `A` unchanged; counting is an atomic add.
    unsafe impl<A: GlobalAlloc> GlobalAlloc for Counted<A> {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            bump(0);
            // SAFETY: the caller upholds `alloc`'s contract.
            unsafe { self.0.alloc(l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            bump(0);
            // SAFETY: as above.
            unsafe { self.0.alloc_zeroed(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            bump(1);
            // SAFETY: as above.
            unsafe { self.0.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            bump(2);
            // SAFETY: as above.
            unsafe { self.0.realloc(p, l, n) }
        }
    }
}

pub mod trace {
    //! A memscope-std trace, decoded into what fault tests compare.

    use memscope_core::frame::{Deframer, FrameEvent};
    use memscope_core::wire::{Delta, End, Record, Records};
    use std::collections::{BTreeMap, HashMap};

    /// The scope name child programs open when a thread starts being counted
    /// (see [`counting`](crate::counting)): events before it are not counted.
    pub const MARK: &str = "counted";

    /// One thread's stream.
    #[derive(Debug, Default)]
    pub struct Stream {
        pub name: Option<String>,
        pub os_id: u64,
        /// Heap events recorded (alloc, dealloc, realloc).
        pub events: [u64; 3],
        /// Events recorded before the first `ScopeEnter` named [`MARK`].
        pub before_mark: [u64; 3],
        pub marked: bool,
        /// Sum of the stream's `Lost` records.
        pub lost_reported: u64,
        pub end: Option<End>,
        /// Per block size: (allocations, frees) recorded in this stream (a
        /// realloc counts as a free of its old size and an allocation of its
        /// new one).
        pub by_size: HashMap<u64, (u64, u64)>,
        /// Scopes open now (`track_scope!` names, innermost last).
        pub scopes: Vec<String>,
        /// Per scope name: the heap events recorded and the losses reported
        /// while a scope of that name was open (at any depth).
        pub inside: BTreeMap<String, Inside>,
        /// `track!` names: (variable, type, file, line).
        pub names: Vec<(String, String, String, u32)>,
        /// `Stack` records (distinct stacks sent).
        pub stacks: u64,
        /// Allocations that carry a stack id.
        pub allocs_with_stack: u64,
    }

    /// What a stream recorded inside one scope name.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Inside {
        /// Heap events: (alloc, dealloc, realloc).
        pub events: [u64; 3],
        /// Sum of the `Lost` records.
        pub lost: u64,
    }

    impl Stream {
        /// Calls the stream says its thread made (its end record's totals).
        pub fn performed(&self) -> u64 {
            self.end.map_or(0, |e| e.allocs + e.deallocs + e.reallocs)
        }

        pub fn recorded(&self) -> u64 {
            self.events.iter().sum()
        }
    }

    /// A whole trace.
    #[derive(Debug, Default)]
    pub struct Trace {
        /// The bytes start with a 0x00 (memscope-std's writer puts one before
        /// the header, so a reset in the middle of a frame keeps the header).
        pub leading_zero: bool,
        pub headers: u64,
        pub ticks_per_second: u64,
        /// `Module` records on the control stream.
        pub modules: u64,
        pub control_end: Option<End>,
        pub streams: BTreeMap<u32, Stream>,
        /// Recorded blocks per size: +1 per alloc (or realloc to it), -1 per
        /// free (or realloc from it), over all streams. Zero for a size whose
        /// blocks were all freed (by any thread).
        pub balance_by_size: HashMap<u64, i64>,
        /// Allocations (and reallocs) recorded per size.
        pub allocs_by_size: HashMap<u64, u64>,
        /// (offset, length, reason) of every damaged stretch.
        pub damaged: Vec<(u64, u64, String)>,
        /// Records that failed to decode, with their frame's offset.
        pub bad_records: Vec<(u64, String)>,
        /// Records that broke a stream's rules (an event before the `Thread`
        /// record, anything after `End`, an unexpected kind on stream 0).
        pub misplaced: Vec<String>,
        /// `Watermark` records on the control stream, and the latest one.
        pub watermarks: u64,
        pub watermark: u64,
        /// Heap events that broke a watermark's promise: a timestamp below
        /// a watermark written before their frame.
        pub below_watermark: Vec<String>,
    }

    impl Trace {
        /// The stream of the thread named `name` (exactly one).
        pub fn stream(&self, name: &str) -> &Stream {
            let mut it = self
                .streams
                .values()
                .filter(|s| s.name.as_deref() == Some(name));
            let s = it
                .next()
                .unwrap_or_else(|| panic!("no stream for thread {name}"));
            assert!(it.next().is_none(), "two streams for thread {name}");
            s
        }

        /// Calls made after their thread's stream was closed, from the
        /// control stream's end record: (allocs, deallocs, reallocs).
        pub fn untracked(&self) -> [u64; 3] {
            let e = self.control_end.expect("control stream end record");
            [e.allocs, e.deallocs, e.reallocs]
        }

        /// Nothing damaged, every record decoded and in its place, one header,
        /// the control stream's end record counts every stream, and every
        /// stream has an end record whose totals are exactly its recorded
        /// events plus its lost ones.
        pub fn assert_complete(&self) {
            self.assert_intact();
            let c = self.control_end.expect("control stream end record");
            assert_eq!(
                c.streams as usize,
                self.streams.len(),
                "streams opened vs. seen"
            );
            for (id, s) in &self.streams {
                let e = s
                    .end
                    .unwrap_or_else(|| panic!("stream {id} ({:?}) has no end record", s.name));
                assert_eq!(
                    s.recorded() + e.lost,
                    s.performed(),
                    "stream {id} ({:?}): recorded {:?} + lost {} vs end {e:?}",
                    s.name,
                    s.events,
                    e.lost
                );
                assert!(
                    s.lost_reported <= e.lost,
                    "stream {id}: more losses reported ({}) than counted ({})",
                    s.lost_reported,
                    e.lost
                );
                if e.lost == 0 {
                    assert_eq!(s.events, [e.allocs, e.deallocs, e.reallocs], "stream {id}");
                }
            }
        }

        /// Every byte belongs to an intact frame, every record decodes and
        /// sits where the format allows, and there is exactly one header.
        pub fn assert_intact(&self) {
            assert!(self.damaged.is_empty(), "damaged: {:?}", self.damaged);
            assert!(self.bad_records.is_empty(), "bad: {:?}", self.bad_records);
            assert!(self.misplaced.is_empty(), "misplaced: {:?}", self.misplaced);
            assert!(
                self.below_watermark.is_empty(),
                "{} events below an earlier watermark, first: {:?}",
                self.below_watermark.len(),
                self.below_watermark.first()
            );
            assert_eq!(self.headers, 1, "one header");
            assert!(self.ticks_per_second > 0, "a measured tick rate");
        }

        /// `performed(label) == recorded + lost after the mark + untracked`,
        /// summed over the given (label counts, thread name) pairs: every call
        /// of those threads is either recorded, counted as lost in its stream,
        /// or counted as untracked (made after the thread's stream closed) in
        /// the control stream. Exact when these are the only threads that
        /// exit before the end of the recording.
        pub fn assert_accounts_for(&self, counted: &[(String, [u64; 3])]) {
            let mut performed = 0;
            let mut seen = 0;
            for (name, c) in counted {
                let s = self.stream(name);
                assert!(s.marked, "{name}: no `{MARK}` scope in its stream");
                let before: u64 = s.before_mark.iter().sum();
                performed += c.iter().sum::<u64>();
                seen += s.performed() - before;
            }
            let untracked: u64 = self.untracked().iter().sum();
            assert_eq!(
                performed,
                seen + untracked,
                "calls the child counted vs. in-stream totals ({seen}) + untracked ({untracked})"
            );
        }
    }

    /// Decodes a whole trace; damage and bad records are collected, not fatal.
    pub fn decode(bytes: &[u8]) -> Trace {
        let mut buf = vec![0u8; 256 * 1024];
        let mut deframer = Deframer::new(&mut buf);
        let mut deltas: HashMap<u32, Delta> = HashMap::new();
        // memscope-std numbers each stream's frames from 0 (docs/FORMAT.md).
        let mut next_frame: HashMap<u32, u64> = HashMap::new();
        let mut t = Trace {
            leading_zero: bytes.first() == Some(&0),
            ..Trace::default()
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let (n, ev) = deframer.push(rest);
            rest = &rest[n..];
            match ev {
                None => {}
                Some(FrameEvent::Damaged {
                    offset,
                    len,
                    reason,
                }) => t.damaged.push((offset, len, format!("{reason:?}"))),
                Some(FrameEvent::Frame {
                    stream,
                    records,
                    offset,
                }) => {
                    let (seq, records) = memscope_core::frame::split_seq(records);
                    let next = next_frame.entry(stream).or_default();
                    if seq != Some(*next) {
                        t.misplaced.push(format!(
                            "stream {stream}: frame at {offset} numbered {seq:?}, expected {next}"
                        ));
                    }
                    *next = seq.map_or(*next, |n| n + 1);
                    let delta = deltas.entry(stream).or_default();
                    for rec in Records::new(records, delta) {
                        match rec {
                            Ok(rec) => t.add(stream, rec),
                            Err(e) => {
                                t.bad_records.push((offset, format!("{e:?}")));
                                break;
                            }
                        }
                    }
                }
            }
        }
        if let Some(FrameEvent::Damaged {
            offset,
            len,
            reason,
        }) = deframer.finish()
        {
            t.damaged.push((offset, len, format!("{reason:?}")));
        }
        t
    }

    impl Trace {
        fn add(&mut self, stream: u32, rec: Record<'_>) {
            if stream == 0 {
                match rec {
                    Record::Header(h) => {
                        self.headers += 1;
                        self.ticks_per_second = h.ticks_per_second;
                    }
                    Record::Module(_) => self.modules += 1,
                    Record::End(e) => self.control_end = Some(e),
                    Record::Watermark { ts } => {
                        self.watermarks += 1;
                        self.watermark = self.watermark.max(ts);
                    }
                    other => self.misplaced.push(format!("stream 0: {other:?}")),
                }
                return;
            }
            let mut sizes: [(u64, i64); 2] = [(0, 0); 2];
            let s = self.streams.entry(stream).or_default();
            if s.end.is_some() {
                self.misplaced
                    .push(format!("stream {stream}: {rec:?} after its end"));
                return;
            }
            let ts = match rec {
                Record::Alloc(a) => Some(a.ts),
                Record::Dealloc(d) => Some(d.ts),
                Record::Realloc(r) => Some(r.ts),
                _ => None,
            };
            if ts.is_some_and(|ts| ts < self.watermark) {
                self.below_watermark.push(format!(
                    "stream {stream}: {rec:?} below the watermark {}",
                    self.watermark
                ));
            }
            let kind = match rec {
                Record::Alloc(a) => {
                    if a.addr.is_some() {
                        sizes[0] = (a.size, 1);
                    }
                    if a.stack.is_some() {
                        s.allocs_with_stack += 1;
                    }
                    Some(0)
                }
                Record::Dealloc(d) => {
                    sizes[0] = (d.size, -1);
                    Some(1)
                }
                Record::Realloc(r) => {
                    if r.new_addr.is_some() {
                        sizes = [(r.old_size, -1), (r.new_size, 1)];
                    }
                    Some(2)
                }
                Record::Lost { count } => {
                    s.lost_reported += count;
                    for name in open_scopes(&s.scopes) {
                        s.inside.entry(name.clone()).or_default().lost += count;
                    }
                    None
                }
                Record::Thread(th) => {
                    if s.name.is_some() || s.events != [0; 3] {
                        self.misplaced
                            .push(format!("stream {stream}: Thread record not first"));
                    }
                    s.name = Some(th.name.to_string());
                    s.os_id = th.os_id;
                    None
                }
                Record::ScopeEnter { name } => {
                    s.marked |= name == MARK;
                    s.scopes.push(name.to_string());
                    None
                }
                Record::ScopeExit => {
                    if s.scopes.pop().is_none() {
                        self.misplaced
                            .push(format!("stream {stream}: scope exit without enter"));
                    }
                    None
                }
                Record::End(e) => {
                    s.end = Some(e);
                    None
                }
                Record::Name(n) => {
                    s.names
                        .push((n.var.into(), n.type_name.into(), n.file.into(), n.line));
                    None
                }
                Record::Stack(_) => {
                    s.stacks += 1;
                    None
                }
                Record::Sync(_) => None,
                other => {
                    self.misplaced.push(format!("stream {stream}: {other:?}"));
                    None
                }
            };
            if let Some(k) = kind {
                if s.name.is_none() {
                    self.misplaced
                        .push(format!("stream {stream}: event before Thread record"));
                }
                s.events[k] += 1;
                if !s.marked {
                    s.before_mark[k] += 1;
                }
                for name in open_scopes(&s.scopes) {
                    s.inside.entry(name.clone()).or_default().events[k] += 1;
                }
                for (size, d) in sizes {
                    if d != 0 {
                        let e = s.by_size.entry(size).or_default();
                        if d > 0 {
                            e.0 += 1;
                        } else {
                            e.1 += 1;
                        }
                        *self.balance_by_size.entry(size).or_default() += d;
                        if d > 0 {
                            *self.allocs_by_size.entry(size).or_default() += 1;
                        }
                    }
                }
            }
        }
    }

    /// Each scope name open in `scopes` once (a name nested in itself counts
    /// an event once).
    fn open_scopes(scopes: &[String]) -> impl Iterator<Item = &String> {
        scopes
            .iter()
            .enumerate()
            .filter(|(i, n)| !scopes[..*i].contains(n))
            .map(|(_, n)| n)
    }
}

/// The `counted <label> <allocs> <deallocs> <reallocs>` lines of a child's
/// output, in order.
pub fn parse_counted(stdout: &str) -> Vec<(String, [u64; 3])> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("counted "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 4, "bad counted line: {l}");
            (
                f[0].to_string(),
                [f[1], f[2], f[3]].map(|x| x.parse::<u64>().expect("a count")),
            )
        })
        .collect()
}

/// A fresh scratch directory for one test's traces (removed by the test
/// when it passes; left behind for inspection when it fails).
pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("memscope-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
