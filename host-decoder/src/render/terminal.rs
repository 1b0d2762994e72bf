//! The terminal report: one screen with what a developer acts on — totals,
//! the exact peak and who held it, leaks by site with their stacks, the
//! hottest sites, temporaries, errors, what was lost, and what was inferred
//! (marked as such).

use super::bytes;
use crate::report::{describe_frame, Report, SiteRow};
use std::fmt::Write as _;

/// Rows per section.
const ROWS: usize = 5;

/// Renders the report (and a line per earlier session).
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    for p in &r.previous_sessions {
        let _ = writeln!(
            o,
            "session {} (ended by a target reset at byte {}): {} allocs, peak {}, {} live at reset{}",
            p.session,
            r.session_offset,
            p.summary.allocations,
            bytes(p.summary.peak_bytes),
            bytes(p.summary.leaked_bytes),
            if p.summary.errors > 0 { format!(", {} ERRORS", p.summary.errors) } else { String::new() }
        );
    }
    session(&mut o, r);
    inert(&o)
}

/// The text with every control character but the line feed, and every
/// Unicode bidirectional control, written as a visible `\u{..}` escape.
///
/// Program and target names and module paths come from the trace, frame
/// names from the symbol tables of the files it names; printed raw, a name with
/// an escape sequence would drive the reader's terminal (recolour, move the
/// cursor, set the window title), and a bidirectional override would show
/// text in another order than it is. The report itself writes only `\n`.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n') || bidi {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn stack_lines(o: &mut String, r: &Report, site: u32, max: usize) {
    let Some(st) = r.stacks.get(&site) else {
        return;
    };
    for f in st.frames.iter().skip(st.first_user_frame + 1).take(max) {
        let _ = writeln!(o, "          <- {}", describe_frame(f));
    }
}

/// What a list is sorted by (its rows are re-sorted after merging).
#[derive(Clone, Copy)]
enum By {
    Bytes,
    Count,
}

/// One line of a site list: the sites whose first user frame and library
/// entry point read the same, summed. Distinct stacks often end in the same
/// user line (a `BTreeMap::insert` allocates leaf and internal nodes, a
/// `format!` on the same line a string): one screen shows the line once,
/// with what it called, and the JSON keeps every stack.
struct Line {
    label: String,
    bytes: u64,
    count: u64,
    stacks: usize,
    /// The largest merged site (its callers are the ones shown).
    site: u32,
    site_bytes: u64,
}

fn merged(r: &Report, list: &[SiteRow], by: By) -> Vec<Line> {
    merge_labelled(
        list.iter().map(|row| {
            let label = match entry_point(r, row.site) {
                Some(via) => format!("{} via {via}", row.location),
                None => row.location.clone(),
            };
            (label, row)
        }),
        by,
    )
}

fn merge_labelled<'a>(rows: impl Iterator<Item = (String, &'a SiteRow)>, by: By) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for (label, row) in rows {
        match lines.iter_mut().find(|l| l.label == label) {
            Some(l) => {
                l.bytes += row.bytes;
                l.count += row.count;
                l.stacks += 1;
                if row.bytes > l.site_bytes {
                    l.site = row.site;
                    l.site_bytes = row.bytes;
                }
            }
            None => lines.push(Line {
                label,
                bytes: row.bytes,
                count: row.count,
                stacks: 1,
                site: row.site,
                site_bytes: row.bytes,
            }),
        }
    }
    // Stable: ties keep the report's order.
    match by {
        By::Bytes => lines.sort_by_key(|l| std::cmp::Reverse(l.bytes)),
        By::Count => lines.sort_by_key(|l| std::cmp::Reverse(l.count)),
    }
    lines
}

/// The library function the user's frame called to allocate (the frame just
/// inside the first user frame), shortened: `BTreeMap::insert`,
/// `fmt::format`, `Vec::reserve`. None when the user's frame allocated
/// itself or nothing is known.
fn entry_point(r: &Report, site: u32) -> Option<String> {
    let st = r.stacks.get(&site)?;
    let f = st.frames.get(st.first_user_frame.checked_sub(1)?)?;
    Some(short_function(f.function.as_deref()?)).filter(|s| !s.is_empty())
}

/// `alloc::collections::btree::map::BTreeMap<K,V,A>::insert` ->
/// `BTreeMap::insert`; `<alloc::string::String as core::fmt::Write>::write_str`
/// -> `String::write_str`: generic arguments and trait qualifications
/// dropped, the last two path segments kept.
fn short_function(name: &str) -> String {
    let plain = crate::symbolize::plain_name(name);
    // `Type as Trait::f` (a qualified self type): the type's path and `f`.
    let plain = match plain.split_once(" as ") {
        Some((ty, rest)) => format!("{ty}::{}", rest.rsplit("::").next().unwrap_or(rest)),
        None => plain,
    };
    let parts: Vec<&str> = plain.split("::").filter(|p| !p.is_empty()).collect();
    parts[parts.len().saturating_sub(2)..].join("::")
}

fn rows(o: &mut String, r: &Report, list: &[SiteRow], what: &str, depth: usize, by: By) {
    let lines = merged(r, list, by);
    for line in lines.iter().take(ROWS) {
        let stacks = if line.stacks > 1 {
            format!(" ({} stacks)", line.stacks)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {:>10} {:>8} {what}  {}{stacks}",
            bytes(line.bytes),
            line.count,
            line.label
        );
        if depth > 0 {
            stack_lines(o, r, line.site, depth);
        }
    }
    if lines.len() > ROWS {
        let _ = writeln!(o, "  … {} more (see --json)", lines.len() - ROWS);
    }
}

fn session(o: &mut String, r: &Report) {
    let s = &r.summary;
    let prog = r
        .header
        .as_ref()
        .map(|h| {
            format!(
                "{}{}",
                h.program,
                if h.target.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", h.target)
                }
            )
        })
        .unwrap_or_else(|| "(no header)".into());
    let _ = writeln!(
        o,
        "memscope-decode {}: {} — {} ({}), session {} of {}",
        r.tool.version,
        r.input.name,
        prog,
        bytes(r.input.bytes),
        r.session,
        r.sessions
    );
    let _ = writeln!(
        o,
        "TOTALS   {} allocs, {} deallocs, {} reallocs, {} failed; {} allocated, {} freed; {} threads, {} stacks",
        s.allocations,
        s.deallocations,
        s.reallocations,
        s.failed_allocations,
        bytes(s.bytes_allocated),
        bytes(s.bytes_freed),
        s.threads,
        s.distinct_stacks
    );
    let when = match r.peak.seconds {
        Some(sec) => format!("{sec:.6} s after the first allocation"),
        None => format!("at tick {}", r.peak.ts),
    };
    let _ = writeln!(
        o,
        "PEAK     {} in {} blocks {when} (exact; live set: {})",
        bytes(s.peak_bytes),
        s.peak_blocks,
        r.peak.method
    );
    rows(o, r, &r.peak.sites, "blocks", 0, By::Bytes);
    let _ = writeln!(
        o,
        "LEAKS    {} in {} blocks live at the end",
        bytes(s.leaked_bytes),
        s.leaked_blocks
    );
    rows(o, r, &r.leaks.sites, "blocks", 2, By::Bytes);
    let _ = writeln!(o, "HOT      by calls:");
    rows(o, r, &r.hot_sites.by_count, "calls ", 0, By::Count);
    let _ = writeln!(o, "         by bytes:");
    rows(o, r, &r.hot_sites.by_bytes, "calls ", 0, By::Bytes);
    let t = &r.temporaries;
    let pct = if s.allocations > 0 {
        100.0 * t.count as f64 / s.allocations as f64
    } else {
        0.0
    };
    let short = match (t.short_lived, t.short_lived_threshold_ns) {
        (Some(n), Some(ns)) => format!(
            "; {n} short-lived (< {}, {})",
            duration(ns),
            if t.lifetime_bound == "exact" {
                "exact lifetimes"
            } else {
                "lifetimes are lower bounds"
            }
        ),
        _ => "; short-lived: no clock in this trace".into(),
    };
    let _ = writeln!(
        o,
        "TEMP     {} temporaries ({pct:.1}% of allocs: freed with no allocation in between){short}",
        t.count
    );
    for row in t.sites.iter().take(3) {
        let _ = writeln!(o, "  {:>10} {:>8} temps   {}", "", row.count, row.location);
    }
    if r.errors.total > 0 {
        let kinds: Vec<String> = r
            .errors
            .counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(o, "ERRORS!! {}", kinds.join(", "));
        for e in r.errors.examples.iter().take(4) {
            let _ = writeln!(o, "  !! {}", e.message);
            let _ = writeln!(o, "     by:        {}", site_line(r, e.stack));
            if let Some(a) = e.alloc_stack {
                let _ = writeln!(o, "     allocated: {}", site_line(r, a));
            }
            if let Some(f) = e.first_free_stack {
                let _ = writeln!(o, "     first free: {}", site_line(r, f));
            }
        }
        if r.errors.unknown_frees_explained_by_loss && r.errors.counts.contains_key("unknown_free")
        {
            let _ = writeln!(o, "  (frees of unknown addresses are expected here: events were lost or the trace starts late)");
        }
    } else {
        let _ = writeln!(o, "ERRORS   none found");
    }
    let i = &r.integrity;
    if s.complete {
        let _ = writeln!(
            o,
            "COMPLETE every stream ended with matching totals; nothing lost or damaged"
        );
    } else {
        let _ = writeln!(
            o,
            "INCOMPLETE {} lost events; {}",
            s.lost_events,
            s.incomplete_reasons.join("; ")
        );
        for d in i.damage.iter().take(3) {
            let _ = writeln!(
                o,
                "  {}: byte {}: {} bytes skipped ({})",
                r.input.name, d.offset, d.len, d.reason
            );
        }
    }
    for f in &r.fragmentation {
        let g = &f.region;
        let _ = writeln!(
            o,
            "HEAP@{:<4} {:#x}+{}: {} used, {} free, largest gap {} (fragmentation {:.2})",
            f.at,
            g.start,
            bytes(g.len),
            bytes(g.used_bytes),
            bytes(g.free_bytes),
            bytes(g.largest_gap),
            g.fragmentation
        );
        let _ = writeln!(o, "  [{}]", heap_bar(g, 64));
    }
    if !r.growth.is_empty() {
        let g = &r.growth[0];
        let _ = writeln!(
            o,
            "GROWTH   {} reallocated up to {} times ({} → {} bytes; {} copied in all)",
            g.location,
            g.max_chain,
            g.max_chain_sizes.0,
            g.max_chain_sizes.1,
            bytes(g.copied_bytes)
        );
    }
    if r.cross_thread_frees.count > 0 {
        let _ = writeln!(
            o,
            "THREADS  {} frees ({}) on another thread than the allocation",
            r.cross_thread_frees.count,
            bytes(r.cross_thread_frees.bytes)
        );
    }
    let shown: Vec<_> = r
        .inferred
        .iter()
        .filter(|x| x.confidence >= 0.5)
        .take(4)
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            o,
            "INFERRED (not measured; confidence, evidence in --json):"
        );
        for x in shown {
            let loc = r
                .stacks
                .get(&x.site)
                .and_then(|s| s.frames.get(s.first_user_frame))
                .map(describe_frame)
                .unwrap_or_else(|| format!("site {}", x.site));
            let _ = writeln!(
                o,
                "  [inferred {:.0}%] {}: {}",
                x.confidence * 100.0,
                loc,
                x.claim
            );
            if let Some(sug) = &x.suggestion {
                let _ = writeln!(o, "       → {sug}");
            }
        }
    }
    for w in r.symbolization.warnings.iter().take(3) {
        let _ = writeln!(o, "note: {w}");
    }
}

/// `1500000` ns → `1.5 ms`.
fn duration(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 1_000_000 => format!("{:.3} µs", n as f64 / 1e3).replace(".000", ""),
        n if n < 1_000_000_000 => format!("{:.3} ms", n as f64 / 1e6).replace(".000", ""),
        n => format!("{:.3} s", n as f64 / 1e9),
    }
}

fn site_line(r: &Report, site: u32) -> String {
    match r.stacks.get(&site) {
        Some(st) => {
            let v: Vec<String> = st
                .frames
                .iter()
                .skip(st.first_user_frame)
                .take(3)
                .map(describe_frame)
                .collect();
            v.join(" <- ")
        }
        None if site == 0 => "<no stack recorded>".into(),
        None => format!("stack #{site}"),
    }
}

fn heap_bar(g: &crate::analysis::fragmentation::Fragmentation, width: u64) -> String {
    let mut cells = vec![0u64; width as usize];
    let per = g.len.div_ceil(width).max(1);
    for sp in g.map.iter().filter(|s| s.used) {
        let mut at = sp.offset;
        let end = sp.offset.saturating_add(sp.len);
        while at < end {
            let cell = (at / per) as usize;
            let cell_end = ((cell as u64) + 1).saturating_mul(per);
            let take = end.min(cell_end) - at;
            if let Some(c) = cells.get_mut(cell) {
                *c += take;
            }
            at += take;
        }
    }
    cells
        .iter()
        .map(|&u| match u {
            0 => '.',
            u if u * 2 < per => ':',
            u if u < per => '+',
            _ => '#',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_shortened_to_type_and_name() {
        for (full, short) in [
            (
                "alloc::collections::btree::map::BTreeMap<K,V,A>::insert",
                "BTreeMap::insert",
            ),
            ("alloc::fmt::format", "fmt::format"),
            ("<alloc::vec::Vec<u8>>::reserve", "Vec::reserve"),
            (
                "<alloc::string::String as core::fmt::Write>::write_str",
                "String::write_str",
            ),
            (
                "<alloc::vec::Vec<T> as core::iter::traits::collect::FromIterator<T>>::from_iter",
                "Vec::from_iter",
            ),
            ("main", "main"),
            ("<unbalanced", ""),
        ] {
            assert_eq!(short_function(full), short, "{full}");
        }
    }

    #[test]
    fn rows_with_one_label_are_summed_and_sorted_again() {
        let row = |site, bytes, count| SiteRow {
            site,
            location: String::new(),
            bytes,
            count,
        };
        let rows = [row(1, 100, 1), row(2, 60, 5), row(3, 50, 2), row(4, 10, 1)];
        let labels = ["a via X", "b", "a via X", "a via Y"];
        let lines = merge_labelled(labels.iter().map(|l| l.to_string()).zip(&rows), By::Bytes);
        let got: Vec<(&str, u64, u64, usize, u32)> = lines
            .iter()
            .map(|l| (l.label.as_str(), l.bytes, l.count, l.stacks, l.site))
            .collect();
        assert_eq!(
            got,
            [
                ("a via X", 150, 3, 2, 1),
                ("b", 60, 5, 1, 2),
                ("a via Y", 10, 1, 1, 4)
            ]
        );
        let by_count = merge_labelled(labels.iter().map(|l| l.to_string()).zip(&rows), By::Count);
        assert_eq!(by_count[0].label, "b");
    }
}
