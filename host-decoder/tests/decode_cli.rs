//! The `memscope-decode` binary end to end: report, JSON, check exit codes,
//! diff, symbolization with --elf and recorded modules, error exit codes.

mod common;
use common::*;
use memscope_core::wire::{Header, Module, Record};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memscope-decode"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).arg("--no-progress").output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A host trace: `leak` bytes leaked from stack 1, `churn` × 100-byte
/// temporaries from stack 2.
fn trace(leak: u64, churn: u64) -> Vec<u8> {
    let mut b = builder();
    b.simple_header("app", 1_000_000_000).unwrap();
    b.stack(1, 1, &[0x1111, 0x2222]).unwrap();
    b.stack(1, 2, &[0x3333, 0x4444]).unwrap();
    let mut ts = 0;
    for i in 0..churn {
        ts += 10;
        b.alloc(1, ts, 0x9000 + i * 0x100, 100, 8, Some(2)).unwrap();
        b.dealloc(1, None, 0x9000 + i * 0x100, 100, 8, Some(2))
            .unwrap();
    }
    if leak > 0 {
        b.alloc(1, ts + 1, 0x5000, leak, 8, Some(1)).unwrap();
    }
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    b.finish().unwrap()
}

#[test]
fn report_and_json() {
    let p = write_temp("cli", &trace(4000, 10));
    let j = temp_path("json");
    let o = run(&[p.to_str().unwrap(), "--json", j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for want in ["TOTALS", "PEAK", "LEAKS", "HOT", "TEMP", "COMPLETE"] {
        assert!(out.contains(want), "missing {want}:\n{out}");
    }
    assert!(out.lines().count() <= 60, "more than a screen:\n{out}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    let s = &v["summary"];
    for k in [
        "allocations",
        "deallocations",
        "reallocations",
        "failed_allocations",
        "peak_bytes",
        "peak_blocks",
        "leaked_bytes",
        "leaked_blocks",
        "lost_events",
        "complete",
    ] {
        assert!(s.get(k).is_some(), "summary.{k} missing");
    }
    assert_eq!(s["allocations"], 11);
    assert_eq!(s["peak_bytes"], 4000);
    assert_eq!(s["leaked_bytes"], 4000);
    assert_eq!(s["complete"], true);
    assert_eq!(v["temporaries"]["count"], 10);
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_file(j);
}

#[test]
fn stdin_is_a_source() {
    let mut child = bin()
        .args(["-", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&trace(64, 3))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["leaked_bytes"], 64);
    assert_eq!(v["peak"]["method"], "incremental");
    assert_eq!(v["input"]["name"], "<stdin>");
}

/// `memscope-decode trace.bin | head`: the reader closes the pipe before the
/// report is written; the decoder ends quietly (exit 0, no panic message).
#[test]
fn a_closed_stdout_ends_the_report_quietly() {
    let path = write_temp("pipe", &trace(64, 3));
    let mut child = bin()
        .arg(&path)
        .arg("--no-progress")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closing our end of the pipe before the child writes makes its first
    // write fail with EPIPE (Rust ignores SIGPIPE, so the write returns it).
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn check_exit_codes() {
    let p = write_temp("check", &trace(70_000, 5));
    let path = p.to_str().unwrap();
    let ok = run(&[
        "check",
        path,
        "--max-peak",
        "1MiB",
        "--max-allocations",
        "100",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("ok"));
    let bad = run(&[
        "check",
        path,
        "--max-peak",
        "64KiB",
        "--no-leaks",
        "--max-allocations",
        "3",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    assert!(out.contains("exceeds --max-peak 64.0 KiB"), "{out}");
    assert!(out.contains("--no-leaks"), "{out}");
    assert!(
        out.contains("6 allocations exceed --max-allocations 3"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("FAILED")).count(),
        3,
        "{out}"
    );
    let usage = run(&["check", path, "--max-peak", "lots"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("not a size"), "{}", stderr(&usage));
    let _ = std::fs::remove_file(p);
}

#[test]
fn diff_shows_what_grew_and_what_shrank() {
    let old = write_temp("old", &trace(1000, 50));
    let new = write_temp("new", &trace(5000, 10));
    let o = run(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let grew = out
        .split("GREW")
        .nth(1)
        .expect("a GREW section")
        .split("SHRANK")
        .next()
        .unwrap();
    let shrank = out.split("SHRANK").nth(1).expect("a SHRANK section");
    assert!(grew.contains("0x1111"), "{out}");
    assert!(grew.contains("leaked +3.9 KiB"), "{out}");
    assert!(shrank.contains("0x3333"), "{out}");
    assert!(shrank.contains("calls -40"), "{out}");
    let _ = std::fs::remove_file(old);
    let _ = std::fs::remove_file(new);
}

#[test]
fn error_exit_codes() {
    assert_eq!(run(&[]).status.code(), Some(2), "no trace: usage");
    assert_eq!(run(&["--no-such-flag", "x"]).status.code(), Some(2));
    let missing = run(&["/nonexistent/trace.bin"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("/nonexistent/trace.bin"));
    let junk = write_temp("junk", &b"not a trace\n".repeat(50));
    let o = run(&[junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("not a memscope trace"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(junk.to_str().unwrap()));
    let p = write_temp("noelf", &trace(10, 1));
    let o = run(&[p.to_str().unwrap(), "--elf", "/nonexistent/firmware.elf"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stderr(&o).contains("/nonexistent/firmware.elf"));
    for f in [junk, p] {
        let _ = std::fs::remove_file(f);
    }
}

#[inline(never)]
fn marker_for_symbolization() -> usize {
    std::hint::black_box(42)
}

/// This test executable: its path, load base and build id.
fn own_module() -> (String, u64, Vec<u8>) {
    use object::Object;
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    let exe_s = exe.to_str().unwrap().to_owned();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let base = maps
        .lines()
        .filter(|l| l.ends_with(&exe_s))
        .map(|l| u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
        .min()
        .expect("own mapping");
    let data = std::fs::read(&exe).unwrap();
    let id = object::File::parse(&*data)
        .unwrap()
        .build_id()
        .unwrap()
        .unwrap_or(&[])
        .to_vec();
    (exe_s, base, id)
}

#[test]
fn symbolizes_recorded_modules_and_checks_the_elf() {
    std::hint::black_box(marker_for_symbolization());
    let (exe, base, id) = own_module();
    // A return address just after a call into the marker's body.
    let ret = marker_for_symbolization as fn() -> usize as usize as u64 + 1;
    let mut b = builder();
    let mut h = Header::new(8, 0, "self");
    h.build_id = &id;
    b.header(h, None).unwrap();
    b.record(
        0,
        &Record::Module(Module {
            base,
            size: 1 << 40,
            path: &exe,
            build_id: &id,
        }),
    )
    .unwrap();
    b.stack(1, 0, &[ret]).unwrap();
    b.alloc(1, 0, 0x10, 32, 8, Some(0)).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let p = write_temp("sym", &b.finish().unwrap());
    let j = temp_path("symjson");
    let o = run(&[p.to_str().unwrap(), "--json", j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    let frames = v["stacks"]["1"]["frames"].to_string();
    assert!(
        frames.contains("marker_for_symbolization"),
        "{frames}\n{}",
        v["symbolization"]
    );
    assert!(frames.contains("decode_cli.rs"), "{frames}");
    assert!(
        stdout(&o).contains("marker_for_symbolization"),
        "{}",
        stdout(&o)
    );

    if !id.is_empty() {
        // An --elf whose build id matches no recorded module is refused.
        let mut b = builder();
        let mut h = Header::new(8, 0, "other");
        h.build_id = &[1, 2, 3, 4];
        b.header(h, None).unwrap();
        b.alloc(0, 0, 0x10, 32, 8, None).unwrap();
        let q = write_temp("mismatch", &b.finish().unwrap());
        let o = run(&[q.to_str().unwrap(), "--elf", &exe]);
        assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
        assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
        let _ = std::fs::remove_file(q);
    }
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_file(j);
}
