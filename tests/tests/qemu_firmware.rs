//! Firmware end to end: build the QEMU Cortex-M4 and Cortex-M0 examples, boot
//! each in `qemu-system-arm` halted behind its gdbstub, drain the memscope RTT
//! channel through the GDB remote protocol (memscope-decode's `gdb` source),
//! decode the records, and check them against what the firmware printed over
//! semihosting: allocation count, peak and leaked bytes (memscope's own live
//! statistics) and the live heap embedded-alloc's `LlffHeap::used()` reports.
//! The decoded summary is compared with `tests/snapshots/qemu-*.txt`
//! (`UPDATE_SNAPSHOTS=1` rewrites them).
//!
//! Needs `qemu-system-arm` and the rustup targets `thumbv7em-none-eabihf` and
//! `thumbv6m-none-eabi`. Without them the tests say so loudly and pass,
//! except under `CI=true`, where the setup step must have installed them.

use memscope_core::frame::{Deframer, FrameEvent};
use memscope_core::wire::{Delta, Record, Records};
use memscope_decode::source::gdb::{GdbRtt, GdbRttConfig};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether the tools are here; `false` (after a loud message) skips the test.
fn tools_present(target: &str) -> bool {
    let qemu = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let sysroot = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output();
    let target_ok = sysroot.is_ok_and(|o| {
        o.status.success()
            && Path::new(String::from_utf8_lossy(&o.stdout).trim())
                .join("libcore.rlib")
                .exists()
            || std::fs::read_dir(String::from_utf8_lossy(&o.stdout).trim()).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
    });
    if qemu && target_ok {
        return true;
    }
    let what = match (qemu, target_ok) {
        (false, false) => format!("qemu-system-arm and the rustup target {target} are"),
        (false, true) => "qemu-system-arm is".to_string(),
        _ => format!("the rustup target {target} is"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} missing under CI=true: the test setup step (cargo xtask test) must install them");
    }
    eprintln!("\n!!!!!!!!!!\n!!! SKIPPED: {what} not installed; install with `apt-get install qemu-system-arm` / `rustup target add {target}`\n!!!!!!!!!!\n");
    false
}

/// Builds a firmware package, returns its ELF.
fn build(package: &str, target: &str) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("firmware");
    let manifest = workspace().join("examples/firmware/Cargo.toml");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            package,
            "--target",
            target,
            "--manifest-path",
        ])
        .arg(&manifest)
        // Cargo reads `.cargo/config.toml` (linker scripts, rustflags) from
        // the working directory, not from the manifest's.
        .current_dir(workspace().join("examples/firmware"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer test run's flags are for the host, not for the firmware.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {package} for {target} failed");
    target_dir.join(target).join("release").join(package)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills QEMU if the test ends early.
struct Qemu(std::process::Child);
impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Run {
    trace: Vec<u8>,
    stdout: String,
}

/// Wall-clock limits for a TCG guest on a loaded machine: generous, so a
/// starved QEMU is not a failure; a hang still fails, by name.
const QEMU_PATIENCE: Duration = Duration::from_secs(120);

/// Starts QEMU with `elf` halted and its gdbstub on `port`.
fn start_qemu(elf: &Path, machine: &str, cpu: &str, port: u16) -> Qemu {
    let child = Command::new("qemu-system-arm")
        .args([
            "-machine",
            machine,
            "-cpu",
            cpu,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"])
        // Extra arguments for debugging a failure, e.g. `-d int,guest_errors -D qemu.log`.
        .args(
            std::env::var("MEMSCOPE_QEMU_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    Qemu(child)
}

fn stderr_of(qemu: &mut Qemu) -> String {
    let mut stderr = String::new();
    if let Some(mut e) = qemu.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    stderr
}

/// Boots `elf` halted, drains RTT over GDB until the firmware exits.
fn run_in_qemu(elf: &Path, machine: &str, cpu: &str) -> Run {
    let mut config = GdbRttConfig::from_elf(elf).expect("read _SEGGER_RTT from the ELF");
    config.timeout = QEMU_PATIENCE;
    // `free_port` releases its port before QEMU binds it, so another process
    // can take it in between: QEMU then exits at once, and we try a new port.
    let mut attempts = 0;
    let (mut qemu, mut source) = 'boot: loop {
        attempts += 1;
        let port = free_port();
        let mut qemu = start_qemu(elf, machine, cpu, port);
        let started = Instant::now();
        loop {
            if qemu.0.try_wait().unwrap().is_some() {
                let stderr = stderr_of(&mut qemu);
                assert!(
                    attempts < 3,
                    "QEMU exited before its gdbstub answered ({attempts} ports tried):\n{stderr}"
                );
                continue 'boot;
            }
            match GdbRtt::connect(&format!("127.0.0.1:{port}"), config.clone()) {
                Ok(s) => break 'boot (qemu, s),
                Err(e) if started.elapsed() < QEMU_PATIENCE => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "QEMU's gdbstub never answered in {QEMU_PATIENCE:?}: {e}\n{}",
                    stderr_of(&mut qemu)
                ),
            }
        }
    };
    let mut trace = Vec::new();
    source.read_to_end(&mut trace).expect("drain RTT over GDB");
    drop(source);
    let deadline = Instant::now() + QEMU_PATIENCE;
    while qemu.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "QEMU did not exit within {QEMU_PATIENCE:?} after the trace ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = String::new();
    qemu.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr = stderr_of(&mut qemu);
    assert!(
        qemu.0.wait().unwrap().success(),
        "firmware failed:\n{stdout}\n{stderr}"
    );
    Run { trace, stdout }
}

/// `key=value` pairs of the semihosting line starting with `prefix`.
fn printed(stdout: &str, prefix: &str) -> BTreeMap<String, u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the firmware printed no `{prefix}` line:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// What the host decoded from the trace.
#[derive(Default)]
struct Decoded {
    program: String,
    target: String,
    ticks_per_second: u64,
    heap_len: Option<u64>,
    headers: usize,
    allocs: u64,
    deallocs: u64,
    reallocs: u64,
    failed: u64,
    lost: u64,
    damaged: usize,
    peak: u64,
    live: BTreeMap<u64, u64>,
    with_stack: u64,
    stacks: BTreeMap<u32, Vec<u64>>,
    end: Option<memscope_core::wire::End>,
    sizes: BTreeMap<u64, u64>,
    /// Wire bytes by what the frame carried: "header", "stack", "event", "end".
    wire: BTreeMap<&'static str, u64>,
}

fn decode(trace: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    let mut buf = vec![0u8; 4096];
    let mut de = Deframer::new(&mut buf);
    let mut delta = Delta::default();
    let mut current: u64 = 0;
    let mut input = trace;
    // `end`: offset just past the frame's delimiter.
    let mut handle = |ev: FrameEvent<'_>, d: &mut Decoded, delta: &mut Delta, end: u64| match ev {
        FrameEvent::Damaged {
            offset,
            len,
            reason,
        } => {
            eprintln!("damaged frame at byte {offset} ({len} bytes): {reason}");
            d.damaged += 1;
        }
        FrameEvent::Frame {
            stream,
            records,
            offset,
        } => {
            assert_eq!(stream, 0, "a firmware trace has only stream 0");
            let mut class = "event";
            for r in Records::new(records, delta) {
                let r = r.expect("record decodes");
                class = match r {
                    Record::Header(_) => "header",
                    Record::Stack(_) => "stack",
                    Record::End(_) => "end",
                    _ => class,
                };
                match r {
                    Record::Header(h) => {
                        d.headers += 1;
                        d.program = h.program.to_string();
                        d.target = h.target.to_string();
                        d.ticks_per_second = h.ticks_per_second;
                    }
                    Record::HeapRegion(h) => d.heap_len = Some(h.len),
                    Record::Alloc(a) => {
                        d.allocs += 1;
                        d.with_stack += u64::from(a.stack.is_some());
                        match a.addr {
                            Some(addr) => {
                                current += a.size;
                                d.live.insert(addr, a.size);
                                *d.sizes.entry(a.size).or_default() += 1;
                            }
                            None => d.failed += 1,
                        }
                    }
                    Record::Dealloc(f) => {
                        d.deallocs += 1;
                        let size = d
                            .live
                            .remove(&f.addr)
                            .expect("free of a block the trace allocated");
                        assert_eq!(size, f.size, "free with another size than allocated");
                        current -= f.size;
                    }
                    Record::Realloc(r) => {
                        d.reallocs += 1;
                        d.with_stack += u64::from(r.stack.is_some());
                        match r.new_addr {
                            Some(new) => {
                                let old = d
                                    .live
                                    .remove(&r.old_addr)
                                    .expect("realloc of a block the trace allocated");
                                assert_eq!(old, r.old_size);
                                d.live.insert(new, r.new_size);
                                current = current - r.old_size + r.new_size;
                            }
                            None => d.failed += 1,
                        }
                    }
                    Record::Lost { count } => d.lost += count,
                    Record::Stack(s) => {
                        d.stacks.insert(s.id, s.frames.iter().collect());
                    }
                    Record::End(e) => d.end = Some(e),
                    _ => {}
                }
                d.peak = d.peak.max(current);
            }
            *d.wire.entry(class).or_default() += end - offset;
        }
    };
    while !input.is_empty() {
        let (n, ev) = de.push(input);
        input = &input[n..];
        let end = (trace.len() - input.len()) as u64;
        if let Some(ev) = ev {
            handle(ev, &mut d, &mut delta, end);
        }
    }
    if let Some(ev) = de.finish() {
        handle(ev, &mut d, &mut delta, trace.len() as u64);
    }
    d
}

/// What `LlffHeap::used()` (linked_list_allocator) counts for a block: the
/// size rounded up to its hole granularity (8 bytes minimum, multiples of 4
/// on a 32-bit target). Inferred from that allocator's source, and checked
/// against its own figure here.
fn llff_footprint(size: u64) -> u64 {
    size.max(8).next_multiple_of(4)
}

/// Text ranges of the ELF: every recorded return address must point into one.
fn text_ranges(elf: &Path) -> Vec<(u64, u64)> {
    use object::{Object, ObjectSection, SectionKind};
    let data = std::fs::read(elf).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| (s.address(), s.address() + s.size()))
        .collect()
}

fn summary(d: &Decoded) -> String {
    let leaked: u64 = d.live.values().sum();
    let mut s = String::new();
    use std::fmt::Write;
    writeln!(s, "program: {} ({})", d.program, d.target).unwrap();
    writeln!(
        s,
        "clock: {}",
        if d.ticks_per_second == 0 {
            "none (order only)".to_string()
        } else {
            format!("{} ticks/s", d.ticks_per_second)
        }
    )
    .unwrap();
    writeln!(
        s,
        "heap region: {} bytes",
        d.heap_len.map_or("not announced".into(), |l| l.to_string())
    )
    .unwrap();
    writeln!(s, "sessions: {}", d.headers).unwrap();
    writeln!(
        s,
        "allocs: {}, deallocs: {}, reallocs: {}, failed: {}",
        d.allocs, d.deallocs, d.reallocs, d.failed
    )
    .unwrap();
    writeln!(s, "lost: {}, damaged frames: {}", d.lost, d.damaged).unwrap();
    writeln!(s, "peak: {} bytes", d.peak).unwrap();
    writeln!(s, "leaked: {} bytes in {} blocks", leaked, d.live.len()).unwrap();
    writeln!(
        s,
        "end record: {}",
        if d.end.is_some() {
            "present"
        } else {
            "missing"
        }
    )
    .unwrap();
    writeln!(
        s,
        "events with a call stack: {} of {}",
        d.with_stack,
        d.allocs + d.reallocs
    )
    .unwrap();
    let sizes: Vec<String> = d
        .sizes
        .iter()
        .map(|(size, n)| format!("{size}x{n}"))
        .collect();
    writeln!(s, "allocation sizes (bytes x count): {}", sizes.join(" ")).unwrap();
    s
}

fn check_snapshot(name: &str, actual: &str) {
    let path = workspace()
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        if std::env::var("CI").as_deref() == Ok("true")
            && std::env::var_os("UPDATE_SNAPSHOTS").is_none()
        {
            panic!(
                "snapshot {} was missing under CI=true; commit it",
                path.display()
            );
        }
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual,
        expected,
        "decoded summary differs from {} (UPDATE_SNAPSHOTS=1 to accept)",
        path.display()
    );
}

fn firmware_end_to_end(package: &str, target: &str, machine: &str, cpu: &str) {
    if !tools_present(target) {
        return;
    }
    let elf = build(package, target);
    let run = run_in_qemu(&elf, machine, cpu);
    let d = decode(&run.trace);
    let ms = printed(&run.stdout, "memscope ");
    let heap = printed(&run.stdout, "embedded-alloc ");
    let text = summary(&d);
    let events = d.allocs + d.deallocs + d.reallocs;
    let wire = |k| d.wire.get(k).copied().unwrap_or(0);
    eprintln!(
        "{package}: {} trace bytes over GDB: header {} B, {} stacks {} B, end {} B, {events} events {} B = {:.2} B/event ({:.2} B/event with stack records)\n{text}",
        run.trace.len(),
        wire("header"),
        d.stacks.len(),
        wire("stack"),
        wire("end"),
        wire("event"),
        wire("event") as f64 / events as f64,
        (wire("event") + wire("stack")) as f64 / events as f64,
    );

    // The trace is whole: one session, nothing lost or damaged, an end record
    // whose totals match.
    assert_eq!((d.headers, d.lost, d.damaged), (1, 0, 0), "{text}");
    assert_eq!(ms["lost"], 0);
    let end = d.end.expect("end record");
    assert_eq!(
        (end.allocs, end.deallocs, end.reallocs, end.lost),
        (d.allocs, d.deallocs, d.reallocs, 0)
    );

    // What the firmware printed.
    assert_eq!(d.allocs, ms["allocs"], "allocation count");
    assert_eq!(d.deallocs, ms["deallocs"]);
    assert_eq!(d.reallocs, ms["reallocs"]);
    assert_eq!(d.failed, ms["failed"]);
    assert_eq!(d.peak, ms["peak_bytes"], "peak bytes");
    let leaked: u64 = d.live.values().sum();
    assert_eq!(leaked, ms["current_bytes"], "leaked bytes");
    assert_eq!(d.live.len() as u64, ms["current_blocks"]);
    assert_eq!(
        leaked,
        48 + 20,
        "the workload leaks a 48-byte Box and a 20-byte Vec"
    );
    let footprint: u64 = d.live.values().map(|&s| llff_footprint(s)).sum();
    assert_eq!(
        footprint, heap["used"],
        "embedded-alloc used() vs the decoded live blocks"
    );
    assert_eq!(
        d.heap_len,
        Some(heap["used"] + heap["free"]),
        "announced heap region vs used + free"
    );
    assert!(printed(&run.stdout, "interrupt ")["allocations"] >= 3);

    // Call sites: every allocation carries one, every address is code.
    assert_eq!(d.with_stack, d.allocs + d.reallocs, "{text}");
    let text_ranges = text_ranges(&elf);
    for (id, frames) in &d.stacks {
        assert!(!frames.is_empty(), "stack {id} is empty");
        for f in frames {
            assert!(
                text_ranges.iter().any(|(a, b)| (a..b).contains(&f)),
                "stack {id}: {f:#x} is not in .text"
            );
        }
    }
    check_snapshot(package, &text);

    // memscope-decode's own report on the same bytes, symbolized with the
    // ELF: the same figures, and the leaks attributed to the two lines of the
    // workload that leak (the r7 walk reached the caller, and the host
    // trimmed memscope's and the allocator's frames).
    let common = memscope_decode::cli::Common {
        elf: Some(elf.clone()),
        no_progress: true,
        top: 20,
        ..Default::default()
    };
    let src = memscope_decode::source::Source::live(
        package,
        Box::new(std::io::Cursor::new(run.trace.clone())),
    );
    let (_, rep, _) =
        memscope_decode::cli::analyse(src, &common).expect("memscope-decode reads the trace");
    assert_eq!(rep.summary.peak_bytes, ms["peak_bytes"]);
    assert_eq!(rep.summary.allocations, ms["allocs"]);
    assert_eq!(
        (rep.leaks.bytes, rep.leaks.blocks),
        (ms["current_bytes"], ms["current_blocks"])
    );
    let workload =
        std::fs::read_to_string(workspace().join("examples/firmware/workload/src/lib.rs")).unwrap();
    let line_of = |needle: &str| {
        1 + workload
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in the workload"))
    };
    let mut expected = vec![
        format!("workload/src/lib.rs:{}", line_of("Box::leak(")),
        format!("workload/src/lib.rs:{}", line_of("Vec::with_capacity(20)")),
    ];
    let mut found: Vec<String> = rep
        .leaks
        .sites
        .iter()
        .map(|s| {
            s.location
                .rsplit('(')
                .next()
                .unwrap_or("")
                .trim_end_matches(')')
                .to_string()
        })
        .collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected, "leak sites: {:?}", rep.leaks.sites);
}

#[test]
fn qemu_cortex_m4_trace_matches_the_firmware() {
    firmware_end_to_end(
        "qemu-m4",
        "thumbv7em-none-eabihf",
        "mps2-an386",
        "cortex-m4",
    );
}

#[test]
fn qemu_cortex_m0_trace_matches_the_firmware() {
    firmware_end_to_end("qemu-m0", "thumbv6m-none-eabi", "microbit", "cortex-m0");
}
