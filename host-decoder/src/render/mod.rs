//! Renderers: a finished [`Report`](crate::report::Report) for a person
//! (terminal) or a program (JSON).

pub mod chrome;
pub mod dhat;
pub mod exports;
pub mod folded;
pub mod html;
pub mod json;
pub mod pprof;
pub mod profile;
pub mod terminal;

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}
