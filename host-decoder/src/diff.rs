//! `diff old.bin new.bin`: what grew and what shrank, by call site.
//!
//! Sites are matched across the two traces by their first user frames
//! (function, file and line when symbolized; module offset otherwise), since
//! stack ids and addresses differ between runs.

use crate::pipeline::SessionRun;
use crate::report::describe_frame;
use crate::symbolize::{first_user_frame, Symbolizer};
use serde::Serialize;
use std::collections::BTreeMap;

/// One site's numbers in one trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SiteTotals {
    /// alloc + realloc calls.
    pub calls: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Bytes live at the peak.
    pub peak_bytes: u64,
    /// Bytes live at the end.
    pub leaked_bytes: u64,
}

/// A site in both traces.
#[derive(Clone, Debug, Serialize)]
pub struct DiffRow {
    /// The site, by its first user frames.
    pub site: String,
    /// In the old trace.
    pub old: SiteTotals,
    /// In the new trace.
    pub new: SiteTotals,
}

/// The comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    /// Schema version of this JSON.
    pub schema_version: u32,
    /// Totals, old.
    pub old: SiteTotals,
    /// Totals, new.
    pub new: SiteTotals,
    /// Sites whose bytes allocated, peak or leak grew, most first.
    pub grew: Vec<DiffRow>,
    /// Sites that shrank, most first.
    pub shrank: Vec<DiffRow>,
}

fn frame_key(f: &crate::symbolize::FrameInfo) -> String {
    match (&f.function, &f.module) {
        (Some(_), _) => describe_frame(f),
        (None, Some(m)) => m.clone(),
        (None, None) => format!("{:#x}", f.addr),
    }
}

/// Every site of `s`, keyed by its first three user frames.
pub fn site_totals(s: &SessionRun, sym: &mut Symbolizer) -> BTreeMap<String, SiteTotals> {
    let mut out: BTreeMap<String, SiteTotals> = BTreeMap::new();
    let mut key_of: BTreeMap<u32, String> = BTreeMap::new();
    let mut key = |site: u32, sym: &mut Symbolizer| -> String {
        key_of
            .entry(site)
            .or_insert_with(|| {
                if site == 0 {
                    return "<no stack recorded>".into();
                }
                let frames = sym.stack(s.session.stacks.get(site));
                let first = first_user_frame(&frames);
                frames
                    .iter()
                    .skip(first)
                    .take(3)
                    .map(frame_key)
                    .collect::<Vec<_>>()
                    .join(" <- ")
            })
            .clone()
    };
    for (site, st) in s.analyses.sites.iter() {
        if st.allocs + st.reallocs == 0 && st.live_blocks == 0 {
            continue;
        }
        let e = out.entry(key(site, sym)).or_default();
        e.calls += st.allocs + st.reallocs;
        e.bytes += st.bytes;
        e.leaked_bytes += st.live_bytes;
    }
    if let Some(p) = &s.peak {
        for &(site, b, _) in &p.sites {
            out.entry(key(site, sym)).or_default().peak_bytes += b;
        }
    }
    out
}

/// Compares two traces' last sessions.
pub fn diff(
    old: &BTreeMap<String, SiteTotals>,
    new: &BTreeMap<String, SiteTotals>,
    old_peak: u64,
    new_peak: u64,
    top: usize,
) -> Diff {
    let sum = |m: &BTreeMap<String, SiteTotals>, peak: u64| {
        let mut t = m.values().fold(SiteTotals::default(), |mut a, s| {
            a.calls += s.calls;
            a.bytes += s.bytes;
            a.leaked_bytes += s.leaked_bytes;
            a
        });
        t.peak_bytes = peak;
        t
    };
    let mut rows: Vec<(i128, DiffRow)> = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        let o = old.get(k).copied().unwrap_or_default();
        let n = new.get(k).copied().unwrap_or_default();
        if o == n {
            continue;
        }
        let score = (i128::from(n.bytes) - i128::from(o.bytes))
            + (i128::from(n.peak_bytes) - i128::from(o.peak_bytes))
            + (i128::from(n.leaked_bytes) - i128::from(o.leaked_bytes));
        let score = if score == 0 {
            i128::from(n.calls) - i128::from(o.calls)
        } else {
            score
        };
        rows.push((
            score,
            DiffRow {
                site: k.clone(),
                old: o,
                new: n,
            },
        ));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.site.cmp(&b.1.site)));
    let grew: Vec<DiffRow> = rows
        .iter()
        .filter(|r| r.0 > 0)
        .take(top)
        .map(|r| r.1.clone())
        .collect();
    let shrank: Vec<DiffRow> = rows
        .iter()
        .rev()
        .filter(|r| r.0 < 0)
        .take(top)
        .map(|r| r.1.clone())
        .collect();
    Diff {
        schema_version: crate::report::SCHEMA_VERSION,
        old: sum(old, old_peak),
        new: sum(new, new_peak),
        grew,
        shrank,
    }
}

/// The comparison for a terminal.
pub fn render(d: &Diff, old_name: &str, new_name: &str) -> String {
    use crate::render::bytes;
    use std::fmt::Write as _;
    let mut o = String::new();
    let delta = |a: u64, b: u64| {
        let d = i128::from(b) - i128::from(a);
        if d >= 0 {
            format!("+{}", bytes(d as u64))
        } else {
            format!("-{}", bytes((-d) as u64))
        }
    };
    let _ = writeln!(o, "diff {old_name} → {new_name}");
    let _ = writeln!(
        o,
        "  calls      {:>12} → {:<12} ({:+})",
        d.old.calls,
        d.new.calls,
        i128::from(d.new.calls) - i128::from(d.old.calls)
    );
    let _ = writeln!(
        o,
        "  allocated  {:>12} → {:<12} ({})",
        bytes(d.old.bytes),
        bytes(d.new.bytes),
        delta(d.old.bytes, d.new.bytes)
    );
    let _ = writeln!(
        o,
        "  peak       {:>12} → {:<12} ({})",
        bytes(d.old.peak_bytes),
        bytes(d.new.peak_bytes),
        delta(d.old.peak_bytes, d.new.peak_bytes)
    );
    let _ = writeln!(
        o,
        "  leaked     {:>12} → {:<12} ({})",
        bytes(d.old.leaked_bytes),
        bytes(d.new.leaked_bytes),
        delta(d.old.leaked_bytes, d.new.leaked_bytes)
    );
    for (title, list) in [("GREW", &d.grew), ("SHRANK", &d.shrank)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(o, "{title}");
        for r in list.iter().take(10) {
            let _ = writeln!(
                o,
                "  allocated {} peak {} leaked {} calls {:+}  {}",
                delta(r.old.bytes, r.new.bytes),
                delta(r.old.peak_bytes, r.new.peak_bytes),
                delta(r.old.leaked_bytes, r.new.leaked_bytes),
                i128::from(r.new.calls) - i128::from(r.old.calls),
                r.site
            );
        }
    }
    if d.grew.is_empty() && d.shrank.is_empty() {
        let _ = writeln!(o, "no site changed");
    }
    o
}
