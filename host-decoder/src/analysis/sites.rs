//! Per call site counters, indexed by stack id. Sites are the unit every
//! other view groups by: leaks, the live set at the peak, hottest sites,
//! temporaries, growth chains.

/// Counters of one call site (one distinct stack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteStats {
    /// Successful alloc calls.
    pub allocs: u64,
    /// Failed alloc and realloc calls.
    pub failed: u64,
    /// Bytes of successful allocs plus the growth of reallocs made here.
    pub bytes: u64,
    /// Successful realloc calls made here.
    pub reallocs: u64,
    /// Blocks produced here and freed.
    pub freed: u64,
    /// Live now.
    pub live_bytes: u64,
    /// Live now.
    pub live_blocks: u64,
    /// Most bytes live at once from here (DHAT's `mb`).
    pub max_live_bytes: u64,
    /// Blocks live at that moment (DHAT's `mbk`).
    pub max_live_blocks: u64,
    /// Freed with no allocation in between on their thread.
    pub temporaries: u64,
    /// Freed within the short-lived threshold.
    pub short_lived: u64,
    /// Sum of lifetimes of freed blocks (ticks).
    pub lifetime_sum: u64,
    /// Freed on a thread other than the allocating one.
    pub cross_thread_frees: u64,
    /// Smallest and largest requested size.
    pub min_size: u64,
    /// Largest requested size.
    pub max_size: u64,
    /// As the first site of realloc chains: chains that were reallocated at least once and ended.
    pub chains: u64,
    /// Reallocs in those chains.
    pub chain_reallocs: u64,
    /// Longest chain (reallocs).
    pub max_chain: u32,
    /// First and last size of the longest chain.
    pub max_chain_sizes: (u64, u64),
    /// Reallocs of chains from here that moved the block.
    pub moved: u64,
    /// Bytes those moves copied (the smaller of old and new size).
    pub copied_bytes: u64,
}

/// All sites of a session.
#[derive(Default)]
pub struct Sites {
    stats: Vec<SiteStats>,
}

impl Sites {
    /// The counters of `site`, created on first use.
    #[inline]
    pub fn get(&mut self, site: u32) -> &mut SiteStats {
        let i = site as usize;
        if i >= self.stats.len() {
            self.grow(i);
        }
        &mut self.stats[i]
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: usize) {
        self.stats.resize(i + 1, SiteStats::default());
    }

    /// The counters of `site`, if it has any.
    pub fn peek(&self, site: u32) -> Option<&SiteStats> {
        self.stats.get(site as usize)
    }

    /// Number of site slots (the highest site id + 1).
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// Every site with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &SiteStats)> {
        self.stats.iter().enumerate().map(|(i, s)| (i as u32, s))
    }

    /// Sites with live blocks now: `(site, bytes, blocks)`.
    pub fn live(&self) -> Vec<(u32, u64, u64)> {
        self.iter()
            .filter(|(_, s)| s.live_blocks > 0)
            .map(|(i, s)| (i, s.live_bytes, s.live_blocks))
            .collect()
    }

    /// Records a chain that ended (freed, or live at the end) with `reallocs`.
    pub fn end_chain(&mut self, origin: u32, reallocs: u32, first: u64, last: u64) {
        if reallocs == 0 {
            return;
        }
        let s = self.get(origin);
        s.chains += 1;
        s.chain_reallocs += u64::from(reallocs);
        if reallocs > s.max_chain {
            s.max_chain = reallocs;
            s.max_chain_sizes = (first, last);
        }
    }
}
