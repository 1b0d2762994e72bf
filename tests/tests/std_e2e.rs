//! End-to-end tests of memscope-std: run `std_child` with `MEMSCOPE_OUT` set,
//! decode the trace with memscope-core's `Deframer` and `Records`, and compare
//! with what the child's own counting allocator (wrapped inside `MemScope`)
//! counted — exactly — and check that every stream proves itself complete.

use memscope_core::frame::{Deframer, FrameEvent};
use memscope_core::wire::{Delta, End, Record};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;

/// What one thread stream held.
#[derive(Debug, Default)]
struct StreamSummary {
    name: Option<String>,
    os_id: u64,
    /// Heap events (alloc, dealloc, realloc) in the whole stream.
    events: [u64; 3],
    /// Sum of `Lost` records.
    lost_reported: u64,
    end: Option<End>,
    /// Events inside `track_scope!("measured")`, and losses reported there.
    measured: [u64; 3],
    measured_lost: u64,
    /// Scope depth now.
    scopes: Vec<String>,
    /// `track!` names: (var, type, file, line).
    names: Vec<(String, String, String, u32)>,
    stacks: u64,
    with_stack: u64,
}

#[derive(Debug, Default)]
struct Trace {
    headers: u64,
    ticks_per_second: u64,
    modules: u64,
    control_end: Option<End>,
    streams: BTreeMap<u32, StreamSummary>,
}

fn decode(bytes: &[u8]) -> Trace {
    let mut buf = vec![0u8; 256 * 1024];
    let mut deframer = Deframer::new(&mut buf);
    let mut deltas: HashMap<u32, Delta> = HashMap::new();
    // Each stream's frames are numbered from 0, in order (docs/FORMAT.md).
    let mut next_frame: HashMap<u32, u64> = HashMap::new();
    let mut t = Trace::default();
    assert_eq!(bytes.first(), Some(&0), "the output starts with a 0x00");
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
            }) => {
                panic!("damaged frame at byte {offset} ({len} bytes): {reason}")
            }
            Some(FrameEvent::Frame {
                stream,
                records,
                offset,
            }) => {
                let (seq, records) = memscope_core::frame::split_seq(records);
                let next = next_frame.entry(stream).or_default();
                assert_eq!(seq, Some(*next), "stream {stream}: frame at {offset}");
                *next += 1;
                let delta = deltas.entry(stream).or_default();
                for rec in memscope_core::wire::Records::new(records, delta) {
                    let rec =
                        rec.unwrap_or_else(|e| panic!("bad record in frame at {offset}: {e:?}"));
                    if stream == 0 {
                        match rec {
                            Record::Header(h) => {
                                t.headers += 1;
                                t.ticks_per_second = h.ticks_per_second;
                            }
                            Record::Module(_) => t.modules += 1,
                            Record::End(e) => t.control_end = Some(e),
                            other => panic!("unexpected record on stream 0: {other:?}"),
                        }
                        continue;
                    }
                    let s = t.streams.entry(stream).or_default();
                    assert!(
                        s.end.is_none(),
                        "stream {stream}: record after its end: {rec:?}"
                    );
                    let inside = s.scopes.iter().any(|n| n == "measured");
                    let kind = match rec {
                        Record::Alloc(a) => {
                            if a.stack.is_some() {
                                s.with_stack += 1;
                            }
                            Some(0)
                        }
                        Record::Dealloc(_) => Some(1),
                        Record::Realloc(_) => Some(2),
                        Record::Lost { count } => {
                            s.lost_reported += count;
                            if inside {
                                s.measured_lost += count;
                            }
                            None
                        }
                        Record::Thread(th) => {
                            assert!(s.name.is_none(), "stream {stream}: two Thread records");
                            assert_eq!(
                                s.events, [0; 3],
                                "stream {stream}: Thread record not first"
                            );
                            s.name = Some(th.name.to_string());
                            s.os_id = th.os_id;
                            None
                        }
                        Record::ScopeEnter { name } => {
                            s.scopes.push(name.to_string());
                            None
                        }
                        Record::ScopeExit => {
                            s.scopes.pop().expect("scope exit without enter");
                            None
                        }
                        Record::Stack(_) => {
                            s.stacks += 1;
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
                        Record::Sync(_) => None,
                        other => panic!("unexpected record on stream {stream}: {other:?}"),
                    };
                    if let Some(k) = kind {
                        assert!(
                            s.name.is_some(),
                            "stream {stream}: event before Thread record"
                        );
                        s.events[k] += 1;
                        if inside {
                            s.measured[k] += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(deframer.finish().is_none(), "trace ends inside a frame");
    t
}

/// Every stream has an end record whose totals equal the decoded events plus
/// the lost ones; the control stream counts the streams.
fn assert_complete(t: &Trace) {
    assert_eq!(t.headers, 1, "one header");
    assert!(t.ticks_per_second > 0);
    assert!(t.modules > 0, "module records");
    let c = t.control_end.expect("control stream end record");
    assert_eq!(
        c.streams as usize,
        t.streams.len(),
        "streams opened vs. seen"
    );
    for (id, s) in &t.streams {
        let e = s
            .end
            .unwrap_or_else(|| panic!("stream {id} ({:?}) has no end record", s.name));
        let decoded: u64 = s.events.iter().sum();
        assert_eq!(
            decoded + e.lost,
            e.allocs + e.deallocs + e.reallocs,
            "stream {id} ({:?}): decoded {:?} + lost {} vs end {e:?}",
            s.name,
            s.events,
            e.lost
        );
        assert!(
            s.lost_reported <= e.lost,
            "stream {id}: more losses reported than counted"
        );
        if e.lost == 0 {
            assert_eq!(s.events, [e.allocs, e.deallocs, e.reallocs], "stream {id}");
        }
    }
}

fn run(args: &[&str], out: &str, stacks: &str) -> (Trace, Vec<(String, [u64; 3])>) {
    run_expecting(args, out, stacks, Some(0))
}

fn run_expecting(
    args: &[&str],
    out: &str,
    stacks: &str,
    code: Option<i32>,
) -> (Trace, Vec<(String, [u64; 3])>) {
    let dir = std::env::temp_dir().join(format!("memscope-std-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(out);
    let o = Command::new(env!("CARGO_BIN_EXE_std_child"))
        .args(args)
        .env("MEMSCOPE_OUT", &path)
        .env("MEMSCOPE_STACKS", stacks)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), code, "child: {o:?}");
    let stdout = String::from_utf8(o.stdout).unwrap();
    let counted = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("counted "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                [f[1], f[2], f[3]].map(|x| x.parse::<u64>().unwrap()),
            )
        })
        .collect();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    (decode(&bytes), counted)
}

/// The measured scope of the thread named `name` matches the child's counts.
fn assert_measured(t: &Trace, name: &str, counted: [u64; 3]) {
    let s = t
        .streams
        .values()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no stream for thread {name}"));
    assert!(counted[0] > 0, "{name}: the child counted nothing");
    let decoded: u64 = s.measured.iter().sum();
    if s.measured_lost == 0 {
        assert_eq!(
            s.measured, counted,
            "{name}: decoded vs counted (alloc, dealloc, realloc)"
        );
    } else {
        assert_eq!(
            decoded + s.measured_lost,
            counted.iter().sum::<u64>(),
            "{name}"
        );
    }
}

#[test]
fn one_thread_counts_match_exactly() {
    let (t, counted) = run(&["threads", "1"], "one.bin", "0");
    assert_complete(&t);
    assert_eq!(counted.len(), 2);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
}

#[test]
fn four_threads_with_stacks_and_an_early_exit_match_exactly() {
    let (t, counted) = run(&["threads", "4"], "four.bin", "16");
    assert_complete(&t);
    assert_eq!(counted.len(), 5);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
    let w = t
        .streams
        .values()
        .find(|s| s.name.as_deref() == Some("worker-3"))
        .unwrap();
    assert!(w.stacks > 0 && w.with_stack > 0, "stacks recorded: {w:?}");
    let main = t
        .streams
        .values()
        .find(|s| s.name.as_deref() == Some("main"))
        .unwrap();
    let (var, ty, file, line) = main.names.first().expect("track!(cache) wrote a name");
    assert_eq!(var, "cache");
    assert!(ty.contains("HashMap<u64, alloc::string::String"), "{ty}");
    assert!(file.ends_with("std_child.rs") && *line > 0, "{file}:{line}");
}

#[test]
fn a_panic_in_main_still_ends_the_trace() {
    let (t, counted) = run_expecting(&["panic-main"], "panic.bin", "4", Some(101));
    assert_complete(&t);
    assert_measured(&t, "worker", counted[0].1);
}

#[test]
fn process_exit_from_a_worker_keeps_every_committed_event() {
    let (t, counted) = run(&["exit-from-worker"], "exit.bin", "8");
    assert_complete(&t);
    assert_eq!(counted.len(), 1);
    assert_measured(&t, "exiter", counted[0].1);
    for i in 0..3 {
        let name = format!("spinner-{i}");
        let s = t
            .streams
            .values()
            .find(|s| s.name.as_deref() == Some(name.as_str()));
        // Still running at exit: cut consistently (checked by assert_complete).
        let s = s.unwrap_or_else(|| panic!("no stream for {name}"));
        assert!(
            s.end.is_some(),
            "{name} still running at exit has an end record"
        );
        assert!(s.events[0] > 0, "{name} recorded its work");
    }
}

#[test]
fn sequential_threads_reuse_slots_and_match_exactly() {
    let (t, counted) = run(&["sequential", "12"], "seq.bin", "8");
    assert_complete(&t);
    assert_eq!(counted.len(), 12);
    for (name, c) in &counted {
        assert_measured(&t, name, *c);
    }
    // One stream per thread (a reused slot opens a new stream).
    let seq = t
        .streams
        .values()
        .filter(|s| s.name.as_deref().is_some_and(|n| n.starts_with("seq-")));
    assert_eq!(seq.count(), 12);
}
