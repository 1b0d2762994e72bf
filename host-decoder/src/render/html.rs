//! The HTML dashboard: one self-contained file (its script and style are
//! embedded; it makes no network request and works opened from disk).
//!
//! The data rides along as JSON in a `<script type="application/json">`
//! element with every `<`, `>` and `&` written as a `\u00XX` escape, so no
//! name from a trace (`</script>` in a scope name, say) can end the element;
//! the page's script puts names into the page with `textContent` only.
//!
//! To stay responsive with 10^5 call sites the flamegraph is aggregated
//! here into call trees (top-down, and bottom-up from the allocating
//! frames) whose nodes below 1/100000 (bottom-up: 1/10000) of every weight
//! fold into their parent, and the site table carries the top sites only.

use crate::render::profile::{Profile, SiteProfile, NO_STACK_RECORDED};
use crate::report::{describe_frame, Report};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};

const SCRIPT: &str = include_str!("assets/report.js");
const STYLE: &str = include_str!("assets/report.css");

/// Sites listed in the table (the rest are counted).
pub const MAX_TABLE_SITES: usize = 5000;

/// The call tree, column-wise: node `i` has parent `parent[i]` (node 0 is
/// the root) and frame label `name[i]`; `alloc`, `peak`, `leak` are bytes
/// and `calls` allocation calls, each including the node's callees.
#[derive(Serialize, Default)]
struct Tree {
    parent: Vec<u32>,
    name: Vec<u32>,
    alloc: Vec<u64>,
    peak: Vec<u64>,
    leak: Vec<u64>,
    calls: Vec<u64>,
}

/// A site row: `[site, calls, bytes, peak, leaked, most live, [frame labels,
/// innermost first], blocks at the peak, blocks leaked, blocks freed, sum of
/// the freed blocks' lifetimes (ticks)]`.
type SiteRow = (u32, u64, u64, u64, u64, u64, Vec<u32>, u64, u64, u64, u64);

#[derive(Serialize)]
struct Data<'a> {
    report: &'a Report,
    /// Frame labels, shared by the tree and the site table.
    frames: Vec<String>,
    tree: Tree,
    /// The same weights with the allocating frames at the top.
    tree_bottom_up: Tree,
    /// See [`SiteRow`].
    sites: Vec<SiteRow>,
    /// Sites with allocations in all.
    sites_total: usize,
    /// Whether `peak` numbers are known per site.
    peak_known: bool,
}

impl Tree {
    /// Adds a node with no weight yet; returns its index.
    fn push(&mut self, parent: u32, name: u32) -> u32 {
        let n = self.parent.len() as u32;
        self.parent.push(parent);
        self.name.push(name);
        self.alloc.push(0);
        self.peak.push(0);
        self.leak.push(0);
        self.calls.push(0);
        n
    }
}

struct Labels {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Labels {
    fn id(&mut self, s: String) -> u32 {
        if let Some(&i) = self.index.get(&s) {
            return i;
        }
        let i = self.table.len() as u32;
        self.index.insert(s.clone(), i);
        self.table.push(s);
        i
    }
}

fn user_labels(s: &SiteProfile, labels: &mut Labels) -> Vec<u32> {
    if s.frames.is_empty() {
        return vec![labels.id(NO_STACK_RECORDED.to_owned())];
    }
    s.user_frames()
        .iter()
        .map(|f| labels.id(describe_frame(f)))
        .collect()
}

/// Which way a call tree grows from its root.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    /// Callers first: `main` at the root, allocating frames at the leaves.
    TopDown,
    /// Allocating frames first (heaptrack's bottom-up view): the first user
    /// frame at the root's children, its callers below.
    BottomUp,
}

/// The call tree of every site. Nodes whose every weight is at most
/// `1/fold` of the total stay folded into their parent: never drawn
/// unless zoomed in `fold / 2000` times (at 1000 px, half a pixel each).
fn build_tree(
    p: &Profile,
    stacks: &[Vec<u32>],
    labels: &mut Labels,
    direction: Direction,
    fold: u64,
) -> Tree {
    let mut t = Tree::default();
    let root = labels.id("all".to_owned());
    t.push(0, root);
    let mut kids: HashMap<(u32, u32), u32> = HashMap::new();
    let total = |f: fn(&SiteProfile) -> u64| p.sites.iter().map(f).fold(0u64, u64::saturating_add);
    let min = [
        total(|s| s.bytes) / fold,
        total(|s| s.peak_bytes) / fold,
        total(|s| s.leaked_bytes) / fold,
        total(|s| s.allocs + s.reallocs) / fold,
    ];
    // Visit big sites first so small ones mostly fold into existing nodes.
    let mut order: Vec<usize> = (0..p.sites.len()).collect();
    order.sort_by_key(|&i| {
        let s = &p.sites[i];
        std::cmp::Reverse(s.bytes.max(s.peak_bytes).max(s.leaked_bytes))
    });
    for i in order {
        let (s, stack) = (&p.sites[i], &stacks[i]);
        let w = [s.bytes, s.peak_bytes, s.leaked_bytes, s.allocs + s.reallocs];
        let mut node = 0u32;
        let add = |t: &mut Tree, n: u32| {
            let n = n as usize;
            t.alloc[n] = t.alloc[n].saturating_add(w[0]);
            t.peak[n] = t.peak[n].saturating_add(w[1]);
            t.leak[n] = t.leak[n].saturating_add(w[2]);
            t.calls[n] = t.calls[n].saturating_add(w[3]);
        };
        add(&mut t, 0);
        let frames: Box<dyn Iterator<Item = &u32>> = match direction {
            Direction::TopDown => Box::new(stack.iter().rev()),
            Direction::BottomUp => Box::new(stack.iter()),
        };
        for &label in frames {
            let next = match kids.get(&(node, label)) {
                Some(&n) => n,
                None => {
                    // Too small to ever be drawn: it stays in its parent.
                    if w.iter().zip(min).all(|(&w, m)| w <= m) {
                        break;
                    }
                    let n = t.push(node, label);
                    kids.insert((node, label), n);
                    n
                }
            };
            add(&mut t, next);
            node = next;
        }
    }
    t
}

/// The embedded JSON, with `<`, `>` and `&` escaped.
fn data_json(report: &Report, p: &Profile) -> io::Result<String> {
    let mut labels = Labels {
        table: Vec::new(),
        index: HashMap::new(),
    };
    let stacks: Vec<Vec<u32>> = p
        .sites
        .iter()
        .map(|s| user_labels(s, &mut labels))
        .collect();
    let tree = build_tree(p, &stacks, &mut labels, Direction::TopDown, 100_000);
    // Bottom-up trees fan out at the root (one child per allocating frame),
    // so they fold ten times sooner to keep the page small.
    let tree_bottom_up = build_tree(p, &stacks, &mut labels, Direction::BottomUp, 10_000);
    let mut order: Vec<usize> = (0..p.sites.len()).collect();
    order.sort_by_key(|&i| {
        let s = &p.sites[i];
        std::cmp::Reverse((s.bytes.max(s.peak_bytes).max(s.leaked_bytes), s.allocs))
    });
    order.truncate(MAX_TABLE_SITES);
    let sites = order
        .into_iter()
        .map(|i| {
            let s = &p.sites[i];
            (
                s.site,
                s.allocs + s.reallocs,
                s.bytes,
                s.peak_bytes,
                s.leaked_bytes,
                s.max_live_bytes,
                stacks[i].clone(),
                s.peak_blocks,
                s.leaked_blocks,
                s.freed,
                s.lifetime_sum,
            )
        })
        .collect();
    let data = Data {
        report,
        frames: labels.table,
        tree,
        tree_bottom_up,
        sites,
        sites_total: p.sites.len(),
        peak_known: p.peak_known,
    };
    let json = serde_json::to_string(&data).map_err(io::Error::other)?;
    Ok(escape_for_script(&json))
}

/// JSON inside `<script>`: `<`, `>`, `&` only occur inside JSON strings, where
/// `\u003c`, `\u003e`, `\u0026` mean the same characters.
pub fn escape_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the dashboard.
pub fn write(report: &Report, p: &Profile, mut out: impl Write) -> io::Result<()> {
    let data = data_json(report, p)?;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>memscope report</title>\n<style>{STYLE}</style></head>\n<body>\n\
         <noscript>This report draws itself with JavaScript; the same numbers are in memscope-decode's --json output.</noscript>\n\
         <div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"memscope-data\">{data}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n"
    )?;
    out.flush()
}
