//! `cargo xtask`: the project's own commands, in Rust so they run wherever
//! cargo does (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask test` sets up a fresh Debian machine (rustup targets, the
//!   nightly toolchain with Miri, cargo-nextest, QEMU through apt-get when run
//!   as root) and runs every check and test, step by step, stopping at the
//!   first failure. `--only` and `--skip` pick steps; `--list` names them.
//! - `cargo xtask demo` records `examples/desktop` with memscope and shows
//!   `memscope-decode`'s analysis of the trace.
//! - `cargo xtask format-example` prints the worked example of
//!   docs/FORMAT.md, encoded by memscope-core; a test keeps the two equal.
//! - `cargo xtask setup` does only the set-up part of `test`.
//! - `cargo xtask fuzz [SECONDS]` runs the cargo-fuzz targets of `fuzz/`
//!   (seeded from real traces by `cargo xtask fuzz-seeds`).
//!
//! This crate depends on memscope-core alone, so it builds while the rest of
//! the workspace is being changed; every other crate is driven through cargo.

mod command;
mod demo;
mod failure;
mod format_example;
mod fuzz;
mod setup;
mod test_plan;
mod workspace;

use failure::Failure;
use std::process::ExitCode;

const USAGE: &str = "\
cargo xtask <command> [options]

Commands:
  test [--only a,b] [--skip a,b] [--no-setup] [--list]
        Install what the tests need, then run every step (fmt, clippy, builds
        for the microcontroller targets, the firmware, nextest, doc tests,
        loom, Miri). Stops at the first failing step.
  setup [--only a,b] [--skip a,b]
        Only the set-up that the chosen test steps need.
  demo  Record examples/desktop with memscope (MEMSCOPE_OUT=target/demo/trace.bin),
        then analyse the trace with memscope-decode (report in target/demo/report.json).
  format-example [--update-doc]
        Print the worked example of docs/FORMAT.md as memscope-core encodes it;
        --update-doc rewrites that section of docs/FORMAT.md.
  fuzz [SECONDS]
        Write the seed corpus, then run each cargo-fuzz target of fuzz/ for
        SECONDS (default 30; nightly and cargo-fuzz needed: `cargo xtask setup
        --only fuzz` installs them).
  fuzz-seeds
        Only write the seed corpus (fuzz/corpus/<target>/seed-*) from real traces.
  help  This text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "test" => test_plan::run(&test_plan::Options::parse(rest)?),
        "setup" => {
            let opts = test_plan::Options::parse(rest)?;
            test_plan::setup_only(&opts)
        }
        "demo" => {
            no_options(command, rest)?;
            demo::run()
        }
        "format-example" => match rest {
            [] => format_example::print(),
            [flag] if flag == "--update-doc" => format_example::update_doc(),
            _ => Err(Failure::usage(format!(
                "format-example takes only --update-doc, not {rest:?}"
            ))),
        },
        "fuzz" => {
            let seconds = match rest {
                [] => fuzz::CI_SECONDS,
                [s] => s.parse().map_err(|_| {
                    Failure::usage(format!("fuzz takes a number of seconds, not `{s}`"))
                })?,
                _ => {
                    return Err(Failure::usage(format!(
                        "fuzz takes one number, not {rest:?}"
                    )))
                }
            };
            fuzz::run_all(seconds)
        }
        "fuzz-seeds" => {
            no_options(command, rest)?;
            fuzz::seeds().map(|_| ())
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::usage(format!("unknown command `{other}`"))),
    }
}

fn no_options(command: &str, rest: &[String]) -> Result<(), Failure> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{command} takes no options, got {rest:?}"
        )))
    }
}
