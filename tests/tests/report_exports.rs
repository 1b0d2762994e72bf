//! Each export opened by its real consumer: DHAT JSON by Valgrind's own
//! dh_view.html (in headless Chromium), the pprof profile by `go tool
//! pprof`, the flamegraph SVG by an XML parser, the Chrome trace as JSON;
//! and each one's numbers add up to the JSON report's.

#[path = "report_common/mod.rs"]
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;

fn with_commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_report_timeline_is_bounded_and_holds_the_peak() {
    let dir = work_dir("timeline");
    let rep = decode(&dir, &workload_trace(300_000, 4), &[]);
    let tl = &rep["timeline"];
    let b = tl["buckets"].as_array().unwrap();
    assert!(!b.is_empty() && b.len() <= 512, "{} buckets", b.len());
    assert_eq!(tl["axis"], "ticks");
    let max = b.iter().map(|x| u(x, "max")).max().unwrap();
    assert_eq!(max, u(&rep["summary"], "peak_bytes"));
    assert_eq!(
        u(b.last().unwrap(), "last"),
        u(&rep["summary"], "leaked_bytes")
    );
    // The peak's bucket reaches the peak.
    let at = (u(tl, "peak_offset") / u(tl, "bucket_width")) as usize;
    assert_eq!(u(&b[at], "max"), max);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dh_view_opens_our_dhat_file() {
    let dir = work_dir("dhat");
    let rep = decode(
        &dir,
        &workload_trace(100_000, 3),
        &["--dhat", "dhat-heap.json"],
    );
    let d: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dhat-heap.json")).unwrap()).unwrap();
    assert_eq!(d["dhatFileVersion"], 2);
    assert_eq!(d["mode"], "rust-heap");
    let pps = d["pps"].as_array().unwrap();
    let sum = |k: &str| pps.iter().map(|p| u(p, k)).sum::<u64>();
    let s = &rep["summary"];
    assert_eq!(sum("tb"), u(s, "bytes_allocated"));
    assert_eq!(sum("gb"), u(s, "peak_bytes"));
    assert_eq!(sum("gbk"), u(s, "peak_blocks"));
    assert_eq!(sum("eb"), u(s, "leaked_bytes"));
    let mut seen = HashSet::new();
    for p in pps {
        assert!(
            seen.insert(p["fs"].to_string()),
            "repeated location {}",
            p["fs"]
        );
        assert!(u(p, "mb") >= u(p, "gb") && u(p, "mb") >= u(p, "eb"));
    }
    let ftbl = d["ftbl"].as_array().unwrap();
    assert_eq!(ftbl[0], "[root]");
    assert!(ftbl[1].as_str().unwrap().starts_with("0x"));

    let v = browser(json!({
        "url": "file:///usr/libexec/valgrind/dh_view.html",
        "files": {"selector": "input[type=file]", "paths": [dir.join("dhat-heap.json").display().to_string()]},
        "ready": "document.body.innerText.includes('Invocation') || !!document.querySelector('.error')",
        "eval": "({error: document.querySelector('.error') ? document.querySelector('.error').textContent : null, text: document.body.innerText})",
        "screenshot": out_dir().join("dh_view.png").display().to_string(),
    }));
    assert_eq!(v["exceptions"], json!([]), "{v}");
    assert_eq!(
        v["result"]["error"],
        Value::Null,
        "dh_view: {}",
        v["result"]["error"]
    );
    let text = v["result"]["text"].as_str().unwrap();
    assert!(text.contains("Mode:    rust-heap"), "{text}");
    let gmax = format!(
        "At t-gmax: {} bytes (100%)",
        with_commas(u(s, "peak_bytes"))
    );
    assert!(text.contains(&gmax), "no `{gmax}` in {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The function of the first row of `go tool pprof -top`.
fn pprof_top(file: &std::path::Path, sample_index: &str) -> String {
    let go = tool("go", "golang-go");
    let home = work_dir("gohome");
    let o = Command::new(go)
        .args([
            "tool",
            "pprof",
            "-top",
            &format!("-sample_index={sample_index}"),
        ])
        .arg(file)
        .env("HOME", &home)
        .env("PPROF_TMPDIR", &home)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "pprof: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"));
    lines.next();
    let row = lines.next().unwrap_or_else(|| panic!("no rows: {out}"));
    // flat flat% sum% cum cum% NAME (the name may hold spaces).
    row.split_whitespace().skip(5).collect::<Vec<_>>().join(" ")
}

#[test]
fn go_pprof_reads_our_profile_and_agrees_on_the_top_site() {
    let dir = work_dir("pprof");
    let rep = decode(
        &dir,
        &workload_trace(100_000, 3),
        &["--pprof", "heap.pb.gz"],
    );
    let f = dir.join("heap.pb.gz");
    assert_eq!(
        pprof_top(&f, "alloc_space"),
        rep["hot_sites"]["by_bytes"][0]["location"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        pprof_top(&f, "alloc_objects"),
        rep["hot_sites"]["by_count"][0]["location"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        pprof_top(&f, "inuse_space"),
        rep["leaks"]["sites"][0]["location"].as_str().unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn folded_stacks_add_up_and_the_flamegraph_is_well_formed_svg() {
    let dir = work_dir("folded");
    let trace = workload_trace(100_000, 3);
    let mut rep = Value::Null;
    for (weight, key) in [
        ("allocated", "bytes_allocated"),
        ("peak", "peak_bytes"),
        ("leaked", "leaked_bytes"),
    ] {
        rep = decode(
            &dir,
            &trace,
            &[
                "--folded",
                "out.folded",
                "--flamegraph",
                "out.svg",
                "--weight",
                weight,
            ],
        );
        let folded = std::fs::read_to_string(dir.join("out.folded")).unwrap();
        let total: u64 = folded
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, u(&rep["summary"], key), "{weight}");
        let svg = std::fs::read_to_string(dir.join("out.svg")).unwrap();
        let mut r = quick_xml::Reader::from_str(&svg);
        let mut elements = 0;
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)) => {
                    elements += 1
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "{weight}: SVG not well-formed at {}: {e}",
                    r.buffer_position()
                ),
            }
        }
        assert!(
            svg.contains("<svg") && elements > 50,
            "{weight}: {elements} elements"
        );
    }
    // The heaviest stack of the leaked weight ends at the report's top leak site.
    let folded = std::fs::read_to_string(dir.join("out.folded")).unwrap();
    let heaviest = folded
        .lines()
        .max_by_key(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .unwrap();
    let leaf = heaviest
        .rsplit_once(' ')
        .unwrap()
        .0
        .rsplit(';')
        .next()
        .unwrap();
    assert_eq!(leaf, rep["leaks"]["sites"][0]["location"].as_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chrome_trace_is_json_with_heap_counters_and_threads() {
    let dir = work_dir("chrome");
    let rep = decode(
        &dir,
        &workload_trace(100_000, 3),
        &["--chrome-trace", "trace.json"],
    );
    let t: Value = serde_json::from_slice(&std::fs::read(dir.join("trace.json")).unwrap()).unwrap();
    let ev = t["traceEvents"].as_array().unwrap();
    let counters: Vec<u64> = ev
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"] == "live heap bytes")
        .map(|e| {
            assert!(e["ts"].is_number() && e["pid"].is_number());
            u(&e["args"], "bytes")
        })
        .collect();
    assert!(counters.len() > 10);
    // One counter track per thread, ending at what the thread leaked.
    for t in rep["threads"].as_array().unwrap() {
        let name = t["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("stream {}", t["stream"]));
        let track: Vec<u64> = ev
            .iter()
            .filter(|e| e["ph"] == "C" && e["name"] == format!("live heap bytes: {name}"))
            .map(|e| u(&e["args"], "bytes"))
            .collect();
        assert!(!track.is_empty(), "no counter for {name}");
        assert_eq!(*track.last().unwrap(), u(t, "leaked_bytes"), "{name}");
    }
    assert_eq!(
        *counters.iter().max().unwrap(),
        u(&rep["summary"], "peak_bytes")
    );
    assert_eq!(
        *counters.last().unwrap(),
        u(&rep["summary"], "leaked_bytes")
    );
    let threads = ev
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .count();
    assert_eq!(threads, rep["threads"].as_array().unwrap().len());
    assert!(ev
        .iter()
        .any(|e| e["ph"] == "i" && e["name"].as_str().unwrap().starts_with("peak")));
    let _ = std::fs::remove_dir_all(&dir);
}
