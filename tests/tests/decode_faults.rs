//! memscope-decode against damaged and hostile input, on a REAL trace: one
//! that memscope-std wrote while the `std_child` program ran (four threads,
//! checked frames, module map, stacks).
//!
//! host-decoder/tests/decode_damage.rs covers the same faults on small
//! synthetic traces (truncation sampled, 60 + 300 random damage rounds, an
//! unknown extension kind, a future version at the start); this file adds
//! the real trace and exact expectations computed from its frames:
//! - truncation at EVERY byte offset: every record of every frame that ends
//!   before the cut is decoded, the cut frame is reported by offset;
//! - 10^4 random byte mutations: every record of an untouched frame is
//!   decoded or counted as skipped (its stream's delta base was unknown);
//! - duplicated, dropped and reordered frames; a target reset; record kinds
//!   from a future version; a trace claiming absurd sizes, counts, stack
//!   depths and string lengths, decoded by memscope-decode's command line in
//!   a child process whose address space is limited (`ulimit -v`).
//!
//! Frame numbers (docs/FORMAT.md): a dropped, duplicated or swapped frame of
//! one thread is named by stream, number and byte offset; a swap is undone.

use memscope_core::frame::{encode_frame, max_frame_len, MAX_HEAD_LEN};
use memscope_core::wire::{self, Delta, Record, Records};
use memscope_decode::error::Error;
use memscope_decode::pipeline::{self, Options, Run};
use memscope_decode::report::{self, Report};
use memscope_decode::source::{compressed, Source};
use memscope_decode::symbolize::Symbolizer;
use memscope_decode::synth::TraceBuilder;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- the trace

/// A real trace: `std_child sequential 3` recorded by memscope-std. Small
/// (about 16 KB) so that truncation at every byte stays cheap; how many
/// frames a thread's stream takes depends on when the writer drains.
fn real_trace() -> &'static [u8] {
    static TRACE: OnceLock<Vec<u8>> = OnceLock::new();
    TRACE.get_or_init(|| record_sequential("real", &["sequential", "3"]))
}

/// A real trace in which every thread's stream spans several frames,
/// whatever the writer's timing: each of two threads records far more than
/// two frames' worth (`FRAME_PAYLOAD_MAX` is 32 KiB), so frame-level edits
/// always find a frame with another of its stream after it.
fn framed_trace() -> &'static [u8] {
    static TRACE: OnceLock<Vec<u8>> = OnceLock::new();
    TRACE.get_or_init(|| record_sequential("framed", &["sequential", "2", "3000"]))
}

fn record_sequential(tag: &str, args: &[&str]) -> Vec<u8> {
    let dir = scratch_dir(tag);
    let out = dir.join("trace.bin");
    let o = Command::new(env!("CARGO_BIN_EXE_std_child"))
        .args(args)
        .env("MEMSCOPE_OUT", &out)
        .current_dir(&dir)
        .output()
        .expect("std_child runs");
    assert!(o.status.success(), "std_child failed: {o:?}");
    let bytes = std::fs::read(&out).expect("std_child wrote its trace");
    assert!(bytes.len() > 4096, "a real trace of some size");
    bytes
}

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memscope-faults-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One frame of a trace: `[start, end)` covers its bytes and its 0x00.
#[derive(Clone, Debug)]
struct FrameSpan {
    start: usize,
    end: usize,
    stream: u32,
    /// Heap records (alloc, dealloc, realloc) it holds.
    heap_records: u64,
    /// Its number in its stream (memscope-std numbers every frame).
    seq: u64,
    /// The frame-number record that starts its records.
    seq_record: Vec<u8>,
    /// Its records after the frame number (head and CRC removed).
    records: Vec<u8>,
}

/// The frames of an undamaged trace, with what each holds.
fn frames_of(trace: &[u8]) -> Vec<FrameSpan> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut d = memscope_core::frame::Deframer::new(&mut buf);
    let mut rest = trace;
    let mut pos = 0usize;
    while !rest.is_empty() {
        let (n, ev) = d.push(rest);
        rest = &rest[n..];
        pos += n;
        match ev {
            Some(memscope_core::frame::FrameEvent::Frame {
                stream,
                records,
                offset,
            }) => {
                let (seq, rest) = memscope_core::frame::split_seq(records);
                let seq = seq.expect("memscope-std numbers its frames");
                let seq_record = records[..records.len() - rest.len()].to_vec();
                let records = rest;
                let mut delta = Delta::default();
                let heap_records = Records::new(records, &mut delta)
                    .map(|r| r.expect("undamaged trace"))
                    .filter(Record::uses_base)
                    .count() as u64;
                out.push(FrameSpan {
                    start: offset as usize,
                    end: pos,
                    stream,
                    heap_records,
                    seq,
                    seq_record,
                    records: records.to_vec(),
                });
            }
            Some(other) => panic!("undamaged trace has damage: {other:?}"),
            None => {}
        }
    }
    out
}

/// Heap records a decode accounted for: decoded, or skipped and counted
/// because their stream's base was unknown after damage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Account {
    decoded: u64,
    skipped: u64,
    damaged_spans: u64,
    record_errors: u64,
}

fn account(run: &Run) -> Account {
    let mut a = Account::default();
    for s in &run.sessions {
        a.damaged_spans += s.damage.spans;
        a.record_errors += s.session.record_errors;
        for st in s.session.streams.values() {
            a.decoded += st.counts.allocs + st.counts.deallocs + st.counts.reallocs;
            a.skipped += st.counts.skipped_unsynced;
        }
    }
    a
}

fn run_live(bytes: &[u8]) -> Result<Run, Error> {
    let mut src = Source::live("live", Box::new(std::io::Cursor::new(bytes.to_vec())));
    pipeline::run(&mut src, &Options::default())
}

fn run_file(bytes: &[u8], tag: &str) -> Result<Run, Error> {
    let p = scratch_dir("files").join(format!("{tag}.bin"));
    std::fs::write(&p, bytes).unwrap();
    let mut src = Source::open(&p).unwrap();
    let r = pipeline::run(&mut src, &Options::default());
    let _ = std::fs::remove_file(&p);
    r
}

fn report_of(run: &Run) -> Report {
    let mut syms: Vec<Symbolizer> = run.sessions.iter().map(|_| Symbolizer::none()).collect();
    report::build(run, &mut syms, &report::Options::default())
}

/// Re-encodes `records` as one checked frame of `stream`.
fn checked_frame(stream: u32, records: &[&[u8]]) -> Vec<u8> {
    let len: usize = records.iter().map(|r| r.len()).sum();
    let mut out = vec![0u8; max_frame_len(MAX_HEAD_LEN + len + 2)];
    let n = encode_frame(stream, true, records, &mut out).unwrap();
    out.truncate(n);
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ------------------------------------------------------------- truncation

#[test]
fn truncation_at_every_byte_keeps_every_whole_frame_and_reports_the_cut_one() {
    let trace = real_trace();
    let frames = frames_of(trace);
    let whole = run_live(trace).unwrap();
    assert!(
        report_of(&whole).summary.complete,
        "the untouched trace is complete"
    );
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!(account(&whole).decoded, total);
    // Every byte offset, one pass each (live source): about 16 000 decodes.
    let mut next_frame = 0;
    let mut expected = 0u64;
    for cut in 0..=trace.len() {
        while next_frame < frames.len() && frames[next_frame].end <= cut {
            expected += frames[next_frame].heap_records;
            next_frame += 1;
        }
        let run = match run_live(&trace[..cut]) {
            Ok(run) => run,
            Err(e) => {
                assert!(
                    next_frame == 0,
                    "cut {cut}: refused with {next_frame} whole frames: {e}"
                );
                continue;
            }
        };
        let a = account(&run);
        assert_eq!(
            (a.decoded, a.skipped, a.record_errors),
            (expected, 0, 0),
            "cut {cut}: records of whole frames"
        );
        let partial_from = frames.get(next_frame).map(|f| f.start).filter(|&s| s < cut);
        let damage: Vec<_> = run
            .sessions
            .iter()
            .flat_map(|s| s.damage.examples.iter())
            .collect();
        match partial_from {
            Some(start) => {
                assert_eq!(damage.len(), 1, "cut {cut}: one damaged span");
                assert_eq!(damage[0].offset, start as u64, "cut {cut}: damage offset");
                assert_eq!(
                    damage[0].len,
                    (cut - start) as u64,
                    "cut {cut}: damage length"
                );
                assert_eq!(damage[0].reason, memscope_core::frame::Damage::Truncated);
            }
            None => assert!(
                damage.is_empty(),
                "cut {cut} at a frame boundary: {damage:?}"
            ),
        }
        if cut < trace.len() {
            assert!(
                !report_of(&run).summary.complete,
                "cut {cut}: a truncated trace claims to be complete"
            );
        }
    }
}

// ------------------------------------------------------- random mutations

#[test]
fn ten_thousand_random_mutations_keep_every_untouched_frame() {
    let trace = real_trace();
    let frames = frames_of(trace);
    let whole = report_of(&run_live(trace).unwrap()).summary;
    let mut rng = Rng(0x5DEE_CE66_D1CE_5EED);
    let (mut caught, mut unnoticed, mut complete_claims) = (0, 0, 0);
    for round in 0..10_000 {
        let mut bytes = trace.to_vec();
        let mut touched = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = rng.next() as u8,
                _ => bytes[i] = 0,
            }
            touched.push(i);
        }
        if bytes == trace {
            continue;
        }
        // A frame is untouched when neither its bytes nor the delimiter
        // before it (which starts it) changed.
        let intact: u64 = frames
            .iter()
            .filter(|f| {
                let from = f.start.saturating_sub(1);
                !touched.iter().any(|&i| i >= from && i < f.end)
            })
            .map(|f| f.heap_records)
            .sum();
        let result = if round % 4 == 0 {
            run_file(&bytes, &format!("mut{round}"))
        } else {
            run_live(&bytes)
        };
        let run = match result {
            Ok(run) => run,
            Err(e) => {
                // The trace's frames carry CRCs and at most 4 bytes changed:
                // frames that check out remain, so refusing the whole input
                // ("not a memscope trace") would drop intact records.
                panic!("round {round}: refused although intact checked frames remain: {e}");
            }
        };
        let a = account(&run);
        assert!(
            a.decoded + a.skipped >= intact,
            "round {round}: {} records of untouched frames, {} decoded + {} skipped",
            intact,
            a.decoded,
            a.skipped
        );
        for s in &run.sessions {
            for d in &s.damage.examples {
                assert!(
                    d.offset + d.len <= bytes.len() as u64,
                    "round {round}: damage {d:?} outside the input"
                );
                assert!(
                    touched
                        .iter()
                        .any(|&i| (i as u64) < d.offset + d.len + 1 && i as u64 + 1 >= d.offset),
                    "round {round}: damage {d:?} reported where nothing changed ({touched:?})"
                );
            }
        }
        let r = report_of(&run);
        if a.damaged_spans + a.record_errors > 0 {
            caught += 1;
            assert!(!r.summary.complete, "round {round}: damaged but complete");
        } else {
            unnoticed += 1;
        }
        if r.summary.complete {
            complete_claims += 1;
            // "Complete" is a claim about every event; it must at least
            // hold the events the undamaged trace holds.
            assert_eq!(
                (
                    r.summary.allocations,
                    r.summary.deallocations,
                    r.summary.reallocations
                ),
                (whole.allocations, whole.deallocations, whole.reallocations),
                "round {round}: claims completeness with other totals"
            );
        }
    }
    eprintln!(
        "10^4 mutations: none refused as not a trace, {caught} with damage reported, \
         {unnoticed} with none reported, {complete_claims} still claimed complete"
    );
    assert!(
        caught > 9_000,
        "most mutations of checked frames are caught: {caught}"
    );
}

// ------------------------------------------------ frame-level edits

/// The trace rebuilt from `frames` (their exact bytes) in the given order,
/// after the 0x00 the producer writes first.
fn rebuild(trace: &[u8], order: &[&FrameSpan]) -> Vec<u8> {
    let lead = trace.iter().take_while(|&&b| b == 0).count();
    trace[..lead]
        .iter()
        .copied()
        .chain(
            order
                .iter()
                .flat_map(|f| trace[f.start..f.end].iter().copied()),
        )
        .collect()
}

/// An event frame (a thread's stream) in the middle of the trace, with heap
/// records, whose stream has another such frame after it.
fn middle_event_frame(frames: &[FrameSpan]) -> usize {
    let candidates: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].stream != 0 && frames[i].heap_records > 0)
        // A frame of its stream before it too: which frame is in the middle
        // depends on how the writer cut the streams, and the tests name the
        // frames around the chosen one.
        .filter(|&i| frames[..i].iter().any(|g| g.stream == frames[i].stream))
        .filter(|&i| {
            frames[i + 1..]
                .iter()
                .any(|g| g.stream == frames[i].stream && g.heap_records > 0)
        })
        .collect();
    assert!(
        !candidates.is_empty(),
        "no stream has two frames with heap records ({} frames)",
        frames.len()
    );
    candidates[candidates.len() / 2]
}

/// The frame of `frames[k]`'s stream before it, if any.
fn previous_of_stream(frames: &[FrameSpan], k: usize) -> Option<usize> {
    (0..k).rev().find(|&i| frames[i].stream == frames[k].stream)
}

/// The frame of `frames[k]`'s stream after it.
fn next_of_stream(frames: &[FrameSpan], k: usize) -> usize {
    (k + 1..frames.len())
        .find(|&i| frames[i].stream == frames[k].stream)
        .expect("middle_event_frame has a successor in its stream")
}

fn frame_sequence(run: &Run) -> Vec<String> {
    run.sessions
        .iter()
        .flat_map(|s| s.damage.frames.messages())
        .collect()
}

/// A frame written twice: its number gives it away, the copy is skipped,
/// nothing is counted twice and the trace is still complete.
#[test]
fn a_duplicated_frame_is_skipped_and_named() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    let mut order: Vec<&FrameSpan> = frames.iter().collect();
    order.insert(k + 1, &frames[k]);
    let bytes = rebuild(trace, &order);
    let run = run_file(&bytes, "dup").unwrap();
    let a = account(&run);
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!(
        (a.decoded, a.skipped),
        (total, 0),
        "the copy is not decoded"
    );
    assert_eq!(
        frame_sequence(&run),
        [format!(
            "frame {} of stream {} repeated at offset {} (skipped)",
            frames[k].seq, frames[k].stream, frames[k].end
        )]
    );
    let r = report_of(&run);
    assert!(r.summary.complete, "{:?}", r.summary.incomplete_reasons);
    assert_eq!(r.summary.errors, 0);
    assert_eq!(r.integrity.frame_sequence, frame_sequence(&run));
    eprintln!("duplicated frame: {:?}", frame_sequence(&run));
}

/// A frame dropped whole (cut out at its delimiters): no damage in the bytes,
/// but the next frame of its stream carries the next number but one. The
/// decoder names the stream, the frame and the bytes it belonged between,
/// and reads that stream's heap records again from its next Sync (the base
/// moved by the dropped frame's deltas), counting the ones in between.
#[test]
fn a_dropped_frame_is_named_by_stream_number_and_offsets() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    let order: Vec<&FrameSpan> = frames
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != k)
        .map(|(_, f)| f)
        .collect();
    let bytes = rebuild(trace, &order);
    let run = run_file(&bytes, "drop").unwrap();
    let a = account(&run);
    assert_eq!(a.damaged_spans, 0, "no damage is visible in the bytes");
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!(a.decoded + a.skipped, total - frames[k].heap_records);
    let (p, n) = (
        previous_of_stream(&frames, k).unwrap(),
        next_of_stream(&frames, k),
    );
    let gone = frames[k].end - frames[k].start;
    let message = format!(
        "stream {}: frame {} missing between byte offsets {} and {}",
        frames[k].stream,
        frames[k].seq,
        frames[p].end,
        frames[n].start - gone
    );
    assert_eq!(frame_sequence(&run), std::slice::from_ref(&message));
    let r = report_of(&run);
    assert!(!r.summary.complete);
    assert!(
        r.summary.incomplete_reasons.contains(&message),
        "{:?}",
        r.summary.incomplete_reasons
    );
    eprintln!(
        "dropped frame at byte {}: {:?} ({} heap records skipped until the next Sync)",
        frames[k].start, r.summary.incomplete_reasons, a.skipped
    );
}

#[test]
fn frames_of_different_threads_in_another_order_decode_the_same() {
    // memscope-std's writer drains the threads' rings in turns, so a trace
    // interleaves streams in any order; the merge orders events by time.
    let trace = real_trace();
    let frames = frames_of(trace);
    let whole = report_of(&run_file(trace, "orig").unwrap()).summary;
    let mut order: Vec<&FrameSpan> = frames.iter().collect();
    let mut swaps = 0;
    for i in 1..order.len() - 1 {
        let (a, b) = (order[i], order[i + 1]);
        if a.stream != 0 && b.stream != 0 && a.stream != b.stream && swaps < 20 {
            order.swap(i, i + 1);
            swaps += 1;
        }
    }
    assert!(swaps > 0, "the trace interleaves threads");
    let r = report_of(&run_file(&rebuild(trace, &order), "swapped").unwrap()).summary;
    assert_eq!(
        (
            r.allocations,
            r.deallocations,
            r.reallocations,
            r.peak_bytes,
            r.leaked_bytes
        ),
        (
            whole.allocations,
            whole.deallocations,
            whole.reallocations,
            whole.peak_bytes,
            whole.leaked_bytes
        )
    );
    assert!(r.complete, "{:?}", r.incomplete_reasons);
}

/// Two frames of ONE stream swapped: the later one (by number) is held
/// until the earlier one arrives, both are decoded in their order against
/// the right base, and the swap is named. Nothing is lost, so the trace is
/// complete and has no heap errors.
#[test]
fn frames_of_one_thread_swapped_are_put_back_in_order() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    let j = next_of_stream(&frames, k);
    let mut order: Vec<&FrameSpan> = frames.iter().collect();
    order.swap(k, j);
    let bytes = rebuild(trace, &order);
    let run = run_file(&bytes, "swap1").unwrap();
    let a = account(&run);
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!((a.decoded, a.skipped), (total, 0), "every record decoded");
    // Where the two frames now are.
    let j_at = frames[k].start;
    let k_at = frames[j].end - (frames[k].end - frames[k].start);
    assert_eq!(
        frame_sequence(&run),
        [format!(
            "frame {} of stream {} at offset {j_at} out of order: it came before frame {} at offset {k_at} (decoded after it)",
            frames[j].seq, frames[k].stream, frames[k].seq
        )]
    );
    let r = report_of(&run);
    assert!(r.summary.complete, "{:?}", r.summary.incomplete_reasons);
    assert_eq!(r.summary.errors, 0, "heap errors after the swap");
    eprintln!("swapped frames: {:?}", frame_sequence(&run));
}

/// memscope-std checks every frame with a CRC-16, but the "checked" bit sits
/// in the frame itself: one flipped bit clears it and the frame would pass
/// unverified, its CRC bytes read as records. The decoder holds a trace to
/// the mode it has seen (memscope-core's `Deframer::sticky_checksums`), so
/// that frame is damage, reported at its offset, and nothing of it is used.
#[test]
fn a_cleared_checksum_bit_is_damage_not_unverified_records() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    let mut bytes = trace.to_vec();
    // After the COBS code byte: the head, `stream << 1 | 1`.
    let head = frames[k].start + 1;
    assert_eq!(bytes[head] & 1, 1, "a checked frame");
    bytes[head] ^= 1;
    let run = run_file(&bytes, "crcbit").unwrap();
    let spans: Vec<_> = run
        .sessions
        .iter()
        .flat_map(|s| &s.damage.examples)
        .collect();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].offset, frames[k].start as u64);
    assert_eq!(spans[0].reason, memscope_core::frame::Damage::Checksum);
    let a = account(&run);
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!(a.record_errors, 0, "no record of the frame was read");
    assert_eq!(a.decoded + a.skipped, total - frames[k].heap_records);
}

// ------------------------------------------------------------ target reset

#[test]
fn a_target_reset_starts_a_second_session_with_the_same_analysis() {
    let trace = real_trace();
    let once = report_of(&run_file(trace, "once").unwrap()).summary;
    let mut twice = trace.to_vec();
    twice.extend_from_slice(trace);
    let run = run_file(&twice, "twice").unwrap();
    assert_eq!(run.sessions.len(), 2, "a second Header is a new session");
    // The second session begins at its Header's frame, after the 0x00 the
    // producer writes first.
    assert_eq!(run.sessions[1].start_offset, trace.len() as u64 + 1);
    assert!(
        frame_sequence(&run).is_empty(),
        "{:?}",
        frame_sequence(&run)
    );
    let r = report_of(&run);
    let mut sessions = vec![&r];
    sessions.extend(r.previous_sessions.iter());
    for s in sessions {
        let s = &s.summary;
        assert_eq!(
            (s.allocations, s.deallocations, s.peak_bytes, s.leaked_bytes),
            (
                once.allocations,
                once.deallocations,
                once.peak_bytes,
                once.leaked_bytes
            )
        );
        assert!(s.complete, "{:?}", s.incomplete_reasons);
    }
}

/// The trace as a producer without frame numbers and without the leading
/// 0x00 wrote it (memscope-std before both): every frame re-encoded from its
/// records alone.
fn as_an_older_producer(frames: &[FrameSpan]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| checked_frame(f.stream, &[&f.records]))
        .collect()
}

/// A reset in the middle of a frame: the producer's output begins with a
/// 0x00, which ends the half frame, so the new session's Header is read and
/// only the cut frame is lost (one damaged span at its offset). An older
/// producer (no 0x00, no frame numbers) loses the Header with the half
/// frame: the damage is reported at the reset, and the new session's events
/// are counted as skipped until a Sync, never mixed in silently.
#[test]
fn a_reset_in_the_middle_of_a_frame_loses_that_frame_only() {
    let trace = framed_trace();
    assert_eq!(trace[0], 0, "memscope-std starts its output with a 0x00");
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    let cut = (frames[k].start + frames[k].end) / 2;
    let once = report_of(&run_file(trace, "reset-once").unwrap()).summary;
    let mut bytes = trace[..cut].to_vec();
    bytes.extend_from_slice(trace);
    let run = run_file(&bytes, "reset-delim").unwrap();
    assert_eq!(run.sessions.len(), 2);
    assert_eq!(run.sessions[1].start_offset, (cut + 1) as u64);
    let d = &run.sessions[0].damage.examples;
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].offset, d[0].len),
        (frames[k].start as u64, (cut - frames[k].start) as u64)
    );
    // A cut where the next COBS code byte would be (about one position in
    // ten) leaves valid COBS: then it is the CRC that fails.
    assert!(
        matches!(
            d[0].reason,
            memscope_core::frame::Damage::Cobs | memscope_core::frame::Damage::Checksum
        ),
        "{:?}",
        d[0].reason
    );
    assert!(run.sessions[1].damage.examples.is_empty());
    assert!(
        frame_sequence(&run).is_empty(),
        "{:?}",
        frame_sequence(&run)
    );
    let r = report_of(&run);
    assert!(r.summary.complete, "{:?}", r.summary.incomplete_reasons);
    assert_eq!(
        (
            r.summary.allocations,
            r.summary.deallocations,
            r.summary.peak_bytes
        ),
        (once.allocations, once.deallocations, once.peak_bytes)
    );
    assert!(!r.previous_sessions[0].summary.complete);

    // An older producer: the half frame and the Header are one damaged span.
    let old = as_an_older_producer(&frames);
    let old_frames = frames_of_unnumbered(&old);
    let cut = (old_frames[k].0 + old_frames[k].1) / 2;
    let mut bytes = old[..cut].to_vec();
    bytes.extend_from_slice(&old);
    let run = run_file(&bytes, "reset-nodelim").unwrap();
    let spans: Vec<_> = run
        .sessions
        .iter()
        .flat_map(|s| &s.damage.examples)
        .collect();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].offset, old_frames[k].0 as u64);
    assert_eq!(
        spans[0].len,
        (cut - old_frames[k].0 + old_frames[0].1 - 1) as u64,
        "the half frame and the new Header's frame"
    );
    let r = report_of(&run);
    assert!(!r.summary.complete);
}

/// `(start, end)` of each frame of a trace without frame numbers.
fn frames_of_unnumbered(trace: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut d = memscope_core::frame::Deframer::new(&mut buf);
    let mut pos = 0;
    while pos < trace.len() {
        let (n, ev) = d.push(&trace[pos..]);
        pos += n;
        match ev {
            Some(memscope_core::frame::FrameEvent::Frame {
                offset, records, ..
            }) => {
                assert_eq!(memscope_core::frame::split_seq(records).0, None);
                out.push((offset as usize, pos));
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    out
}

/// Empty frames (two 0x00 in a row) are nothing at all: a 0x00 before every
/// frame changes neither the decode nor the damage count.
#[test]
fn empty_frames_between_frames_are_not_damage() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let once = report_of(&run_file(trace, "empty-once").unwrap()).summary;
    let padded: Vec<u8> = frames
        .iter()
        .flat_map(|f| std::iter::once(0).chain(trace[f.start..f.end].iter().copied()))
        .collect();
    let run = run_file(&padded, "empty").unwrap();
    assert_eq!(account(&run).damaged_spans, 0);
    assert!(frame_sequence(&run).is_empty());
    let r = report_of(&run).summary;
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    assert_eq!(
        (
            r.allocations,
            r.deallocations,
            r.reallocations,
            r.peak_bytes
        ),
        (
            once.allocations,
            once.deallocations,
            once.reallocations,
            once.peak_bytes
        )
    );
}

// -------------------------------------------------- records from the future

#[test]
fn an_unknown_extension_record_in_a_real_frame_is_skipped_and_counted() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    // Extension kind 200 (unknown), 5-byte body, before the frame's records.
    let future: &[u8] = &[0, 0xC8, 0x01, 5, 1, 2, 3, 4, 5];
    let mut bytes = trace[..frames[k].start].to_vec();
    bytes.extend(checked_frame(
        frames[k].stream,
        &[&frames[k].seq_record, future, &frames[k].records],
    ));
    bytes.extend_from_slice(&trace[frames[k].end..]);
    let run = run_file(&bytes, "ext").unwrap();
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert_eq!(
        account(&run).decoded,
        total,
        "every record around it is kept"
    );
    let r = report_of(&run);
    assert_eq!(r.integrity.unknown_records, 1);
    assert!(r.summary.complete, "{:?}", r.summary.incomplete_reasons);
}

#[test]
fn a_reserved_hot_record_kind_loses_the_rest_of_its_frame_with_its_position() {
    let trace = framed_trace();
    let frames = frames_of(trace);
    let k = middle_event_frame(&frames);
    // Kind 7 is reserved: record lengths are implicit, so the rest of the
    // frame cannot be read; the decoder says where and how many bytes.
    let mut bytes = trace[..frames[k].start].to_vec();
    bytes.extend(checked_frame(
        frames[k].stream,
        &[&frames[k].seq_record, &frames[k].records, &[0x07, 1, 2, 3]],
    ));
    bytes.extend_from_slice(&trace[frames[k].end..]);
    let run = run_file(&bytes, "kind7").unwrap();
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    let a = account(&run);
    assert_eq!(a.record_errors, 1);
    assert_eq!(a.decoded + a.skipped, total, "{a:?}");
    let e = &run.sessions[0].session.record_error_examples[0];
    assert_eq!(e.frame_offset, frames[k].start as u64);
    assert_eq!(e.position, frames[k].records.len());
    assert_eq!(e.bytes_lost, 4);
    assert_eq!(e.error, wire::DecodeError::ReservedKind);
    assert!(!report_of(&run).summary.complete);
}

/// A target reset into a newer format: the first session was read in full.
#[test]
fn a_reset_into_a_newer_format_version_is_refused_by_offset() {
    let trace = real_trace();
    let mut b = TraceBuilder::new(Vec::new()).checked(true);
    let mut h = wire::Header::new(8, 0, "future");
    h.version = wire::FORMAT_VERSION + 1;
    b.header(h, None).unwrap();
    let mut bytes = trace.to_vec();
    bytes.extend(b.finish().unwrap());
    match run_file(&bytes, "future") {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("byte {}", trace.len())), "{msg}");
            assert!(msg.contains("newer"), "{msg}");
        }
        Ok(run) => {
            // Also acceptable: the first session kept whole, the rest refused.
            let frames = frames_of(trace);
            let total: u64 = frames.iter().map(|f| f.heap_records).sum();
            let first = &run.sessions[0].session;
            let decoded: u64 = first
                .streams
                .values()
                .map(|s| s.counts.allocs + s.counts.deallocs + s.counts.reallocs)
                .sum();
            assert_eq!(decoded, total);
        }
    }
}

// ------------------------------------------- hostile values, bounded memory

/// Address-space limit of the child decoder: far above what the real trace
/// needs (about 40 MiB of mappings), far below what an absurd claim would
/// make an unguarded decoder allocate.
const CHILD_MEMORY_KIB: u64 = 768 * 1024;
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs memscope-decode's command line on `trace` in a child process (this
/// test binary, re-entered through `decoder_child`) under `ulimit -v`, with
/// every export; returns its exit code and stderr.
fn decode_limited(trace: &[u8], tag: &str) -> (i32, String) {
    let dir = scratch_dir(&format!("limited-{tag}"));
    let input = dir.join("trace.bin");
    std::fs::write(&input, trace).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {CHILD_MEMORY_KIB} && exec \"$0\" --exact decoder_child --ignored --nocapture --test-threads 1"
        ))
        .arg(&exe)
        .env("MEMSCOPE_FAULTS_INPUT", &input)
        .env("MEMSCOPE_FAULTS_OUT", &dir)
        // Files, not pipes: a report longer than a pipe's buffer would
        // block the child until the parent reads, which it does at the end.
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("sh runs");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            panic!("{tag}: the decoder took more than {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let code = stdout
        .lines()
        .find_map(|l| l.split_once("decoder exit code: "))
        .and_then(|(_, c)| c.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!("{tag}: the decoder child died ({status:?})\n{stdout}\n{stderr}")
        });
    let _ = std::fs::remove_dir_all(&dir);
    (code, stderr)
}

/// The child side of [`decode_limited`]: memscope-decode's `main`, in process.
#[test]
#[ignore = "run by decode_limited in a child process under ulimit -v"]
fn decoder_child() {
    use clap::Parser;
    let (Some(input), Some(out)) = (
        std::env::var_os("MEMSCOPE_FAULTS_INPUT"),
        std::env::var_os("MEMSCOPE_FAULTS_OUT"),
    ) else {
        return;
    };
    let out = PathBuf::from(out);
    let arg = |name: &str| out.join(name).display().to_string();
    let args = [
        "memscope-decode".to_string(),
        Path::new(&input).display().to_string(),
        "--json".into(),
        arg("report.json"),
        "--html".into(),
        arg("report.html"),
        "--dhat".into(),
        arg("dhat.json"),
        "--pprof".into(),
        arg("profile.pb.gz"),
        "--folded".into(),
        arg("stacks.folded"),
        "--flamegraph".into(),
        arg("flame.svg"),
        "--chrome-trace".into(),
        arg("chrome.json"),
    ];
    let code = memscope_decode::cli::main_with(memscope_decode::cli::Cli::parse_from(args));
    println!("decoder exit code: {code}");
}

#[test]
fn the_real_trace_decodes_within_the_child_memory_limit() {
    let (code, stderr) = decode_limited(real_trace(), "real");
    assert_eq!(code, 0, "{stderr}");
}

/// A trace whose records claim absurd values. Every one of them is cheap to
/// write (a few bytes) and would be expensive to believe.
fn absurd_trace() -> Vec<u8> {
    let mut b = TraceBuilder::new(Vec::new()).checked(true).batched(64);
    let mut h = wire::Header::new(8, u64::MAX, "absurd");
    h.target = "target\u{0}\u{1b}[31m</script>";
    b.header(h, Some((u64::MAX - 10, u64::MAX))).unwrap();
    // More heap regions than any target has, each as large as the address space.
    for i in 0..2000u64 {
        b.raw_frame(0, &region(i << 40, u64::MAX >> 1)).unwrap();
    }
    b.thread(1, u64::MAX, &"t\u{202e}<".repeat(700)).unwrap();
    // Sizes and alignments at the limits; totals that overflow u64.
    for i in 0..50u64 {
        b.alloc(1, i, 0x1000 + i * 16, u64::MAX - i, 1 << 63, None)
            .unwrap();
    }
    for i in 0..50u64 {
        b.dealloc(1, None, 0x1000 + i * 16, u64::MAX - i, 1 << 63, None)
            .unwrap();
    }
    // The deepest stack the format allows, then local stack ids just under
    // the dense limit on many streams.
    let deep: Vec<u64> = (0..wire::MAX_STACK_DEPTH as u64)
        .map(|i| u64::MAX - i)
        .collect();
    b.stack(1, u32::MAX, &deep).unwrap();
    for stream in 2..10u32 {
        b.stack(stream, (1 << 20) - 1, &[0x10]).unwrap();
        b.stack(stream, (1 << 20) - 2, &[0x20]).unwrap();
    }
    b.alloc(1, 100, 0x9000, 64, 8, Some(u32::MAX)).unwrap();
    // A Lost count and End totals that cannot all be added.
    b.raw_frame(
        1,
        &[
            6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ],
    )
    .unwrap();
    b.raw_frame(
        1,
        &[
            6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ],
    )
    .unwrap();
    // A stack claiming more frames than allowed; a string whose length
    // prefix claims 2^60 bytes; an extension whose length claims 2^62.
    b.raw_frame(1, &[0, 3, 4, 1, 0x81, 0x02, 0]).unwrap();
    let mut huge_str = vec![0u8, 4, 12];
    huge_str.extend_from_slice(&[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    huge_str.extend_from_slice(&[b'x'; 2]);
    b.raw_frame(1, &huge_str).unwrap();
    b.raw_frame(
        1,
        &[
            0, 9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 1,
        ],
    )
    .unwrap();
    for stream in 0..2 {
        b.raw_frame(stream, &end_record(u64::MAX)).unwrap();
    }
    b.finish().unwrap()
}

fn region(start: u64, len: u64) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let (n, _) = Record::HeapRegion(wire::HeapRegion { start, len })
        .encode(Delta::default(), &mut buf)
        .unwrap();
    buf[..n].to_vec()
}

fn end_record(v: u64) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let e = wire::End {
        allocs: v,
        deallocs: v,
        reallocs: v,
        failed: v,
        lost: v,
        streams: u32::MAX,
    };
    let (n, _) = Record::End(e).encode(Delta::default(), &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn absurd_sizes_counts_depths_and_lengths_decode_in_bounded_memory() {
    let trace = absurd_trace();
    // In process first, for a readable failure.
    let run = run_file(&trace, "absurd").unwrap();
    let r = report_of(&run);
    assert!(!r.summary.complete);
    assert!(r.integrity.record_errors >= 3, "{:?}", r.integrity);
    let (code, stderr) = decode_limited(&trace, "absurd");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn mutated_real_traces_decode_in_bounded_memory() {
    // The command line with every export, on a few heavily damaged real
    // traces (the in-process test above covers 10^4 lighter ones).
    let trace = real_trace();
    let mut rng = Rng(0x00D1_CE0F_5EED);
    for round in 0..6 {
        let mut bytes = trace.to_vec();
        for _ in 0..50 {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        let (code, stderr) = decode_limited(&bytes, &format!("mut{round}"));
        // 0: a report; 4: not a trace (documented exit codes). Never a panic.
        assert!(
            code == 0 || code == 4,
            "round {round}: exit {code}\n{stderr}"
        );
    }
}

/// Streams a hostile trace declares cost the decoder a little each; this
/// checks the per-stream cost stays small (no per-stream buffers sized by a
/// claimed value).
#[test]
fn many_streams_with_high_stack_ids_cost_little() {
    let mut b = TraceBuilder::new(Vec::new()).checked(true);
    b.simple_header("streams", 0).unwrap();
    // 20 000 streams, each naming a stack by the highest id kept densely:
    // about 200 KiB of trace.
    for stream in 1..20_000u32 {
        b.stack(stream, (1 << 20) - 1, &[0x10]).unwrap();
    }
    let bytes = b.finish().unwrap();
    let (code, stderr) = decode_limited(&bytes, "streams");
    assert_eq!(code, 0, "{stderr}");
}

// ------------------------------------------------------------ hostile names

/// Names from a trace (program, target, thread, scope, mark, `track!`
/// names) are the traced program's strings, so a hostile trace chooses
/// them. The JSON report must carry them exactly, escaped: it parses, and
/// each name comes back whole. (The HTML dashboard's test with a real
/// browser is tests/tests/report_html.rs
/// `names_from_the_trace_run_nothing_and_read_as_text`; the terminal escapes
/// control characters, see host-decoder's render/terminal.rs.)
#[test]
fn hostile_names_are_escaped_in_the_json_report() {
    let hostile = "\"},{\"x\":1}</script><script>alert(1)</script>\u{0}\u{7}\u{1b}[2J\\\n\r\t\u{2028}\u{2029}\u{202e}\u{feff}";
    let mut b = TraceBuilder::new(Vec::new()).checked(true);
    let mut h = wire::Header::new(8, 1_000_000_000, hostile);
    h.target = hostile;
    b.header(h, None).unwrap();
    b.thread(1, 7, hostile).unwrap();
    b.record(1, &Record::ScopeEnter { name: hostile }).unwrap();
    b.alloc(1, 10, 0x1000, 64, 8, None).unwrap();
    b.record(
        1,
        &Record::Name(wire::Name {
            addr: 0x1000,
            var: hostile,
            type_name: hostile,
            file: hostile,
            line: 1,
        }),
    )
    .unwrap();
    b.record(1, &Record::Mark { name: hostile }).unwrap();
    b.record(1, &Record::ScopeExit).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let run = run_file(&b.finish().unwrap(), "hostile").unwrap();
    let r = report_of(&run);
    let mut out = Vec::new();
    memscope_decode::render::json::write(&r, &mut out).unwrap();
    let text = String::from_utf8(out).expect("the JSON report is UTF-8");
    // Raw control characters never appear: inside strings they are escaped,
    // and the pretty printer's own whitespace is newlines and spaces only.
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != ' '),
        "a raw control character in the JSON report"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("the JSON report parses");
    let mut strings = Vec::new();
    collect_strings(&v, &mut strings);
    let with_payload: Vec<&String> = strings.iter().filter(|s| s.contains("alert(1)")).collect();
    assert!(
        with_payload.len() >= 3,
        "the names are in the report: {with_payload:?}"
    );
    for s in with_payload {
        assert!(s.contains(hostile), "a name came back altered: {s:?}");
    }
    assert_eq!(v["header"]["program"], hostile);
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                collect_strings(x, out);
            }
        }
        _ => {}
    }
}

/// Each heap region gets a map of the blocks in it (at the peak and at the
/// end), so a trace declaring many regions over many live blocks must not
/// cost memory or time per region without bound.
#[test]
fn many_heap_regions_over_many_blocks_cost_little() {
    let mut b = TraceBuilder::new(Vec::new()).checked(true).batched(4096);
    b.simple_header("regions", 0).unwrap();
    // 50 000 regions (about 350 KiB of trace), each the whole address space.
    for _ in 0..50_000u32 {
        b.raw_frame(0, &region(0, u64::MAX)).unwrap();
    }
    // 2 000 live blocks with gaps between them: 512 map spans per region.
    for i in 0..2_000u64 {
        b.alloc(1, i, 0x10_0000 + i * 64, 32, 8, None).unwrap();
    }
    let bytes = b.finish().unwrap();
    let (code, stderr) = decode_limited(&bytes, "regions");
    assert_eq!(code, 0, "{stderr}");
}

// ------------------------------------------------------- compressed traces

/// The framed trace's program recorded compressed, as a user asks for it
/// (`MEMSCOPE_OUT=trace.bin.zst`: memscope-std's `zstd` feature, on in this
/// crate), and the same bytes decompressed by memscope-decode's reader.
fn compressed_trace() -> &'static (Vec<u8>, Vec<u8>) {
    static TRACE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    TRACE.get_or_init(|| {
        let dir = scratch_dir("zstd");
        let out = dir.join("trace.bin.zst");
        let o = Command::new(env!("CARGO_BIN_EXE_std_child"))
            .args(["sequential", "2", "3000"])
            .env("MEMSCOPE_OUT", &out)
            .env_remove("MEMSCOPE_COMPRESS")
            .current_dir(&dir)
            .output()
            .expect("std_child runs");
        assert!(o.status.success(), "std_child failed: {o:?}");
        let z = std::fs::read(&out).expect("std_child wrote its trace");
        let (raw, faults) = decompress(&z);
        assert!(faults.is_empty(), "{faults:?}");
        (z, raw)
    })
}

/// `z` through memscope-decode's decompressing reader: the bytes and the
/// faults it found.
fn decompress(z: &[u8]) -> (Vec<u8>, Vec<compressed::Fault>) {
    use std::io::Read;
    let mut r = compressed::Zstd::new("t", Vec::new(), Box::new(std::io::Cursor::new(z.to_vec())))
        .unwrap()
        .quiet();
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("faults are not I/O errors");
    (out, r.faults().to_vec())
}

/// `bytes` as a file through the source the pipeline reads, in the chunks
/// `frames::read_frames` reads.
fn read_as_the_pipeline(bytes: &[u8], tag: &str) -> Vec<u8> {
    use std::io::Read;
    let p = scratch_dir("files").join(format!("{tag}.bin"));
    std::fs::write(&p, bytes).unwrap();
    let mut r = Source::open(&p).unwrap().reader().unwrap();
    let _ = std::fs::remove_file(&p);
    let (mut out, mut chunk) = (Vec::new(), vec![0u8; 1 << 20]);
    loop {
        let n = r.read(&mut chunk).expect("faults are not I/O errors");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The report as JSON, without the input's name (the one thing that differs
/// between a file and its decompressed copy).
fn report_json(run: &Run) -> serde_json::Value {
    let mut v = serde_json::to_value(report_of(run)).unwrap();
    v["input"]["name"] = serde_json::Value::Null;
    v
}

#[test]
fn a_compressed_trace_decodes_to_the_same_report_as_its_bytes_uncompressed() {
    let (z, raw) = compressed_trace();
    assert_eq!(z[..4], compressed::ZSTD_MAGIC, "the writer compressed");
    assert!(z.len() < raw.len(), "{} >= {}", z.len(), raw.len());
    // Inside: an ordinary trace (it starts with 0x00; every frame intact).
    assert_eq!(raw[0], 0);
    let frames = frames_of(raw);
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    let plain = run_file(raw, "zstd-raw").unwrap();
    assert!(report_of(&plain).summary.complete);
    assert_eq!(account(&plain).decoded, total);
    let from_file = run_file(z, "zstd-file").unwrap();
    assert_eq!(
        from_file.bytes,
        raw.len() as u64,
        "offsets are decompressed ones"
    );
    assert_eq!(report_json(&from_file), report_json(&plain));
    // A live source (stdin, a socket) is recognised the same way.
    let live = run_live(z).unwrap();
    assert_eq!(account(&live), account(&plain));
    assert!(report_of(&live).summary.complete);
}

#[test]
fn a_compressed_trace_cut_anywhere_keeps_every_frame_before_the_cut() {
    let (z, raw) = compressed_trace();
    let frames = frames_of(raw);
    let mut cuts: Vec<usize> = (1..40).map(|i| 8 + i * (z.len() - 8) / 40).collect();
    cuts.extend([z.len() - 1, z.len() - 2, 9, 30]);
    let mut kept_before = 0;
    for cut in cuts {
        let (d, faults) = decompress(&z[..cut]);
        assert!(raw.starts_with(&d), "cut {cut}: decompressed a prefix");
        assert_eq!(
            faults,
            [compressed::Fault::Truncated { at: cut as u64 }],
            "cut {cut}: named by its compressed offset"
        );
        // Every trace frame that ends within what the cut file still holds
        // is decoded, exactly as from that raw prefix.
        let expected: u64 = frames
            .iter()
            .filter(|f| f.end <= d.len())
            .map(|f| f.heap_records)
            .sum();
        let run = match run_file(&z[..cut], &format!("zstd-cut-{cut}")) {
            Ok(run) => run,
            Err(e) => {
                assert_eq!(
                    expected, 0,
                    "cut {cut}: refused with records before it: {e}"
                );
                continue;
            }
        };
        let a = account(&run);
        assert_eq!(
            (a.decoded, a.skipped, a.record_errors),
            (expected, 0, 0),
            "cut {cut}"
        );
        assert_eq!(a, account(&run_live(&d).unwrap()), "cut {cut}");
        // Cut in the zstd frame's epilogue (its checksum), every trace byte
        // is still there: then, and only then, the trace is complete.
        assert_eq!(
            report_of(&run).summary.complete,
            d.len() == raw.len(),
            "cut {cut}: {} of {} bytes",
            d.len(),
            raw.len()
        );
        assert!(expected >= kept_before, "cut {cut}: a longer cut kept less");
        kept_before = expected;
    }
    // The writer flushed every cycle: most of the trace survives the cut
    // just before the end.
    let total: u64 = frames.iter().map(|f| f.heap_records).sum();
    assert!(kept_before > 0 && kept_before <= total);
}

#[test]
fn damaged_compressed_bytes_keep_what_came_before_and_are_named() {
    let (z, raw) = compressed_trace();
    let mut bad = z.clone();
    let at = z.len() / 2;
    for b in &mut bad[at..at + 64] {
        *b ^= 0x5A;
    }
    let (_, faults) = decompress(&bad);
    // Found at or after the damaged bytes: libzstd needs a whole block or,
    // for damage it decodes silently, the frame's checksum at its end; a
    // block size made larger reads as a file cut short.
    let found = match faults.as_slice() {
        [compressed::Fault::Damaged { from, to, .. }
        | compressed::Fault::Checksum { from, to, .. }] => {
            assert!((*from as usize) < z.len(), "{faults:?}");
            *to as usize
        }
        [compressed::Fault::Truncated { at }] => *at as usize,
        other => panic!("one fault: {other:?}"),
    };
    assert!(found > at, "{faults:?}");
    // What came before the damage is the trace's own bytes; the run decodes
    // without error, every heap record of a trace frame before the damage
    // decoded or counted as skipped (its stream's base unknown after the
    // damage, as for raw mutations above). "Before the damage" as the
    // pipeline reads it: libzstd gives nothing of a call that fails, so
    // what is kept before the damage depends on the sizes read (up to one
    // 16 KiB step of compressed input is lost), and `decompress` reads
    // with other sizes than the pipeline (this test failed about one run
    // in four, on traces where that step held whole frames).
    let d = read_as_the_pipeline(&bad, "zstd-damaged-read");
    let intact = d.iter().zip(raw.iter()).take_while(|(a, b)| a == b).count();
    let expected: u64 = frames_of(raw)
        .iter()
        .filter(|f| f.end <= intact)
        .map(|f| f.heap_records)
        .sum();
    let run = run_file(&bad, "zstd-damaged").unwrap();
    assert!(
        account(&run).decoded + account(&run).skipped >= expected,
        "{:?} < {expected} ({intact} intact bytes of {}, {faults:?})",
        account(&run),
        d.len()
    );
    assert!(!report_of(&run).summary.complete);
}
