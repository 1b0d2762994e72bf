//! Inference: what the trace does not say but its evidence suggests. Every
//! item is marked `"source": "inferred"`, with a confidence in [0, 1] and the
//! evidence used; where the evidence is missing nothing is claimed (no borrow
//! counts, no element types the symbols do not name).
//!
//! - The container behind an allocation site, from the symbolized frames
//!   between the allocator and the user's code (`alloc::vec::Vec::push` → a
//!   Vec), and, with lower confidence, from behaviour alone (resized with
//!   realloc → a growable buffer).
//! - Growth advice: a block reallocated many times on its way to its final
//!   size could have been reserved once.
//! - Ownership across threads: blocks freed on another thread than the one
//!   that allocated them.

use crate::analysis::sites::SiteStats;
use crate::symbolize::{is_allocator_frame, plain_name, FrameInfo};

/// One inferred statement.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Inferred {
    /// Always "inferred".
    pub source: &'static str,
    /// "container", "growth_advice" or "ownership".
    pub kind: &'static str,
    /// The site it is about.
    pub site: u32,
    /// The statement.
    pub claim: String,
    /// 0..1.
    pub confidence: f64,
    /// What it rests on.
    pub evidence: Vec<String>,
    /// What to do about it, when there is something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

fn item(
    kind: &'static str,
    site: u32,
    claim: String,
    confidence: f64,
    evidence: Vec<String>,
) -> Inferred {
    Inferred {
        source: "inferred",
        kind,
        site,
        claim,
        confidence,
        evidence,
        suggestion: None,
    }
}

/// Known containers: (name-prefix after generics are removed, container).
const CONTAINERS: &[(&str, &str)] = &[
    ("alloc::string::String", "String"),
    ("alloc::str::", "String"),
    ("alloc::fmt::format", "String"),
    ("alloc::vec::Vec", "Vec"),
    ("alloc::collections::vec_deque", "VecDeque"),
    ("alloc::collections::btree", "BTreeMap/BTreeSet node"),
    ("alloc::collections::binary_heap", "BinaryHeap"),
    ("alloc::boxed::Box", "Box"),
    ("alloc::rc::Rc", "Rc"),
    ("alloc::rc::", "Rc"),
    ("alloc::sync::Arc", "Arc"),
    ("alloc::sync::", "Arc"),
    ("hashbrown::", "HashMap/HashSet table"),
    ("std::collections::hash", "HashMap/HashSet table"),
];

/// The type with its generic arguments as the (v0-demangled) name spells it,
/// e.g. `Vec<u32>`; `None` when the name carries only placeholders.
fn spelled_type(function: &str, container: &str) -> Option<String> {
    let short = container.split('/').next()?.split(' ').next()?;
    let at = function.find(&format!("{short}<"))?;
    let rest = &function[at..];
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let t = &rest[..=i];
                    let args = &t[short.len() + 1..t.len() - 1];
                    let placeholder = args.split(',').all(|a| {
                        a.trim().len() <= 1 || a.trim() == "A" || a.trim().starts_with('\'')
                    });
                    return (!placeholder).then(|| t.to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

/// What can be inferred about one site.
pub fn infer_site(
    site: u32,
    stats: &SiteStats,
    frames: &[FrameInfo],
    growth_threshold: u32,
) -> Vec<Inferred> {
    let mut out = Vec::new();
    let mut container = None;
    // Only the allocator's own frames (the innermost run) say which
    // container allocated; a container named further out may just be the
    // caller's variable.
    let mut direct = true;
    for f in frames {
        let Some(name) = &f.function else { continue };
        let internal = is_allocator_frame(name);
        let p = plain_name(name);
        if let Some((_, c)) = CONTAINERS
            .iter()
            .find(|(pre, _)| p.starts_with(pre) || p.contains(&format!(" as {pre}")))
        {
            container = Some((*c, name.clone(), direct));
            if *c != "Vec" {
                // Vec is the buffer under String, VecDeque…: keep looking for those.
                break;
            }
        }
        if !internal {
            direct = false;
            if container.is_some() {
                break;
            }
        }
    }
    if let Some((c, name, direct)) = container {
        let typed = spelled_type(&name, c);
        let claim = match &typed {
            Some(t) => format!("allocations here back a {t}"),
            None => format!("allocations here back a {c}"),
        };
        let mut ev = vec![format!("frame `{name}`")];
        if !direct {
            ev.push("the frame is in the caller's code, not the allocator's".into());
        }
        out.push(item(
            "container",
            site,
            claim,
            if direct { 0.9 } else { 0.6 },
            ev,
        ));
    } else if stats.reallocs > 0 || stats.max_chain > 0 {
        out.push(item(
            "container",
            site,
            "a growable buffer (Vec, String, VecDeque or similar)".into(),
            0.35,
            vec![format!(
                "blocks from this site were resized with realloc ({} reallocs); no symbolized frame names the container",
                stats.chain_reallocs.max(stats.reallocs)
            )],
        ));
    }
    if stats.max_chain >= growth_threshold {
        let (first, last) = stats.max_chain_sizes;
        let mut g = item(
            "growth_advice",
            site,
            format!(
                "a block from here was reallocated {} times, growing from {first} to {last} bytes",
                stats.max_chain
            ),
            0.7,
            vec![
                format!(
                    "{} realloc chains, {} reallocs in all",
                    stats.chains, stats.chain_reallocs
                ),
                format!("{} moves copied {} bytes", stats.moved, stats.copied_bytes),
            ],
        );
        g.suggestion = Some(format!(
            "reserve the final size up front (Vec::with_capacity / String::with_capacity / reserve for {last} bytes) to avoid {} reallocations",
            stats.max_chain
        ));
        out.push(g);
    }
    let freed = stats.freed.max(1);
    if stats.cross_thread_frees > 0 && stats.cross_thread_frees * 2 >= freed {
        out.push(item(
            "ownership",
            site,
            "ownership of these blocks moves to another thread (sent through a channel, moved into a spawned thread, or the last Arc dropped there)".into(),
            0.5,
            vec![format!(
                "{} of {} frees of blocks from here ran on another thread than the allocation",
                stats.cross_thread_frees, stats.freed
            )],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: &str) -> FrameInfo {
        FrameInfo {
            addr: 0,
            function: Some(f.to_owned()),
            file: None,
            line: None,
            inlined: false,
            module: None,
        }
    }

    #[test]
    fn container_from_the_allocator_frames() {
        let frames = [
            frame("__rust_alloc"),
            frame("alloc::raw_vec::RawVecInner<A>::finish_grow"),
            frame("<alloc::vec::Vec<u32>>::push"),
            frame("app::collect"),
        ];
        let v = infer_site(3, &SiteStats::default(), &frames, 4);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].source, "inferred");
        assert_eq!(v[0].claim, "allocations here back a Vec<u32>");
        assert!(v[0].confidence >= 0.9);
        // String is built on Vec: the String frame wins.
        let frames = [
            frame("alloc::raw_vec::RawVecInner<A>::finish_grow"),
            frame("alloc::vec::Vec<T,A>::reserve"),
            frame("alloc::string::String::push_str"),
            frame("app::render"),
        ];
        let v = infer_site(3, &SiteStats::default(), &frames, 4);
        assert_eq!(v[0].claim, "allocations here back a String");
    }

    #[test]
    fn nothing_inferred_without_evidence() {
        let v = infer_site(1, &SiteStats::default(), &[frame("app::main")], 4);
        assert!(v.is_empty());
    }
}
