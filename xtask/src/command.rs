//! External commands: run one in the foreground, or ask one a question.

use crate::failure::Failure;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A command line with its environment additions and working directory, which
/// prints the way a person would type it.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed_envs: Vec<OsString>,
    dir: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            removed_envs: Vec::new(),
            dir: None,
        }
    }

    /// `cargo` with the workspace root as working directory.
    pub fn cargo() -> Self {
        Cmd::new("cargo").dir(crate::workspace::root())
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Runs without `key` in the environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.removed_envs.push(key.into());
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for k in &self.removed_envs {
            c.env_remove(k);
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Runs with the terminal's stdin/stdout/stderr; fails unless it exits 0.
    pub fn run(&self) -> Result<(), Failure> {
        let status = self
            .command()
            .status()
            .map_err(|e| self.spawn_failure(&e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::new(format!("`{self}` failed ({status})")))
        }
    }

    /// Runs quietly and returns stdout when it exits 0; stderr is kept for the error.
    pub fn capture(&self) -> Result<String, Failure> {
        let out = self
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_failure(&e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Failure::new(format!(
                "`{self}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Whether the command runs and exits 0 (its output is discarded): a probe.
    pub fn succeeds(&self) -> bool {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn spawn_failure(&self, e: &std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::new(format!(
                "`{}` was not found on PATH (needed to run `{self}`)",
                self.program.to_string_lossy()
            ))
        } else {
            Failure::new(format!("cannot start `{self}`: {e}"))
        }
    }
}

impl fmt::Display for Cmd {
    /// `KEY=value program args…`, quoted where the shell would need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if !self.removed_envs.is_empty() {
            words.push("env".to_string());
            for k in &self.removed_envs {
                words.push(format!("-u {}", k.to_string_lossy()));
            }
        }
        for (k, v) in &self.envs {
            words.push(format!(
                "{}={}",
                k.to_string_lossy(),
                quote(&v.to_string_lossy())
            ));
        }
        words.push(quote(&self.program.to_string_lossy()));
        words.extend(self.args.iter().map(|a| quote(&a.to_string_lossy())));
        f.write_str(&words.join(" "))
    }
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Whether an executable named `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate = dir.join(name);
        candidate
            .metadata()
            .is_ok_and(|m| m.is_file() && is_executable(&m))
    })
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_shell_line() {
        let c = Cmd::new("cargo")
            .args(["test", "--test", "loom_ring"])
            .env("RUSTFLAGS", "--cfg loom");
        assert_eq!(
            c.to_string(),
            "RUSTFLAGS='--cfg loom' cargo test --test loom_ring"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        let c = Cmd::new("cargo")
            .arg("build")
            .env_remove("RUSTFLAGS")
            .env("CARGO_TARGET_DIR", "t/fw");
        assert_eq!(
            c.to_string(),
            "env -u RUSTFLAGS CARGO_TARGET_DIR=t/fw cargo build"
        );
    }

    #[test]
    fn finds_a_program_on_path_and_not_a_made_up_one() {
        assert!(on_path("cargo"));
        assert!(!on_path("no-such-program-memscope-xtask"));
    }
}
