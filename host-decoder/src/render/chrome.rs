//! Chrome's trace-event JSON (`{"traceEvents": [...]}`), opened by Perfetto
//! (ui.perfetto.dev) and chrome://tracing: the live heap as counter ("C")
//! events from the report's timeline, the peak and the user's marks as
//! instant events, and one named track per thread with its totals.
//!
//! Counters are named `live heap` (the session) and `live heap: THREAD`,
//! each with one series, `bytes`: Perfetto shows them as `live heap bytes`
//! and `live heap: THREAD bytes`, the catapult viewer as a track with a
//! `bytes` series. Tested by loading the file into both (tests/tests/report_exports.rs).
//!
//! With a clock, `ts` is microseconds from the first event; without one it
//! is the event number, and the process is named so.

use crate::report::Report;
use serde_json::{json, Value};
use std::io::{self, Write};

/// The trace-event document.
pub fn document(r: &Report) -> Value {
    let tl = &r.timeline;
    let clocked = tl.axis == "ticks" && tl.ticks_per_second > 0;
    let us = |x: u64| -> f64 {
        if clocked {
            x as f64 * 1e6 / tl.ticks_per_second as f64
        } else {
            x as f64
        }
    };
    let program = r
        .header
        .as_ref()
        .map(|h| h.program.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| r.input.name.clone());
    let mut ev: Vec<Value> = vec![json!({
        "name": "process_name", "ph": "M", "pid": 1, "tid": 0,
        "args": {"name": if clocked { format!("{program} heap") } else { format!("{program} heap (x = event number: no clock)") }}
    })];
    for (i, b) in tl.buckets.iter().enumerate() {
        let x = us((i as u64).saturating_mul(tl.bucket_width));
        // Two points per bucket draw the bucket's spike and where it settled.
        ev.push(json!({"name": "live heap", "ph": "C", "pid": 1, "tid": 0, "ts": x, "args": {"bytes": b.max}}));
        ev.push(
            json!({"name": "live heap", "ph": "C", "pid": 1, "tid": 0,
            "ts": us((i as u64).saturating_mul(tl.bucket_width).saturating_add(tl.bucket_width / 2)), "args": {"bytes": b.last}}),
        );
    }
    if let Some(p) = tl.peak_offset {
        ev.push(json!({"name": format!("peak: {} bytes in {} blocks", r.summary.peak_bytes, r.summary.peak_blocks),
            "ph": "i", "s": "p", "pid": 1, "tid": 0, "ts": us(p)}));
    }
    if clocked {
        for m in &r.marks {
            ev.push(json!({"name": m.name, "ph": "i", "s": "p", "pid": 1, "tid": 0,
                "ts": us(m.ts.saturating_sub(tl.start)), "args": {"live_bytes": m.live_bytes, "live_blocks": m.live_blocks}}));
        }
    }
    // Each thread's blocks as a counter track of its own (same clock origin).
    for th in &r.thread_timelines.threads {
        let name = r
            .threads
            .iter()
            .find(|t| t.stream == th.stream)
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| format!("stream {}", th.stream));
        let track = format!("live heap: {name}");
        // Saturating: a hostile trace's timestamps can sit near u64::MAX.
        let at = |i: u64, within: u64| {
            us(th
                .start
                .saturating_add(i.saturating_mul(th.bucket_width))
                .saturating_add(within)
                .saturating_sub(tl.start))
        };
        for (i, b) in th.buckets.iter().enumerate() {
            let i = i as u64;
            ev.push(json!({"name": track, "ph": "C", "pid": 1, "tid": th.stream + 1, "ts": at(i, 0), "args": {"bytes": b.max}}));
            ev.push(
                json!({"name": track, "ph": "C", "pid": 1, "tid": th.stream + 1,
                "ts": at(i, th.bucket_width / 2), "args": {"bytes": b.last}}),
            );
        }
    }
    let end = us((tl.buckets.len() as u64).saturating_mul(tl.bucket_width));
    for t in &r.threads {
        let tid = t.stream + 1;
        let name = t
            .name
            .clone()
            .unwrap_or_else(|| format!("stream {}", t.stream));
        ev.push(
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}}),
        );
        // The per-thread totals as one span over the session.
        ev.push(json!({"name": format!("{} allocations, {} bytes; {} bytes leaked", t.allocations, t.bytes_allocated, t.leaked_bytes),
            "ph": "X", "pid": 1, "tid": tid, "ts": 0.0, "dur": end,
            "args": {"allocations": t.allocations, "bytes_allocated": t.bytes_allocated, "frees": t.frees,
                     "foreign_frees": t.foreign_frees, "leaked_blocks": t.leaked_blocks, "leaked_bytes": t.leaked_bytes}}));
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ms",
           "otherData": {"tool": r.tool.name, "version": r.tool.version, "input": r.input.name}})
}

/// Writes the trace.
pub fn write(r: &Report, mut out: impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut out, &document(r)).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}
