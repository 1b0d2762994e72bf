//! Peak: the most bytes live at once, exactly, and the moment it happened.
//!
//! The first pass finds the moment (the merged-stream sequence number of the
//! event that first reached the maximum). The live set at that moment is
//! collected either by a second pass that stops there (files), or, for a
//! stream that can be read only once, by copying the per-site live counters
//! just before the first decrease after a new maximum: between a new maximum
//! and the next decrease nothing changes the live set but more growth, which
//! would be a newer maximum.

/// Current and peak live bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peak {
    /// Live bytes now.
    pub current_bytes: u64,
    /// Live blocks now.
    pub current_blocks: u64,
    /// Most live bytes.
    pub peak_bytes: u64,
    /// Live blocks at that moment.
    pub peak_blocks: u64,
    /// Timestamp of the event that reached it.
    pub peak_ts: u64,
    /// Sequence number of that event in the merged stream.
    pub peak_seq: Option<u64>,
    /// Most live blocks at any moment.
    pub max_blocks: u64,
    /// A new maximum was reached and not yet captured (incremental mode).
    pub pending_capture: bool,
}

impl Peak {
    /// `bytes` became live in one new block (`blocks` = 1) or a resize (0).
    #[inline]
    pub fn grow(&mut self, bytes: u64, blocks: u64, seq: u64, ts: u64) {
        self.current_bytes = self.current_bytes.saturating_add(bytes);
        self.current_blocks += blocks;
        self.max_blocks = self.max_blocks.max(self.current_blocks);
        if self.current_bytes > self.peak_bytes || self.peak_seq.is_none() && bytes > 0 {
            self.peak_bytes = self.current_bytes;
            self.peak_blocks = self.current_blocks;
            self.peak_seq = Some(seq);
            self.peak_ts = ts;
            self.pending_capture = true;
        }
    }

    /// `bytes` in `blocks` blocks stopped being live.
    #[inline]
    pub fn shrink(&mut self, bytes: u64, blocks: u64) {
        self.current_bytes = self.current_bytes.saturating_sub(bytes);
        self.current_blocks = self.current_blocks.saturating_sub(blocks);
    }
}

use crate::records::{Event, Op};
use rustc_hash::FxHashMap;

/// The second pass over a file: replays only what the live set needs
/// (address → site and size), up to the peak's sequence number, then the
/// per-site live counters are the live set at the peak. Block sites follow
/// the same rule as the first pass (the site of the call that produced the
/// block: alloc, or the realloc that moved or resized it).
#[derive(Default)]
pub struct LiveReplay {
    /// Live blocks: address → (site, size).
    pub live: FxHashMap<u64, (u32, u64)>,
    sites: Vec<(u64, u64)>,
}

impl LiveReplay {
    #[inline]
    fn site(&mut self, site: u32) -> &mut (u64, u64) {
        let i = site as usize;
        if i >= self.sites.len() {
            self.sites.resize(i + 1, (0, 0));
        }
        &mut self.sites[i]
    }

    #[inline]
    fn add(&mut self, addr: u64, site: u32, size: u64) {
        if let Some((s, b)) = self.live.insert(addr, (site, size)) {
            self.sub(s, b);
        }
        let e = self.site(site);
        e.0 = e.0.saturating_add(size);
        e.1 += 1;
    }

    #[inline]
    fn sub(&mut self, site: u32, size: u64) {
        let e = self.site(site);
        e.0 = e.0.saturating_sub(size);
        e.1 = e.1.saturating_sub(1);
    }

    #[inline]
    fn remove(&mut self, addr: u64) {
        if let Some((s, b)) = self.live.remove(&addr) {
            self.sub(s, b);
        }
    }

    /// Applies one event of the merged stream.
    #[inline]
    pub fn apply(&mut self, ev: &Event) {
        match ev.op {
            Op::Alloc { addr, size, .. } => self.add(addr, ev.stack, size),
            Op::Dealloc { addr, .. } => self.remove(addr),
            Op::ReallocRelease { old_addr, .. } => self.remove(old_addr),
            Op::Realloc {
                new_addr, new_size, ..
            } => self.add(new_addr, ev.stack, new_size),
            _ => {}
        }
    }

    /// Sites with live blocks: `(site, bytes, blocks)`.
    pub fn sites(&self) -> Vec<(u32, u64, u64)> {
        self.sites
            .iter()
            .enumerate()
            .filter(|(_, s)| s.1 > 0)
            .map(|(i, s)| (i as u32, s.0, s.1))
            .collect()
    }
}
