//! Groups a flat `perf report --sort comm,symbol` listing into the parts of
//! memscope's cost the issue asks about. Symbol names decide the group, so
//! code inlined into memscope's `GlobalAlloc` methods (the clock read, the
//! varint encode, the ring push) counts as "memscope record path".

/// One line: "share of samples: group x %, ...".
pub fn summarize(report: &str) -> String {
    const GROUPS: [&str; 7] = [
        "memscope record path (its GlobalAlloc entry points __rust_alloc/__rust_dealloc and what is inlined there: clock read, stats, encode, ring push)",
        "memscope stack walk and interning",
        "memscope writer thread",
        "system allocator (glibc malloc/free/realloc)",
        "memcpy/memmove (realloc growth)",
        "kernel",
        "the workload itself and other",
    ];
    let mut sums = [0f64; 7];
    for line in report.lines() {
        let mut parts = line.split_whitespace();
        let Some(pct) = parts
            .next()
            .and_then(|p| p.strip_suffix('%'))
            .and_then(|p| p.parse::<f64>().ok())
        else {
            continue;
        };
        let comm = parts.next().unwrap_or("");
        let kind = parts.next().unwrap_or("");
        let sym: String = parts.collect::<Vec<_>>().join(" ");
        let g = if comm.starts_with("memscope-writ") {
            2
        } else if kind == "[k]" {
            5
        } else if sym.contains("stacks") || sym.contains("walk") {
            1
        } else if is_memscope_entry(&sym) {
            0
        } else if sym.contains("memcpy") || sym.contains("memmove") {
            4
        } else if [
            "malloc",
            "free",
            "realloc",
            "_int_",
            "tcache",
            "sysmalloc",
            "mremap",
            "unlink_chunk",
            "consolidate",
        ]
        .iter()
        .any(|p| sym.contains(p))
        {
            3
        } else {
            6
        };
        sums[g] += pct;
    }
    let parts: Vec<String> = GROUPS
        .iter()
        .zip(sums)
        .filter(|(_, v)| *v > 0.0)
        .map(|(g, v)| format!("{g} {v:.1} %"))
        .collect();
    format!("Grouped (of the symbols listed): {}.", parts.join("; "))
}

/// memscope's own code on the workload thread: its symbols, and the
/// allocator entry points its `GlobalAlloc` methods are inlined into.
fn is_memscope_entry(sym: &str) -> bool {
    sym.contains("memscope")
        || sym.contains("__rust_alloc")
        || sym.contains("__rust_dealloc")
        || sym.contains("__rust_realloc")
}

/// How much of all samples sits on the clock read inside memscope's record
/// path: for each memscope symbol of the workload thread, the share of its
/// annotated samples on `rdtsc`/`lfence` and on the instruction right after
/// each (sampling skid charges a slow instruction's cost to the next one),
/// times the symbol's share of all samples.
pub fn clock_share(report: &str, annotate: impl Fn(&str) -> String) -> String {
    let mut total = 0.0;
    let mut parts = Vec::new();
    for line in report.lines() {
        let mut it = line.split_whitespace();
        let Some(pct) = it
            .next()
            .and_then(|p| p.strip_suffix('%'))
            .and_then(|p| p.parse::<f64>().ok())
        else {
            continue;
        };
        let comm = it.next().unwrap_or("");
        let _kind = it.next();
        let sym: String = it.collect::<Vec<_>>().join(" ");
        if comm.starts_with("memscope-writ") || !is_memscope_entry(&sym) {
            continue;
        }
        let text = annotate(&sym);
        // Assembly lines: "  12.34 :   1e83e:  rdtsc".
        let asm: Vec<(f64, &str)> = text
            .lines()
            .filter_map(|l| {
                let (p, rest) = l.split_once(':')?;
                let p: f64 = p.trim().parse().ok()?;
                let (_addr, ins) = rest.split_once(':')?;
                Some((p, ins.trim()))
            })
            .collect();
        let mut share = 0.0;
        for (i, (p, ins)) in asm.iter().enumerate() {
            if ins.starts_with("rdtsc") || ins.starts_with("lfence") {
                share += p;
                if let Some((next, n_ins)) = asm.get(i + 1) {
                    if !(n_ins.starts_with("rdtsc") || n_ins.starts_with("lfence")) {
                        share += next;
                    }
                }
            }
        }
        if share > 0.0 {
            total += pct * share / 100.0;
            parts.push(format!("{share:.0} % of {sym}"));
        }
    }
    if parts.is_empty() {
        return "Clock read: no rdtsc/lfence samples found by perf annotate.".into();
    }
    format!(
        "Clock read (rdtsc/lfence and the instruction after each, by perf annotate): {total:.1} % of all samples ({}).",
        parts.join(", ")
    )
}
