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
        self.current_bytes += bytes;
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
