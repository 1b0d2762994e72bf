//! `cargo xtask demo`: record a real program with memscope, then analyse the
//! trace — the main job of the project, end to end, in one command.
//!
//! 1. build `memscope-decode` and `examples/desktop` (package
//!    `desktop-example`, binary `desktop`) in release mode (debug info on, see
//!    the root Cargo.toml, so stacks symbolize). The example is built with
//!    `-C force-frame-pointers=yes`, which memscope-std's stack walker needs
//!    for complete call stacks, in a target directory of its own
//!    (`target/demo/build`) so the flag does not invalidate the main build;
//! 2. run `desktop` with `MEMSCOPE_OUT=target/demo/trace.bin`;
//! 3. run `memscope-decode target/demo/trace.bin --json target/demo/report.json`,
//!    which prints the analysis.

use crate::command::Cmd;
use crate::failure::Failure;
use crate::workspace;
use std::time::Instant;

/// What memscope-std's frame-pointer stack walker needs of the program.
const FRAME_POINTERS: &str = "-C force-frame-pointers=yes";

pub fn run() -> Result<(), Failure> {
    let target = workspace::target_dir()?;
    let out_dir = target.join("demo");
    let trace = out_dir.join("trace.bin");
    let report = out_dir.join("report.json");
    let demo_build = out_dir.join("build");
    let exe = std::env::consts::EXE_SUFFIX;
    let desktop = demo_build.join("release").join(format!("desktop{exe}"));
    let decode = target.join("release").join(format!("memscope-decode{exe}"));

    stage("1/3 build the decoder and the example program", || {
        Cmd::cargo()
            .args(["build", "--release", "-p", "memscope-decode"])
            .run()?;
        let rustflags = match std::env::var("RUSTFLAGS") {
            Ok(flags) if !flags.trim().is_empty() => format!("{flags} {FRAME_POINTERS}"),
            _ => FRAME_POINTERS.to_string(),
        };
        Cmd::cargo()
            .args(["build", "--release", "-p", "desktop-example"])
            .env("RUSTFLAGS", rustflags)
            .env("CARGO_TARGET_DIR", &demo_build)
            .run()
    })?;

    std::fs::create_dir_all(&out_dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", out_dir.display())))?;
    // A trace left by an earlier run must not pass for this run's.
    match std::fs::remove_file(&trace) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Failure::new(format!(
                "cannot remove the old {}: {e}",
                trace.display()
            )))
        }
    }

    stage("2/3 run examples/desktop under memscope", || {
        Cmd::new(&desktop)
            .env("MEMSCOPE_OUT", &trace)
            .dir(workspace::root())
            .run()
    })?;
    let size = std::fs::metadata(&trace).map(|m| m.len()).map_err(|_| {
        Failure::new(format!(
            "{} ran but wrote no trace to {} (is memscope_std::MemScope its #[global_allocator]?)",
            workspace::display(&desktop),
            workspace::display(&trace)
        ))
    })?;
    println!("    trace: {} ({size} bytes)", workspace::display(&trace));

    stage("3/3 analyse the trace with memscope-decode", || {
        Cmd::new(&decode)
            .arg(&trace)
            .arg("--json")
            .arg(&report)
            .dir(workspace::root())
            .run()
    })?;

    println!("\nThe trace:       {}", workspace::display(&trace));
    println!("The JSON report: {}", workspace::display(&report));
    println!(
        "Decode it again: {} {}",
        workspace::display(&decode),
        workspace::display(&trace)
    );
    Ok(())
}

fn stage(title: &str, f: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    println!("\n==> {title}");
    let start = Instant::now();
    f()?;
    println!("    done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
