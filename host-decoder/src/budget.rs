//! `check`: budgets a trace must keep, for CI. Every session of the trace is
//! checked; each exceeded budget yields one readable reason.

use crate::render::bytes;
use crate::report::{all_sessions, Report};

/// Limits; `None` / `false` = not checked.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// Peak live bytes at most.
    pub max_peak: Option<u64>,
    /// No block live at the end.
    pub no_leaks: bool,
    /// Bytes live at the end at most.
    pub max_leaked: Option<u64>,
    /// alloc calls at most.
    pub max_allocations: Option<u64>,
    /// No heap errors (double free, layout mismatch…).
    pub no_errors: bool,
    /// The trace must prove itself complete.
    pub require_complete: bool,
    /// No failed allocation.
    pub no_failed: bool,
}

/// Parses `64KiB`, `64K`, `1.5MiB`, `64kB` (1000s), `1000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 4096, 64KiB, 1.5MiB, 2G)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1000.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use B, KiB, MiB, GiB, kB, MB, GB)"
            ))
        }
    };
    if num < 0.0 || !num.is_finite() {
        return Err(format!("`{s}` is not a size"));
    }
    Ok((num * mult).round() as u64)
}

/// Parses `1ms`, `500us`, `2s`, `100ns` into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 1ms, 500us, 2s)"))?;
    let mult = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" | "" => 1e6,
        "s" => 1e9,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ns, us, ms, s)")),
    };
    Ok((num * mult).round() as u64)
}

/// The budgets `report` exceeds, as sentences.
pub fn check(report: &Report, b: &Budget) -> Vec<String> {
    let mut v = Vec::new();
    let all = all_sessions(report);
    for r in &all {
        let s = &r.summary;
        let tag = if all.len() > 1 {
            format!("session {}: ", r.session)
        } else {
            String::new()
        };
        if let Some(max) = b.max_peak {
            if s.peak_bytes > max {
                let who = r
                    .peak
                    .sites
                    .first()
                    .map(|x| {
                        format!(
                            "; largest at the peak: {} from {}",
                            bytes(x.bytes),
                            x.location
                        )
                    })
                    .unwrap_or_default();
                v.push(format!(
                    "{tag}peak {} ({} bytes) exceeds --max-peak {} ({max} bytes){who}",
                    bytes(s.peak_bytes),
                    s.peak_bytes,
                    bytes(max)
                ));
            }
        }
        if b.no_leaks && s.leaked_blocks > 0 {
            let who = r
                .leaks
                .sites
                .first()
                .map(|x| {
                    format!(
                        "; largest: {} in {} blocks from {}",
                        bytes(x.bytes),
                        x.count,
                        x.location
                    )
                })
                .unwrap_or_default();
            v.push(format!(
                "{tag}{} blocks ({}) still live at the end, --no-leaks{who}",
                s.leaked_blocks,
                bytes(s.leaked_bytes)
            ));
        }
        if let Some(max) = b.max_leaked {
            if s.leaked_bytes > max {
                v.push(format!(
                    "{tag}{} live at the end exceeds --max-leaked {}",
                    bytes(s.leaked_bytes),
                    bytes(max)
                ));
            }
        }
        if let Some(max) = b.max_allocations {
            if s.allocations > max {
                v.push(format!(
                    "{tag}{} allocations exceed --max-allocations {max}",
                    s.allocations
                ));
            }
        }
        if b.no_errors && s.errors > 0 {
            let first = r
                .errors
                .examples
                .first()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default();
            v.push(format!("{tag}{} heap errors, --no-errors{first}", s.errors));
        }
        if b.no_failed && s.failed_allocations > 0 {
            v.push(format!(
                "{tag}{} allocations failed, --no-failed",
                s.failed_allocations
            ));
        }
        if b.require_complete && !s.complete {
            v.push(format!(
                "{tag}trace not complete, --require-complete: {}",
                s.incomplete_reasons.join("; ")
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64kB"), Ok(64000));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("4_096"), Ok(4096));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(parse_duration_ns("1ms"), Ok(1_000_000));
        assert_eq!(parse_duration_ns("250us"), Ok(250_000));
        assert_eq!(parse_duration_ns("2s"), Ok(2_000_000_000));
        assert!(parse_duration_ns("soon").is_err());
    }
}
