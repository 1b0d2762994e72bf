//! Instructions per heap event, counted by `valgrind --tool=callgrind`: a
//! figure the machine's load does not change, unlike the wall and CPU times.
//!
//! The workload runs once per configuration (System, memscope stats only,
//! stream without and with stacks) on one thread with its loop counts divided
//! by [`DIVISOR`] (callgrind runs code about 50 times slower). The event count
//! is what memscope's build prints at exit (`memscope events=N`); the System
//! build runs the same deterministic workload. Then `callgrind_annotate`
//! splits each run's instructions by function and by the source file the code
//! came from (inlined code keeps its file), and the difference to System per
//! event is grouped into the parts of memscope's record path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workload's loop counts are divided by this under callgrind.
pub const DIVISOR: u64 = 10;

/// One configuration's run.
pub struct Run {
    pub name: &'static str,
    /// Instructions of the whole process (all threads).
    pub total: u64,
    /// Heap events, from memscope's exit line (None for System).
    pub events: Option<u64>,
    /// Instructions by (group, code) where code is "function <- file".
    pub lines: Vec<Line>,
}

/// (group, "function <- file", instructions).
pub type Line = (String, String, u64);

pub struct Report {
    pub runs: Vec<Run>,
}

/// (label, binary feature, MEMSCOPE_STACKS, writes a trace).
const CONFIGS: [(&str, &str, Option<&str>, bool); 4] = [
    ("System", "", None, false),
    ("memscope stats only", "memscope", None, false),
    ("memscope stream, no stacks", "memscope", Some("0"), true),
    ("memscope stream + stacks", "memscope", Some("16"), true),
];

/// Runs the four configurations; `bin(feature)` is the workload build.
pub fn measure(
    valgrind: &Path,
    annotate: &Path,
    bin: impl Fn(&str) -> Result<PathBuf, String>,
    scratch: &Path,
    root: &Path,
) -> Result<Report, String> {
    let mut runs = Vec::new();
    for (name, feature, stacks, trace) in CONFIGS {
        eprintln!("compare: callgrind {name}");
        let bin = bin(feature)?;
        let out = scratch.join(format!("callgrind-{}.out", super::slug(name)));
        let trace_path = scratch.join("callgrind-trace.bin");
        let mut cmd = Command::new(valgrind);
        cmd.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&bin)
            .args(["1", &DIVISOR.to_string()])
            .env_remove("MEMSCOPE_OUT")
            .env_remove("MEMSCOPE_STACKS")
            .stderr(Stdio::null());
        if let Some(s) = stacks {
            cmd.env("MEMSCOPE_STACKS", s);
        }
        if trace {
            cmd.env("MEMSCOPE_OUT", &trace_path);
        }
        let o = cmd.output().map_err(|e| format!("valgrind: {e}"))?;
        let _ = std::fs::remove_file(&trace_path);
        if !o.status.success() {
            return Err(format!("valgrind on {name} exited with {}", o.status));
        }
        let stdout = String::from_utf8_lossy(&o.stdout);
        let events = stdout
            .lines()
            .find_map(|l| l.strip_prefix("memscope events="))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let text = Command::new(annotate)
            // --auto=no: no annotated source after the table (its lines
            // look like the table's and would be counted twice).
            .args(["--auto=no", "--inclusive=no", "--threshold=100"])
            .arg(&out)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("callgrind_annotate: {e}"))?;
        let text = String::from_utf8_lossy(&text.stdout);
        let (total, lines) = parse(&text, root)?;
        let _ = std::fs::remove_file(&out);
        runs.push(Run {
            name,
            total,
            events,
            lines,
        });
    }
    Ok(Report { runs })
}

/// Parts of a process's instructions, by function name (and file for glibc).
pub const GROUPS: [&str; 6] = [
    "record path",
    "stack walk and interning",
    "writer thread (framing, CRC, file writes)",
    "system allocator (glibc)",
    "memcpy/memset",
    "rest of the process",
];

fn group(function: &str, file: &str) -> usize {
    // The walk is inlined into `record::stack_of` since session 4: its
    // code keeps stacks.rs as its file.
    if function.contains("memscope_std::stacks")
        || function.contains("memscope_std::record::stack_of")
        || (function.contains("memscope_std") && file.ends_with("stacks.rs"))
    {
        1
    } else if function.contains("memscope_std::framing")
        || function.contains("memscope_std::writer")
        || function.contains("memscope_core::frame::")
        || function.starts_with("crc::")
    {
        2
    } else if function.contains("memscope")
        || function.starts_with("__rustc::__rust_alloc")
        || function.starts_with("__rustc::__rust_dealloc")
        || function.starts_with("__rustc::__rust_realloc")
    {
        0
    } else if file.contains("malloc/") {
        3
    } else if function.contains("memcpy")
        || function.contains("memset")
        || function.contains("memmove")
    {
        4
    } else {
        5
    }
}

/// `callgrind_annotate` lines: `  1,234 ( 0.5%)  file:function [object]`.
fn parse(text: &str, root: &Path) -> Result<(u64, Vec<Line>), String> {
    let mut total = None;
    let mut lines = Vec::new();
    for l in text.lines() {
        let l = l.trim_start();
        let Some((count, rest)) = l.split_once(' ') else {
            continue;
        };
        let Ok(n) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(')') else {
            continue;
        };
        let rest = rest.trim();
        if rest == "PROGRAM TOTALS" {
            total = Some(n);
            continue;
        }
        // Drop the object in brackets; split file and function at the first
        // ':' after the file (function names contain '::').
        let rest = match rest.rfind(" [") {
            Some(i) if rest.ends_with(']') => &rest[..i],
            _ => rest,
        };
        let (file, function) = match rest.find(':') {
            Some(i) if !rest[i..].starts_with("::") => (&rest[..i], &rest[i + 1..]),
            _ => ("???", rest),
        };
        let g = group(function, file);
        let code =
            format!("{} <- {}", short_function(function), short_file(file, root)).replace('|', "/");
        lines.push((GROUPS[g].to_string(), code, n));
    }
    Ok((total.ok_or("callgrind_annotate printed no totals")?, lines))
}

fn short_function(f: &str) -> String {
    f.replace("__rustc::", "")
}

/// A source path without this machine's directories: repository-relative,
/// `library/...` for the standard library, `crate-x.y.z/...` for registry
/// crates, the file name otherwise.
fn short_file(file: &str, root: &Path) -> String {
    let root = root.to_string_lossy();
    if let Some(rest) = file.strip_prefix(&*root) {
        return rest.trim_start_matches('/').to_string();
    }
    if let Some(i) = file.find("/library/") {
        return file[i + 1..].to_string();
    }
    if let Some(i) = file.find("index.crates.io-") {
        if let Some(j) = file[i..].find('/') {
            return file[i + j + 1..].to_string();
        }
    }
    file.rsplit('/').next().unwrap_or(file).to_string()
}

fn by_group(r: &Run) -> BTreeMap<&str, u64> {
    let mut g: BTreeMap<&str, u64> = BTreeMap::new();
    for (grp, _, n) in &r.lines {
        *g.entry(grp.as_str()).or_default() += n;
    }
    g
}

impl Report {
    fn events(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.events).max()
    }

    /// Markdown: the totals table and, per stream configuration, where the
    /// instructions added over System go.
    pub fn render(&self, w: &mut String) {
        use std::fmt::Write as _;
        let Some(events) = self.events() else {
            let _ = writeln!(w, "No event count (the memscope build printed none).\n");
            return;
        };
        let Some(base) = self.runs.iter().find(|r| r.name == "System") else {
            return;
        };
        let _ = writeln!(
            w,
            "| configuration | instructions (whole process) | added instructions per heap event |"
        );
        let _ = writeln!(w, "|---|---|---|");
        for r in &self.runs {
            let added = if r.name == base.name {
                "-".to_string()
            } else {
                format!(
                    "{:.0}",
                    (r.total as f64 - base.total as f64) / events as f64
                )
            };
            let _ = writeln!(w, "| {} | {} | {added} |", r.name, r.total);
        }
        let _ = writeln!(w);
        let base_groups = by_group(base);
        for r in self.runs.iter().filter(|r| r.name.contains("stream")) {
            let _ = writeln!(w, "#### {}\n", r.name);
            let groups = by_group(r);
            let parts: Vec<String> = GROUPS
                .iter()
                .map(|g| {
                    let d = *groups.get(g).unwrap_or(&0) as f64
                        - *base_groups.get(g).unwrap_or(&0) as f64;
                    format!("{g} {:+.0}", d / events as f64)
                })
                .collect();
            let _ = writeln!(
                w,
                "Added instructions per event by part (this run minus System): {}.\n",
                parts.join("; ")
            );
            let mut mine: Vec<&Line> = r
                .lines
                .iter()
                .filter(|(g, _, n)| {
                    (g == GROUPS[0] || g == GROUPS[1] || g == GROUPS[2])
                        && *n as f64 / events as f64 >= 1.0
                })
                .collect();
            mine.sort_by_key(|l| std::cmp::Reverse(l.2));
            let _ = writeln!(
                w,
                "memscope's code by function and the source file it came from (inlined code \
                 keeps its file; entry points `__rust_alloc`/`__rust_dealloc` include the \
                 inner System call's wrapper), at least 1 instruction per event:\n"
            );
            let _ = writeln!(
                w,
                "| part | function <- source file | instructions per event |"
            );
            let _ = writeln!(w, "|---|---|---|");
            for (g, code, n) in mine {
                let _ = writeln!(w, "| {g} | `{code}` | {:.1} |", *n as f64 / events as f64);
            }
            let _ = writeln!(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotate_lines_are_split_by_part_and_lose_this_machines_paths() {
        let text = "\
--------------------------------------------------------------------------------
264,290,107 (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
32,993,567 (12.48%)  /repo/memscope-core/src/wire.rs:memscope_std::record::event
19,819,473 ( 7.50%)  ./malloc/./malloc/malloc.c:_int_free [/usr/lib/x86_64-linux-gnu/libc.so.6]
 9,215,920 ( 3.49%)  /home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/crc-3.4.0/src/crc16.rs:crc::crc16::update_table [/repo/bin/w]
 3,595,776 ( 1.36%)  /repo/memscope-std/src/local.rs:__rustc::__rust_alloc
 1,000 ( 0.00%)  /rustc/0123abcd/library/alloc/src/collections/btree/node.rs:alloc::collections::btree::node::Handle<K, V>::insert
   899,036 ( 0.34%)  ???:__rustc::__rust_no_alloc_shim_is_unstable_v2 [/repo/bin/w]
";
        let (total, lines) = parse(text, Path::new("/repo")).unwrap();
        assert_eq!(total, 264_290_107);
        let find = |code: &str| lines.iter().find(|l| l.1 == code).unwrap();
        let wire = find("memscope_std::record::event <- memscope-core/src/wire.rs");
        assert_eq!((wire.0.as_str(), wire.2), (GROUPS[0], 32_993_567));
        assert_eq!(find("_int_free <- malloc.c").0, GROUPS[3]);
        assert_eq!(
            find("crc::crc16::update_table <- crc-3.4.0/src/crc16.rs").0,
            GROUPS[2]
        );
        assert_eq!(
            find("__rust_alloc <- memscope-std/src/local.rs").0,
            GROUPS[0]
        );
        assert_eq!(
            find("alloc::collections::btree::node::Handle<K, V>::insert <- library/alloc/src/collections/btree/node.rs").0,
            GROUPS[5]
        );
        assert_eq!(
            find("__rust_no_alloc_shim_is_unstable_v2 <- ???").0,
            GROUPS[5]
        );
        assert!(lines
            .iter()
            .all(|l| !l.1.contains("/repo") && !l.1.contains("/home")));
    }
}
