//! Fragmentation of a known heap region (firmware heaps announce theirs):
//! free bytes against the largest free gap, and the map of blocks and gaps.
//!
//! Blocks are counted with their requested size; the allocator's own headers
//! and alignment padding show up as gaps, so a heap always looks a little
//! more fragmented here than it is.

/// Most spans kept in a map.
pub const MAX_SPANS: usize = 512;

/// One stretch of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    /// Offset from the region's start.
    pub offset: u64,
    /// Length.
    pub len: u64,
    /// Whether a live block covers it.
    pub used: bool,
}

/// The region at one moment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fragmentation {
    /// Region start.
    pub start: u64,
    /// Region length.
    pub len: u64,
    /// Bytes in live blocks.
    pub used_bytes: u64,
    /// Bytes not in live blocks.
    pub free_bytes: u64,
    /// The largest stretch not in a live block: the largest allocation that
    /// could still succeed, at most.
    pub largest_gap: u64,
    /// `1 - largest_gap / free_bytes` (0 = one free stretch, toward 1 = free
    /// space in crumbs).
    pub fragmentation: f64,
    /// Live blocks in the region.
    pub blocks: u64,
    /// Free stretches.
    pub gaps: u64,
    /// The first [`MAX_SPANS`] spans, in address order.
    pub map: Vec<Span>,
    /// Spans not in `map`.
    pub map_truncated: u64,
}

/// Computes the region's state from the live blocks `(addr, size)`.
pub fn analyse(start: u64, len: u64, live: impl Iterator<Item = (u64, u64)>) -> Fragmentation {
    let end = start.saturating_add(len);
    let mut blocks: Vec<(u64, u64)> = live
        .filter(|&(a, s)| a >= start && a < end && s > 0)
        .map(|(a, s)| (a, a.saturating_add(s).min(end)))
        .collect();
    blocks.sort_unstable();
    let mut f = Fragmentation {
        start,
        len,
        used_bytes: 0,
        free_bytes: 0,
        largest_gap: 0,
        fragmentation: 0.0,
        blocks: blocks.len() as u64,
        gaps: 0,
        map: Vec::new(),
        map_truncated: 0,
    };
    let span = |f: &mut Fragmentation, from: u64, to: u64, used: bool| {
        if to <= from {
            return;
        }
        if used {
            f.used_bytes += to - from;
        } else {
            f.free_bytes += to - from;
            f.gaps += 1;
            f.largest_gap = f.largest_gap.max(to - from);
        }
        if f.map.len() < MAX_SPANS {
            f.map.push(Span {
                offset: from - start,
                len: to - from,
                used,
            });
        } else {
            f.map_truncated += 1;
        }
    };
    let mut at = start;
    for (a, e) in blocks {
        // Overlapping blocks (a damaged trace) are clipped, not double counted.
        let a = a.max(at);
        span(&mut f, at, a, false);
        span(&mut f, a, e, true);
        at = at.max(e);
    }
    span(&mut f, at, end, false);
    if f.free_bytes > 0 {
        f.fragmentation = 1.0 - f.largest_gap as f64 / f.free_bytes as f64;
    }
    f
}
