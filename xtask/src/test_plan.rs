//! `cargo xtask test`: the steps, in the order that fails fastest (cheap
//! checks first, Miri last), each printed with a header and its wall time.

use crate::command::Cmd;
use crate::failure::Failure;
use crate::setup::{self, Need, Toolbox, NIGHTLY, PORT_TARGETS, TARGETS};
use crate::workspace;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One step of the test run.
struct Step {
    name: &'static str,
    what: &'static str,
    needs: &'static [Need],
    plan: fn(&Context) -> Plan,
}

/// What a step will do on this checkout.
enum Plan {
    Run(Vec<Cmd>),
    /// Nothing to do here, and why (printed, never silent).
    Skip(String),
}

/// What the plans are made from.
struct Context {
    root: PathBuf,
    target_dir: PathBuf,
    toolbox: Toolbox,
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        what: "formatting of every workspace crate",
        needs: &[Need::Rustfmt],
        plan: |_| Plan::Run(vec![Cmd::cargo().args(["fmt", "--all", "--check"])]),
    },
    Step {
        name: "clippy",
        what: "lints of every crate and target, warnings are errors",
        needs: &[Need::Clippy],
        plan: |_| {
            Plan::Run(vec![Cmd::cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])])
        },
    },
    Step {
        name: "core-targets",
        what: "memscope-core builds for Cortex-M0, Cortex-M4F and RISC-V; memscope-std passes clippy on aarch64 Linux",
        needs: &[Need::Targets],
        plan: |_| {
            // One cargo call for the three targets: cargo builds them in parallel.
            let targets = TARGETS.iter().flat_map(|t| ["--target", t]);
            let ports = PORT_TARGETS.iter().flat_map(|t| ["--target", t]);
            Plan::Run(vec![
                Cmd::cargo()
                    .args(["build", "-p", "memscope-core"])
                    .args(targets),
                // The code x86_64 never compiles (no linker needed: a check).
                Cmd::cargo()
                    .args(["clippy", "-p", "memscope-std"])
                    .args(ports)
                    .args(["--", "-D", "warnings"]),
            ])
        },
    },
    Step {
        name: "firmware",
        what: "the firmware examples (their own workspace) build",
        needs: &[Need::Targets],
        plan: firmware,
    },
    Step {
        name: "nextest",
        what: "the workspace tests (unit, property, end-to-end, QEMU)",
        needs: &[Need::Targets, Need::Nextest, Need::DebianTools],
        plan: |cx| {
            if cx.toolbox.nextest {
                Plan::Run(vec![Cmd::cargo().args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                ])])
            } else {
                println!(
                    "    (cargo-nextest is not installed: running the tests with `cargo test`)"
                );
                Plan::Run(vec![Cmd::cargo().args([
                    "test",
                    "--workspace",
                    "--no-fail-fast",
                ])])
            }
        },
    },
    Step {
        name: "doctest",
        what: "the examples in the API docs (nextest does not run them)",
        needs: &[],
        plan: |_| Plan::Run(vec![Cmd::cargo().args(["test", "--workspace", "--doc"])]),
    },
    Step {
        name: "docs",
        what: "the API docs build, private items included, with no broken links",
        needs: &[],
        plan: |_| {
            Plan::Run(vec![Cmd::cargo()
                .args([
                    "doc",
                    "--no-deps",
                    "--workspace",
                    "--document-private-items",
                ])
                .env("RUSTDOCFLAGS", "-D warnings")])
        },
    },
    Step {
        name: "loom",
        what: "loom models of the ring, the slot registry and the consistent cut (every interleaving, bounded)",
        needs: &[],
        plan: loom,
    },
    Step {
        name: "fuzz",
        what: "each cargo-fuzz target (fuzz/) for a short while, seeded from real traces",
        needs: &[Need::Fuzz],
        plan: fuzz,
    },
    Step {
        name: "miri",
        what: "memscope-core's tests and memscope-std's unsafe parts under Miri (undefined behaviour)",
        needs: &[Need::Miri],
        plan: miri,
    },
];

/// The loom model's test file; the step runs once it exists.
const LOOM_TEST: &str = "memscope-core/tests/loom_ring.rs";

fn loom(cx: &Context) -> Plan {
    if !cx.root.join(LOOM_TEST).is_file() {
        return Plan::Skip(format!("{LOOM_TEST} does not exist yet"));
    }
    // `--cfg loom` changes every crate's build: a target directory of its own
    // keeps the main build from being invalidated.
    // The models with three actors (ring + observer, memscope-std's slot
    // registry and its consistent cut), then ring.rs's own model. `--lib`
    // is filtered: stack.rs's unit tests use a ring outside any loom model.
    let loom_cmd = |args: &[&str]| {
        Cmd::cargo()
            .args(["test", "-p", "memscope-core", "--release"])
            .args(args)
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", cx.target_dir.join("loom"))
    };
    Plan::Run(vec![
        loom_cmd(&[
            "--test",
            "loom_ring",
            "--test",
            "loom_slot_registry",
            "--test",
            "loom_consistent_cut",
        ]),
        loom_cmd(&["--lib", "ring::loom_tests"]),
    ])
}

fn miri(_: &Context) -> Plan {
    // cargo-miri keeps its builds in `<target>/miri`, apart from the main ones.
    // Property tests run few cases: Miri is about 1000x slower than native, and
    // the native run already covers the value space. Isolation is off because
    // proptest looks up the working directory for its regression files.
    // MIRIFLAGS and PROPTEST_CASES set by the caller win.
    //
    // memscope-std: the real slot registry, thread exit and counters
    // (threads_and_slots) and the unit tests of its unsafe parts that Miri
    // can run — not the whole lib: the frame walk and module scan use inline
    // assembly and dl_iterate_phdr, and framing's byte-identity tests take
    // longer than 15 minutes under Miri.
    let miri_cmd = |args: &[&str]| {
        Cmd::cargo()
            .args([format!("+{NIGHTLY}").as_str(), "miri", "test"])
            .args(args)
            .env("MIRIFLAGS", env_or("MIRIFLAGS", "-Zmiri-disable-isolation"))
            .env("PROPTEST_CASES", env_or("PROPTEST_CASES", "8"))
    };
    Plan::Run(vec![
        miri_cmd(&["-p", "memscope-core"]),
        miri_cmd(&["-p", "memscope-std", "--test", "threads_and_slots"]),
        miri_cmd(&[
            "-p",
            "memscope-std",
            "--lib",
            "--",
            "slot::",
            "stacks::tests::table",
            "framing::tests::short",
            "framing::tests::every_cobs",
        ]),
        // The host's fast frame code (carry-less CRC-16, in-place COBS), with
        // PCLMULQDQ on so that Miri runs its intrinsics; last, because the
        // changed RUSTFLAGS rebuild what they touch.
        miri_cmd(&[
            "-p",
            "memscope-core",
            "--features",
            "fast-frames",
            "--lib",
            "--",
            "frame::",
        ])
        .env("RUSTFLAGS", "-C target-feature=+pclmulqdq"),
    ])
}

/// `cargo xtask fuzz`, through this very program (it writes the seeds itself).
fn fuzz(cx: &Context) -> Plan {
    if !cx.root.join("fuzz/Cargo.toml").is_file() {
        return Plan::Skip("fuzz/Cargo.toml does not exist".into());
    }
    let me = std::env::current_exe().unwrap_or_else(|_| "cargo-xtask".into());
    Plan::Run(vec![Cmd::new(me)
        .args(["fuzz", &crate::fuzz::CI_SECONDS.to_string()])
        .dir(&cx.root)])
}

/// The firmware packages of `examples/firmware` and the target each builds for.
const FIRMWARE: &[(&str, &str)] = &[
    ("qemu-m4", "thumbv7em-none-eabihf"),
    ("qemu-m0", "thumbv6m-none-eabi"),
    ("nrf52840", "thumbv7em-none-eabihf"),
];

/// The firmware workspace, when it exists, built from its own directory so
/// that its `.cargo/config.toml` (linker scripts, runners) applies. Each
/// package is built the way tests/tests/qemu_firmware.rs builds it (release,
/// `<target>/firmware`, no host RUSTFLAGS), so the QEMU tests reuse the build.
fn firmware(cx: &Context) -> Plan {
    let dir = cx.root.join("examples/firmware");
    if !dir.join("Cargo.toml").is_file() {
        return Plan::Skip("examples/firmware/Cargo.toml does not exist yet".into());
    }
    let cmds: Vec<Cmd> = FIRMWARE
        .iter()
        .filter(|(package, _)| dir.join(package).join("Cargo.toml").is_file())
        .map(|(package, target)| {
            Cmd::new("cargo")
                .args(["build", "--release", "-p", package, "--target", target])
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env("CARGO_TARGET_DIR", cx.target_dir.join("firmware"))
                .dir(&dir)
        })
        .collect();
    if cmds.is_empty() {
        return Plan::Skip("examples/firmware holds none of the firmware packages yet".into());
    }
    Plan::Run(cmds)
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// Command-line options of `test` and `setup`.
pub struct Options {
    steps: Vec<&'static Step>,
    setup: bool,
    list: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, Failure> {
        let mut only: Option<Vec<&'static Step>> = None;
        let mut skip: Vec<&'static Step> = Vec::new();
        let mut setup = true;
        let mut list = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| {
                        Failure::usage(format!("{flag} needs a comma-separated list of steps"))
                    })
            };
            match flag {
                "--only" => only = Some(step_list(&value()?)?),
                "--skip" => skip.extend(step_list(&value()?)?),
                "--no-setup" => setup = false,
                "--list" => list = true,
                other => return Err(Failure::usage(format!("unknown option `{other}`"))),
            }
        }
        let chosen = only.unwrap_or_else(|| STEPS.iter().collect());
        let steps = STEPS
            .iter()
            .filter(|s| chosen.iter().any(|c| c.name == s.name))
            .filter(|s| !skip.iter().any(|c| c.name == s.name))
            .collect();
        Ok(Options { steps, setup, list })
    }

    fn needs(&self) -> BTreeSet<Need> {
        self.steps
            .iter()
            .flat_map(|s| s.needs.iter().copied())
            .collect()
    }
}

fn step_list(list: &str) -> Result<Vec<&'static Step>, Failure> {
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(|name| {
            STEPS.iter().find(|s| s.name == name).ok_or_else(|| {
                let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
                Failure::usage(format!(
                    "unknown step `{name}`; the steps are {}",
                    names.join(", ")
                ))
            })
        })
        .collect()
}

/// `cargo xtask setup`.
pub fn setup_only(opts: &Options) -> Result<(), Failure> {
    timed("setup", "install what the chosen steps need", || {
        setup::prepare(&opts.needs()).map(|_| ())
    })
    .map(|_| ())
}

/// `cargo xtask test`.
pub fn run(opts: &Options) -> Result<(), Failure> {
    if opts.list {
        for s in STEPS {
            println!("{:<13} {}", s.name, s.what);
        }
        return Ok(());
    }
    if opts.steps.is_empty() {
        return Err(Failure::usage("no step chosen"));
    }
    let started = Instant::now();
    let mut times = Vec::new();
    let toolbox = if opts.setup {
        let (toolbox, took) = timed("setup", "install what the chosen steps need", || {
            setup::prepare(&opts.needs())
        })?;
        times.push(("setup", took));
        toolbox
    } else {
        Toolbox {
            nextest: Cmd::cargo().args(["nextest", "--version"]).succeeds(),
        }
    };
    let cx = Context {
        root: workspace::root(),
        target_dir: workspace::target_dir()?,
        toolbox,
    };
    let total = opts.steps.len();
    for (i, step) in opts.steps.iter().enumerate() {
        let title = format!("[{}/{total}] {}", i + 1, step.name);
        let ((), took) = timed(&title, step.what, || match (step.plan)(&cx) {
            Plan::Run(cmds) => cmds.iter().try_for_each(|c| {
                println!("    $ {c}");
                c.run()
            }),
            Plan::Skip(why) => {
                println!("    skipped: {why}");
                Ok(())
            }
        })
        .map_err(|e| {
            Failure::new(format!(
                "step `{}` failed: {e}\nrerun only this step with: cargo xtask test --only {}",
                step.name, step.name
            ))
        })?;
        times.push((step.name, took));
    }
    println!("\n==> summary");
    for (name, took) in &times {
        println!("    {name:<13} {}", clock(*took));
    }
    println!(
        "    all {} chosen steps succeeded in {}",
        opts.steps.len(),
        clock(started.elapsed())
    );
    Ok(())
}

/// Runs `f` under a header, then prints how long it took.
fn timed<T>(
    title: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, Failure>,
) -> Result<(T, Duration), Failure> {
    println!("\n==> {title}: {what}");
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    match &out {
        Ok(_) => println!("    {title}: ok in {}", clock(took)),
        Err(_) => println!("    {title}: FAILED after {}", clock(took)),
    }
    out.map(|t| (t, took))
}

fn clock(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(opts: &Options) -> Vec<&'static str> {
        opts.steps.iter().map(|s| s.name).collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_runs_every_step_in_order() {
        let opts = Options::parse(&[]).unwrap();
        assert_eq!(
            names(&opts),
            STEPS.iter().map(|s| s.name).collect::<Vec<_>>()
        );
        assert!(opts.setup);
    }

    #[test]
    fn only_and_skip_pick_steps_and_keep_the_order() {
        let opts = Options::parse(&args(&["--only", "miri,fmt"])).unwrap();
        assert_eq!(names(&opts), ["fmt", "miri"]);
        let opts = Options::parse(&args(&["--skip=miri,loom", "--no-setup"])).unwrap();
        assert!(!names(&opts).contains(&"miri"));
        assert!(!names(&opts).contains(&"loom"));
        assert!(names(&opts).contains(&"nextest"));
        assert!(!opts.setup);
    }

    #[test]
    fn unknown_step_names_the_valid_ones() {
        let err = Options::parse(&args(&["--only", "fmt,bogus"]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown step `bogus`"));
        assert!(err.to_string().contains("core-targets"));
    }

    #[test]
    fn needs_follow_the_chosen_steps() {
        let opts = Options::parse(&args(&["--only", "fmt"])).unwrap();
        assert_eq!(
            opts.needs().into_iter().collect::<Vec<_>>(),
            [Need::Rustfmt]
        );
        let opts = Options::parse(&[]).unwrap();
        assert!(opts.needs().contains(&Need::Miri));
        assert!(opts.needs().contains(&Need::DebianTools));
    }

    /// README's "Two commands" section names the test command, and `.ci/run`
    /// runs exactly it.
    #[test]
    fn ci_runs_the_readme_test_command() {
        let root = workspace::root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let section = readme
            .split("## Two commands")
            .nth(1)
            .expect("README.md has a `## Two commands` section");
        let section = section.split("\n## ").next().unwrap();
        assert!(
            section.contains("`cargo xtask demo`"),
            "README names the run command"
        );
        assert!(
            section.contains("`cargo xtask test`"),
            "README names the test command"
        );
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
        assert!(ci.starts_with("#!/usr/bin/env bash\n"));
        assert!(ci.contains("set -euo pipefail"));
        let commands: Vec<&str> = ci
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| !l.starts_with("set ") && !l.starts_with("cd ") && !l.starts_with("if "))
            .collect();
        assert_eq!(
            commands,
            ["cargo xtask test"],
            ".ci/run runs exactly the README's test command"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(clock(Duration::from_millis(4200)), "4.2s");
        assert_eq!(clock(Duration::from_secs(754)), "12m34.0s");
    }
}
