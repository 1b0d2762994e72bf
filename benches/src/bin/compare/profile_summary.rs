//! Groups a flat `perf report --sort comm,symbol` listing into the parts of
//! memscope's cost the issue asks about. Symbol names decide the group, so
//! code inlined into memscope's `GlobalAlloc` methods (the clock read, the
//! varint encode, the ring push) counts as "memscope record path".

/// One line: "share of samples: group x %, ...".
pub fn summarize(report: &str) -> String {
    const GROUPS: [&str; 7] = [
        "memscope record path (clock read, encode, ring push, stats; inlined)",
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
        let Some(pct) = parts.next().and_then(|p| p.strip_suffix('%')).and_then(|p| p.parse::<f64>().ok()) else {
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
        } else if sym.contains("memscope") {
            0
        } else if sym.contains("memcpy") || sym.contains("memmove") {
            4
        } else if ["malloc", "free", "realloc", "_int_", "tcache", "sysmalloc", "mremap", "unlink_chunk", "consolidate"]
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
