//! Records: a frame's bytes turned into heap events, with each stream's delta
//! base, stack table and counts.
//!
//! Hot records are delta-encoded against their stream's previous record, so a
//! lost frame leaves the base unknown. After any damage every stream is
//! *unsynced*: its address- and time-bearing records are skipped (and counted)
//! until that stream's next `Sync` record, instead of being decoded against a
//! wrong base. Extension records (stacks, threads, ends…) carry no deltas and
//! are kept.

use memscope_core::wire::{self, DecodeError, Delta, Record};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Site id of events that carry no stack (or refer to a stack that was lost).
pub const NO_STACK: u32 = 0;

/// An alignment, kept as its exponent: a decoded alignment is always a
/// power of two (the wire format stores its exponent, and an explicit one
/// that is not a power of two is a decoding error). One byte where a `u64`
/// made every [`Event`] 64 bytes instead of 40 and every live block 72
/// instead of 64: the events are written by one thread and read by the
/// other, and the live table's blocks are its cache misses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Align(u8);

impl Align {
    /// The alignment of `bytes`, a power of two (of any other value its
    /// lowest set bit is kept; of 0, 1).
    #[inline]
    pub const fn new(bytes: u64) -> Align {
        if bytes == 0 {
            Align(0)
        } else {
            Align(bytes.trailing_zeros() as u8)
        }
    }

    /// In bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        1 << self.0
    }

    /// Its exponent: `bytes() == 1 << exponent()`.
    #[inline]
    pub const fn exponent(self) -> u8 {
        self.0
    }

    /// The alignment of `1 << exponent` (an exponent past 63 is kept
    /// modulo 64, as `bytes` would shift).
    #[inline]
    pub const fn from_exponent(exponent: u8) -> Align {
        Align(exponent & 63)
    }
}

/// What happened, decoded and with absolute values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A successful `alloc`/`alloc_zeroed`.
    Alloc {
        /// Block address.
        addr: u64,
        /// Requested size.
        size: u64,
        /// Requested alignment.
        align: Align,
        /// Through `alloc_zeroed`.
        zeroed: bool,
    },
    /// An `alloc` that returned null.
    AllocFailed {
        /// Requested size.
        size: u64,
        /// Requested alignment.
        align: Align,
    },
    /// `dealloc`.
    Dealloc {
        /// Block address.
        addr: u64,
        /// Size passed to `dealloc`.
        size: u64,
        /// Alignment passed to `dealloc`.
        align: Align,
        /// Whether the event's timestamp was read for this free.
        ts_exact: bool,
    },
    /// The release half of a successful realloc, ordered at the stream's
    /// previous timestamp; the [`Op::Realloc`] of the same call follows.
    ReallocRelease {
        /// Old block address.
        old_addr: u64,
        /// Old size as passed in.
        old_size: u64,
        /// Alignment as passed in.
        align: Align,
    },
    /// The allocation half of a successful realloc. Its old block and
    /// size are the [`Op::ReallocRelease`] just before it in its stream
    /// (not repeated here, so that an [`Event`] is 40 bytes).
    Realloc {
        /// New block address.
        new_addr: u64,
        /// New size.
        new_size: u64,
        /// Alignment.
        align: Align,
    },
    /// A realloc that returned null: the old block stays (its size is the
    /// live block's, not repeated here).
    ReallocFailed {
        /// The block passed in.
        old_addr: u64,
        /// Size asked for.
        new_size: u64,
        /// Alignment.
        align: Align,
    },
    /// `track!`: the block at `addr` is named (index into [`Session::names`]).
    Name {
        /// Block address.
        addr: u64,
        /// Index into [`Session::names`].
        name: u32,
    },
    /// A scope opened on this thread (index into [`Session::strings`]).
    ScopeEnter {
        /// Interned scope name.
        name: u32,
    },
    /// The innermost scope of this thread closed.
    ScopeExit,
    /// A user mark (index into [`Session::strings`]).
    Mark {
        /// Interned mark name.
        name: u32,
    },
}

impl Op {
    /// Frees order before allocations at the same timestamp across streams.
    #[inline]
    pub fn is_release(&self) -> bool {
        matches!(self, Op::Dealloc { .. } | Op::ReallocRelease { .. })
    }
}

/// One event of the merged stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Timestamp in ticks (see [`HeaderInfo::ticks_per_second`]).
    pub ts: u64,
    /// Stream (thread) that recorded it.
    pub stream: u32,
    /// Global stack id ([`NO_STACK`] when none).
    pub stack: u32,
    /// What happened.
    pub op: Op,
}

// Every decoded event is written by the decoding thread and read by the
// analysing one: keep it at 40 bytes (it was 64 with `u64` alignments and a
// realloc's old block repeated in its allocation half).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Event>() == 40);

/// The session header, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Format version of the writer.
    pub version: u16,
    /// Pointer width in bytes.
    pub pointer_width: u8,
    /// Ticks per second; 0 when timestamps only order events.
    pub ticks_per_second: u64,
    /// Program name or path.
    pub program: String,
    /// GNU build-id, may be empty.
    pub build_id: Vec<u8>,
    /// Target triple or core.
    pub target: String,
    /// Byte offset of the frame that held it.
    pub offset: u64,
}

/// A recorded module (executable or shared library).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Load address of the first segment.
    pub base: u64,
    /// Mapped size.
    pub size: u64,
    /// File path as the program saw it.
    pub path: String,
    /// GNU build-id, may be empty.
    pub build_id: Vec<u8>,
}

/// A name given with `track!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameInfo {
    /// Variable name.
    pub var: String,
    /// Type name.
    pub type_name: String,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
}

/// Distinct call stacks of a session, shared by all its streams.
#[derive(Default)]
pub struct StackTable {
    frames: Vec<Box<[u64]>>,
    index: FxHashMap<Box<[u64]>, u32>,
}

impl StackTable {
    /// Interns `frames`; ids start at 1 ([`NO_STACK`] is 0).
    pub fn intern(&mut self, frames: &[u64]) -> u32 {
        if let Some(&id) = self.index.get(frames) {
            return id;
        }
        self.frames.push(frames.into());
        let id = self.frames.len() as u32;
        self.index.insert(frames.into(), id);
        id
    }

    /// Return addresses of stack `id`, innermost first (empty for [`NO_STACK`]).
    pub fn get(&self, id: u32) -> &[u64] {
        id.checked_sub(1)
            .and_then(|i| self.frames.get(i as usize))
            .map_or(&[], |f| f)
    }

    /// Number of distinct stacks.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// A stream's stack ids → session stack ids. Producers number their stacks
/// from 0 up, so ids that continue that count index a vector (every heap
/// event looks one up); an id far past it (only a damaged unchecked frame or
/// a hostile trace sends one) goes to a map, so that a claimed id costs no
/// more memory than the record that claims it.
#[derive(Debug, Default)]
struct LocalStacks {
    dense: Vec<u32>,
    sparse: FxHashMap<u32, u32>,
}

/// Local ids below this may be stored densely (4 MiB per stream at most).
const DENSE_STACK_IDS: u32 = 1 << 20;

/// How far past the dense table's end an id may be and still extend it: a
/// 16 KiB step, so 20 000 hostile streams cannot each claim 4 MiB.
const DENSE_GROWTH: usize = 4096;

impl LocalStacks {
    fn insert(&mut self, local: u32, global: u32) {
        let i = local as usize;
        if local < DENSE_STACK_IDS && i < self.dense.len() + DENSE_GROWTH {
            if i >= self.dense.len() {
                self.dense.resize(i + 1, NO_STACK);
            }
            self.dense[i] = global;
        } else {
            self.sparse.insert(local, global);
        }
    }

    #[inline]
    fn get(&self, local: u32) -> Option<u32> {
        match self.dense.get(local as usize) {
            Some(&g) if g != NO_STACK => Some(g),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&local).copied(),
        }
    }
}

/// Per-stream counts of what was decoded, to compare with the stream's End.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// alloc calls (failed included).
    pub allocs: u64,
    /// dealloc calls.
    pub deallocs: u64,
    /// realloc calls (failed included).
    pub reallocs: u64,
    /// alloc and realloc calls that returned null.
    pub failed: u64,
    /// Events the producer reported lost (Lost records).
    pub lost: u64,
    /// Heap records skipped because the stream was unsynced after damage.
    pub skipped_unsynced: u64,
}

/// What the decoder knows of one stream.
#[derive(Debug)]
pub struct StreamState {
    delta: Delta,
    synced: bool,
    local_stacks: LocalStacks,
    /// Largest timestamp decoded so far.
    pub last_ts: u64,
    /// Decoded counts.
    pub counts: Counts,
    /// The last End record, if any.
    pub end: Option<wire::End>,
    /// The Thread record, if any.
    pub thread: Option<(u64, String)>,
    /// Whether any heap event was decoded.
    pub has_events: bool,
}

impl StreamState {
    fn new(synced: bool) -> Self {
        StreamState {
            delta: Delta::default(),
            synced,
            local_stacks: LocalStacks::default(),
            last_ts: 0,
            counts: Counts::default(),
            end: None,
            thread: None,
            has_events: false,
        }
    }
}

/// A record that did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// Stream id.
    pub stream: u32,
    /// Offset of the frame that held it.
    pub frame_offset: u64,
    /// Offset of the record within the frame's decoded records.
    pub position: usize,
    /// Record bytes given up with it (the rest of the frame).
    pub bytes_lost: usize,
    /// Why.
    pub error: DecodeError,
}

/// Everything a session (from one Header to the next) declared, besides its
/// heap events.
#[derive(Default)]
pub struct Session {
    /// The header, `None` when the input started mid-session.
    pub header: Option<HeaderInfo>,
    /// Heap regions ([start, start + len)).
    pub regions: Vec<(u64, u64)>,
    /// Recorded modules.
    pub modules: Vec<ModuleInfo>,
    /// Streams by id.
    pub streams: BTreeMap<u32, StreamState>,
    /// Distinct stacks.
    pub stacks: StackTable,
    /// `track!` names.
    pub names: Vec<NameInfo>,
    /// Scope and mark names (interned).
    pub strings: Vec<String>,
    string_index: FxHashMap<String, u32>,
    /// Records that did not decode.
    pub record_errors: u64,
    /// The first few of them.
    pub record_error_examples: Vec<RecordError>,
    /// Events referring to a stack id never defined (its Stack record lost).
    pub unknown_stack_refs: u64,
    /// Extension records of kinds this decoder does not know (skipped).
    pub unknown_records: u64,
    /// Whether damage was seen during this session.
    pub damaged: bool,
    /// Whether any stream carried a heap event.
    pub has_events: bool,
    /// The latest watermark: every heap event with an earlier timestamp was
    /// in a frame before it (0: none yet).
    pub watermark: u64,
}

impl Session {
    /// The name of stream `stream`'s thread, if it declared one.
    pub fn thread_name(&self, stream: u32) -> Option<&str> {
        self.streams
            .get(&stream)
            .and_then(|s| s.thread.as_ref())
            .map(|t| t.1.as_str())
            .filter(|n| !n.is_empty())
    }
}

/// What [`Decoder::decode_frame`] found that the caller must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameOutcome {
    /// The whole frame was read.
    Done,
    /// A second Header starts at this position of the frame's records: the
    /// target was reset. Finish the session, call [`Decoder::start_session`],
    /// then decode the frame again from this position.
    Reset(usize),
    /// The header announces a format newer than this decoder reads.
    UnsupportedVersion(u16),
}

/// Heap regions a session may declare; more are record errors.
pub const MAX_HEAP_REGIONS: usize = 64;

/// How many record errors are kept as examples.
const MAX_EXAMPLES: usize = 20;

/// Decodes frames into [`Event`]s and session metadata.
#[derive(Default)]
pub struct Decoder {
    /// The session being decoded.
    pub session: Session,
    /// Whether damage was seen since the session started and streams not yet
    /// seen must wait for a Sync.
    damage_pending: bool,
    /// The last frame decoded held an End record.
    pub frame_ended: bool,
    /// Watermarks are not taken (see [`Decoder::pause_watermarks`]).
    watermarks_paused: bool,
}

impl Decoder {
    /// A decoder at the start of the input.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Ends the current session and returns it; the next frames start a new one.
    pub fn start_session(&mut self) -> Session {
        self.damage_pending = false;
        std::mem::take(&mut self.session)
    }

    /// While frames of some stream wait for an earlier one of theirs (the
    /// input reordered, or a frame missing), a Watermark record read may
    /// promise events that are in the frame still to come: none is taken
    /// until no frame waits (the merge then goes by its window).
    pub fn pause_watermarks(&mut self, paused: bool) {
        self.watermarks_paused = paused;
    }

    /// Bytes were lost: every stream's delta base is now unknown until its
    /// next Sync, including streams whose first frames may have been lost.
    pub fn damage(&mut self) {
        self.damage_pending = true;
        self.session.damaged = true;
        for s in self.session.streams.values_mut() {
            s.synced = false;
        }
    }

    /// Frames of `stream` are missing (its frame numbers say so): its delta
    /// base is unknown until its next Sync, even if none of it was seen yet.
    pub fn desync_stream(&mut self, stream: u32) {
        let st = self.session.streams.entry(stream);
        st.or_insert_with(|| StreamState::new(false)).synced = false;
    }

    /// Decodes the records of one frame of `stream` from record position
    /// `from`, appending heap events to `out`.
    pub fn decode_frame(
        &mut self,
        stream: u32,
        records: &[u8],
        frame_offset: u64,
        from: usize,
        out: &mut impl FnMut(Event),
    ) -> FrameOutcome {
        let damage_pending = self.damage_pending;
        let watermarks_paused = self.watermarks_paused;
        self.frame_ended = false;
        let Session {
            header,
            regions,
            modules,
            streams,
            stacks,
            names,
            strings,
            string_index,
            record_errors,
            record_error_examples,
            unknown_stack_refs,
            unknown_records,
            has_events,
            damaged: _,
            watermark,
        } = &mut self.session;
        let Some(input) = records.get(from..) else {
            return FrameOutcome::Done;
        };
        let st = streams
            .entry(stream)
            .or_insert_with(|| StreamState::new(!damage_pending));
        let mut delta = st.delta;
        let mut prev_ts = delta.ts;
        let mut outcome = FrameOutcome::Done;
        // Offset in `input` of the next record.
        let mut at = 0;
        loop {
            // Allocations and frees of a synced stream (nearly every record)
            // without the general `Record`: the decoding thread's largest
            // cost, on which a 2-thread trace's decode waits as much as on
            // the analyses.
            if st.synced {
                while let Some((c, n)) = Record::decode_common(&input[at..], &mut delta) {
                    at += n;
                    prev_ts = c.ts;
                    let align = Align::from_exponent(c.align_log2);
                    let op = if c.kind == wire::kind::DEALLOC {
                        st.counts.deallocs += 1;
                        Op::Dealloc {
                            addr: c.addr,
                            size: c.size,
                            align,
                            ts_exact: c.ts_exact,
                        }
                    } else {
                        st.counts.allocs += 1;
                        Op::Alloc {
                            addr: c.addr,
                            size: c.size,
                            align,
                            zeroed: c.kind == wire::kind::ALLOC_ZEROED,
                        }
                    };
                    let stack = resolve_stack(unknown_stack_refs, st, c.stack);
                    push(st, out, stream, c.ts, stack, op);
                }
            }
            if at >= input.len() {
                break;
            }
            let pos = from + at;
            let rec = match Record::decode(&input[at..], &mut delta) {
                Ok((rec, n)) => {
                    at += n;
                    rec
                }
                Err(error) => {
                    *record_errors += 1;
                    if record_error_examples.len() < MAX_EXAMPLES {
                        record_error_examples.push(RecordError {
                            stream,
                            frame_offset,
                            position: pos,
                            bytes_lost: input.len() - at,
                            error,
                        });
                    }
                    // The records after this one in the frame are unreadable,
                    // so the stream's base no longer matches the producer's.
                    st.synced = false;
                    break;
                }
            };
            let ts_before = prev_ts;
            match rec {
                Record::Sync(d) => {
                    st.synced = true;
                    prev_ts = d.ts;
                }
                Record::Lost { count } => st.counts.lost = st.counts.lost.saturating_add(count),
                Record::Alloc(a) => {
                    prev_ts = a.ts;
                    if !st.synced {
                        st.counts.skipped_unsynced += 1;
                        continue;
                    }
                    st.counts.allocs += 1;
                    let op = match a.addr {
                        Some(addr) => Op::Alloc {
                            addr,
                            size: a.size,
                            align: Align::new(a.align),
                            zeroed: a.zeroed,
                        },
                        None => {
                            st.counts.failed += 1;
                            Op::AllocFailed {
                                size: a.size,
                                align: Align::new(a.align),
                            }
                        }
                    };
                    let stack = resolve_stack(unknown_stack_refs, st, a.stack);
                    push(st, out, stream, a.ts, stack, op);
                }
                Record::Dealloc(d) => {
                    prev_ts = d.ts;
                    if !st.synced {
                        st.counts.skipped_unsynced += 1;
                        continue;
                    }
                    st.counts.deallocs += 1;
                    let stack = resolve_stack(unknown_stack_refs, st, d.stack);
                    let op = Op::Dealloc {
                        addr: d.addr,
                        size: d.size,
                        align: Align::new(d.align),
                        ts_exact: d.ts_exact,
                    };
                    push(st, out, stream, d.ts, stack, op);
                }
                Record::Realloc(r) => {
                    prev_ts = r.ts;
                    if !st.synced {
                        st.counts.skipped_unsynced += 1;
                        continue;
                    }
                    st.counts.reallocs += 1;
                    let stack = resolve_stack(unknown_stack_refs, st, r.stack);
                    match r.new_addr {
                        Some(new_addr) => {
                            let release = Op::ReallocRelease {
                                old_addr: r.old_addr,
                                old_size: r.old_size,
                                align: Align::new(r.align),
                            };
                            push(st, out, stream, ts_before, stack, release);
                            let op = Op::Realloc {
                                new_addr,
                                new_size: r.new_size,
                                align: Align::new(r.align),
                            };
                            push(st, out, stream, r.ts, stack, op);
                        }
                        None => {
                            st.counts.failed += 1;
                            let op = Op::ReallocFailed {
                                old_addr: r.old_addr,
                                new_size: r.new_size,
                                align: Align::new(r.align),
                            };
                            push(st, out, stream, r.ts, stack, op);
                        }
                    }
                }
                Record::Header(h) => {
                    if header.is_some() || st.has_events || *has_events {
                        outcome = FrameOutcome::Reset(pos);
                        break;
                    }
                    if h.version > wire::FORMAT_VERSION {
                        outcome = FrameOutcome::UnsupportedVersion(h.version);
                        break;
                    }
                    *header = Some(HeaderInfo {
                        version: h.version,
                        pointer_width: h.pointer_width,
                        ticks_per_second: h.ticks_per_second,
                        program: h.program.to_owned(),
                        build_id: h.build_id.to_vec(),
                        target: h.target.to_owned(),
                        offset: frame_offset,
                    });
                }
                Record::HeapRegion(r) => {
                    // Every region gets a block map at the peak and at the
                    // end: a target has a few heaps, a hostile trace could
                    // declare one per record. The same region again is
                    // harmless; more than MAX_HEAP_REGIONS is an error.
                    let region = (r.start, r.len);
                    let known = regions.contains(&region);
                    if !known && regions.len() < MAX_HEAP_REGIONS {
                        regions.push(region);
                    } else if !known {
                        *record_errors += 1;
                        if record_error_examples.len() < MAX_EXAMPLES {
                            record_error_examples.push(RecordError {
                                stream,
                                frame_offset,
                                position: pos,
                                bytes_lost: 0,
                                error: DecodeError::OutOfRange,
                            });
                        }
                    }
                }
                Record::End(e) => {
                    st.end = Some(e);
                    self.frame_ended = true;
                }
                Record::Stack(s) => {
                    let mut frames = [0u64; wire::MAX_STACK_DEPTH];
                    let mut n = 0;
                    for (slot, f) in frames.iter_mut().zip(s.frames.iter()) {
                        *slot = f;
                        n += 1;
                    }
                    let id = stacks.intern(&frames[..n]);
                    st.local_stacks.insert(s.id, id);
                }
                Record::Thread(t) => st.thread = Some((t.os_id, t.name.to_owned())),
                Record::ScopeEnter { name } => {
                    let name = intern(strings, string_index, name);
                    push_meta(st, out, stream, prev_ts, Op::ScopeEnter { name });
                }
                Record::ScopeExit => push_meta(st, out, stream, prev_ts, Op::ScopeExit),
                Record::Mark { name } => {
                    let name = intern(strings, string_index, name);
                    push_meta(st, out, stream, prev_ts, Op::Mark { name });
                }
                Record::Name(n) => {
                    names.push(NameInfo {
                        var: n.var.to_owned(),
                        type_name: n.type_name.to_owned(),
                        file: n.file.to_owned(),
                        line: n.line,
                    });
                    let name = (names.len() - 1) as u32;
                    push_meta(st, out, stream, prev_ts, Op::Name { addr: n.addr, name });
                }
                Record::Module(m) => modules.push(ModuleInfo {
                    base: m.base,
                    size: m.size,
                    path: m.path.to_owned(),
                    build_id: m.build_id.to_vec(),
                }),
                Record::Watermark { ts } if !watermarks_paused => {
                    *watermark = (*watermark).max(ts);
                }
                Record::Watermark { .. } => {}
                Record::Unknown { .. } => *unknown_records += 1,
            }
        }
        st.delta = delta;
        *has_events |= st.has_events;
        outcome
    }
}

fn intern(strings: &mut Vec<String>, index: &mut FxHashMap<String, u32>, s: &str) -> u32 {
    if let Some(&i) = index.get(s) {
        return i;
    }
    strings.push(s.to_owned());
    let i = (strings.len() - 1) as u32;
    index.insert(s.to_owned(), i);
    i
}

#[inline]
fn resolve_stack(unknown: &mut u64, st: &StreamState, local: Option<u32>) -> u32 {
    match local {
        None => NO_STACK,
        Some(id) => match st.local_stacks.get(id) {
            Some(g) => g,
            None => {
                *unknown += 1;
                NO_STACK
            }
        },
    }
}

#[inline]
fn push(
    st: &mut StreamState,
    out: &mut impl FnMut(Event),
    stream: u32,
    ts: u64,
    stack: u32,
    op: Op,
) {
    st.has_events = true;
    st.last_ts = st.last_ts.max(ts);
    out(Event {
        ts,
        stream,
        stack,
        op,
    });
}

#[inline]
fn push_meta(st: &mut StreamState, out: &mut impl FnMut(Event), stream: u32, ts: u64, op: Op) {
    // Names, scopes and marks depend on no delta, so they are kept even while
    // the stream is unsynced; their timestamp is the stream's last known one.
    // While unsynced, `ts` was decoded against an unknown base.
    let ts = if st.synced { ts } else { st.last_ts };
    out(Event {
        ts,
        stream,
        stack: NO_STACK,
        op,
    });
}
