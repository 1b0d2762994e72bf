//! Valgrind DHAT's JSON format (`dhatFileVersion` 2, `mode` "rust-heap", as
//! the dhat crate writes it), opened by DHAT's viewer `dh_view.html`.
//!
//! One program point (PP) per distinct stack from the first user frame
//! outward; frames read `0xADDR: function (file:line)`. Sites whose stacks
//! differ only in allocator frames fold into one PP, because the viewer
//! rejects two PPs with the same frames ("repeated location").
//!
//! Times are microseconds from the first allocation when the trace has a
//! clock; without one they are raw ticks (which only order events) and the
//! unit says so.
//!
//! `pid`: a trace has no process id field, but memscope-std names a
//! thread `main` exactly when its OS id is the process id (Linux), so the
//! OS id of the one stream named `main` is the pid ([`process_id`]). Without
//! such a stream (firmware, other systems, a main thread that never
//! allocated) `pid` is 0 and `cmd` says that it is unknown.

use crate::render::profile::{Profile, SiteProfile, NO_STACK_RECORDED};
use crate::symbolize::FrameInfo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Write};

#[derive(Default)]
struct Pp {
    tb: u64,
    tbk: u64,
    tl: u128,
    mb: u64,
    mbk: u64,
    gb: u64,
    gbk: u64,
    eb: u64,
    ebk: u64,
}

/// `0xADDR: function (file:line)`, the dhat crate's frame format (without the
/// column, which the trace does not carry).
fn frame_text(f: &FrameInfo) -> String {
    let func = f.function.as_deref().unwrap_or("???");
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{:#x}: {func} ({file}:{line})", f.addr),
        (Some(file), None) => format!("{:#x}: {func} ({file})", f.addr),
        _ => match &f.module {
            Some(m) => format!("{:#x}: {func} ({m})", f.addr),
            None => format!("{:#x}: {func}", f.addr),
        },
    }
}

fn frames_of(s: &SiteProfile) -> Vec<String> {
    if s.frames.is_empty() {
        return vec![format!("0x0: {NO_STACK_RECORDED}")];
    }
    s.user_frames().iter().map(frame_text).collect()
}

/// The traced process's id, when the report can tell it: the OS id of the
/// one stream whose thread is named `main` (see the module docs).
pub fn process_id(report: &crate::report::Report) -> Option<u64> {
    let mut ids = report
        .integrity
        .streams
        .iter()
        .filter(|s| s.thread.as_deref() == Some("main"))
        .filter_map(|s| s.os_id.filter(|&id| id != 0));
    let first = ids.next()?;
    // Two threads called `main` (one named so by the program): unknown.
    ids.all(|id| id == first).then_some(first)
}

/// The DHAT document for `p`; `program` fills `cmd`, `pid` (see
/// [`process_id`]) `pid`.
pub fn document(p: &Profile, program: &str, pid: Option<u64>) -> Value {
    let tps = p.ticks_per_second;
    // Ticks → the file's time unit (µs with a clock, ticks without).
    let t = |ticks: u128| -> u64 {
        if tps > 0 {
            (ticks * 1_000_000 / u128::from(tps)) as u64
        } else {
            ticks as u64
        }
    };
    let mut ftbl: Vec<String> = vec!["[root]".to_owned()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pps: Vec<(Vec<usize>, Pp)> = Vec::new();
    let mut by_fs: HashMap<Vec<usize>, usize> = HashMap::new();
    for s in &p.sites {
        let fs: Vec<usize> = frames_of(s)
            .into_iter()
            .map(|f| {
                *index.entry(f.clone()).or_insert_with(|| {
                    ftbl.push(f);
                    ftbl.len() - 1
                })
            })
            .collect();
        let i = *by_fs.entry(fs.clone()).or_insert_with(|| {
            pps.push((fs, Pp::default()));
            pps.len() - 1
        });
        let pp = &mut pps[i].1;
        pp.tb = pp.tb.saturating_add(s.bytes);
        pp.tbk += s.allocs + s.reallocs;
        pp.tl += u128::from(s.lifetime_sum);
        // Folded sites each reached their maximum at their own moment: the
        // sum is an upper bound of the PP's, exact when nothing folded.
        pp.mb = pp.mb.saturating_add(s.max_live_bytes);
        pp.mbk += s.max_live_blocks;
        pp.gb = pp.gb.saturating_add(s.peak_bytes);
        pp.gbk += s.peak_blocks;
        pp.eb = pp.eb.saturating_add(s.leaked_bytes);
        pp.ebk += s.leaked_blocks;
    }
    let pps: Vec<Value> = pps
        .into_iter()
        .map(|(fs, pp)| {
            json!({
                "tb": pp.tb, "tbk": pp.tbk, "tl": t(pp.tl),
                "mb": pp.mb, "mbk": pp.mbk,
                "gb": pp.gb, "gbk": pp.gbk,
                "eb": pp.eb, "ebk": pp.ebk,
                "fs": fs,
            })
        })
        .collect();
    let since = |ts: u64| t(u128::from(ts.saturating_sub(p.first_ts)));
    json!({
        "dhatFileVersion": 2,
        "mode": "rust-heap",
        "verb": "Allocated",
        "bklt": true,
        "bkacc": false,
        "tu": if tps > 0 { "µs" } else { "ticks" },
        "Mtu": if tps > 0 { "s" } else { "Mticks" },
        "tuth": if tps > 0 { 10 } else { 1 },
        "cmd": format!(
            "{} (from a memscope trace{})",
            if program.is_empty() { "(program unknown)" } else { program },
            if pid.is_some() { "" } else { "; process id unknown" }
        ),
        "pid": pid.unwrap_or(0),
        "tg": since(p.peak_ts),
        "te": since(p.end_ts).max(1),
        "pps": pps,
        "ftbl": ftbl,
    })
}

/// Writes the DHAT JSON.
pub fn write(p: &Profile, program: &str, pid: Option<u64>, mut out: impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut out, &document(p, program, pid)).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}
