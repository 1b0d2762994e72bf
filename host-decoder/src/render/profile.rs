//! Every call site of one session with its symbolized stack and its numbers:
//! what the exports (DHAT, pprof, folded stacks, flamegraph) and the HTML
//! dashboard's flamegraph are made of. The [`Report`](crate::report::Report)
//! lists only the top sites; these need all of them.

use crate::pipeline::SessionRun;
use crate::records::NO_STACK;
use crate::symbolize::{first_user_frame, FrameInfo, Symbolizer};

/// One call site.
#[derive(Clone, Debug)]
pub struct SiteProfile {
    /// Stack id (0: no stack recorded).
    pub site: u32,
    /// Frames, innermost first (empty when no stack was recorded).
    pub frames: Vec<FrameInfo>,
    /// Index of the first user frame (allocator frames before it).
    pub first_user: usize,
    /// Successful alloc calls.
    pub allocs: u64,
    /// Successful realloc calls.
    pub reallocs: u64,
    /// Bytes allocated (allocs plus realloc growth).
    pub bytes: u64,
    /// Bytes live from here at the session's peak.
    pub peak_bytes: u64,
    /// Blocks live from here at the peak.
    pub peak_blocks: u64,
    /// Bytes live from here at the end.
    pub leaked_bytes: u64,
    /// Blocks live from here at the end.
    pub leaked_blocks: u64,
    /// Most bytes live from here at once.
    pub max_live_bytes: u64,
    /// Blocks live at that moment.
    pub max_live_blocks: u64,
    /// Blocks freed.
    pub freed: u64,
    /// Sum of the freed blocks' lifetimes (ticks).
    pub lifetime_sum: u64,
}

/// The label every export gives a site whose allocations carried no stack.
pub const NO_STACK_RECORDED: &str = "[no stack recorded]";

impl SiteProfile {
    /// The frames from the first user frame outward (the allocator's own
    /// frames left out; all of them when no user frame was found), innermost
    /// first; empty when no stack was recorded.
    pub fn user_frames(&self) -> &[FrameInfo] {
        let from = self.first_user.min(self.frames.len().saturating_sub(1));
        &self.frames[from..]
    }
}

/// Which number a flamegraph or folded file weighs stacks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Weight {
    /// Bytes allocated over the whole trace.
    #[default]
    Allocated,
    /// Bytes live at the exact peak.
    Peak,
    /// Bytes live at the end.
    Leaked,
    /// Allocation calls (alloc and realloc) over the whole trace: churn.
    Calls,
}

impl Weight {
    /// The site's number for this weight.
    pub fn of(self, s: &SiteProfile) -> u64 {
        match self {
            Weight::Allocated => s.bytes,
            Weight::Peak => s.peak_bytes,
            Weight::Leaked => s.leaked_bytes,
            Weight::Calls => s.allocs + s.reallocs,
        }
    }
}

/// All sites of a session.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Sites with at least one successful allocation or realloc, by site id.
    pub sites: Vec<SiteProfile>,
    /// Ticks per second (0: no clock).
    pub ticks_per_second: u64,
    /// Timestamp of the first heap event.
    pub first_ts: u64,
    /// Timestamp of the peak.
    pub peak_ts: u64,
    /// Timestamp of the last event (the end).
    pub end_ts: u64,
    /// Whether the peak's live set by site is known.
    pub peak_known: bool,
}

/// Collects every site of `s`, symbolized with `sym`.
pub fn build(s: &SessionRun, sym: &mut Symbolizer) -> Profile {
    let an = &s.analyses;
    let mut peak = vec![(0u64, 0u64); an.sites.len()];
    let peak_known = s.peak.is_some();
    if let Some(p) = &s.peak {
        for &(site, bytes, blocks) in &p.sites {
            if let Some(e) = peak.get_mut(site as usize) {
                *e = (bytes, blocks);
            }
        }
    }
    let mut sites = Vec::new();
    for (id, st) in an.sites.iter() {
        if st.allocs + st.reallocs == 0 {
            continue;
        }
        let frames = if id == NO_STACK {
            Vec::new()
        } else {
            sym.stack(s.session.stacks.get(id))
        };
        let first_user = first_user_frame(&frames);
        let (pb, pk) = peak.get(id as usize).copied().unwrap_or_default();
        sites.push(SiteProfile {
            site: id,
            frames,
            first_user,
            allocs: st.allocs,
            reallocs: st.reallocs,
            bytes: st.bytes,
            peak_bytes: pb,
            peak_blocks: pk,
            leaked_bytes: st.live_bytes,
            leaked_blocks: st.live_blocks,
            max_live_bytes: st.max_live_bytes,
            max_live_blocks: st.max_live_blocks,
            freed: st.freed,
            lifetime_sum: st.lifetime_sum,
        });
    }
    let first_ts = an.first_ts.unwrap_or(0);
    let end_ts = s
        .session
        .streams
        .values()
        .map(|st| st.last_ts)
        .max()
        .unwrap_or(first_ts)
        .max(an.peak.peak_ts);
    Profile {
        sites,
        ticks_per_second: s.session.header.as_ref().map_or(0, |h| h.ticks_per_second),
        first_ts,
        peak_ts: an.peak.peak_ts,
        end_ts,
        peak_known,
    }
}

/// A frame's short name for flamegraphs: the function, else the address.
pub fn frame_name(f: &FrameInfo) -> String {
    match &f.function {
        Some(func) => func.clone(),
        None => match &f.module {
            Some(m) => format!("{:#x} ({m})", f.addr),
            None => format!("{:#x}", f.addr),
        },
    }
}

/// The frames a flamegraph shows for `s`, outermost first: the user's frames
/// and their callers (the allocator's own frames are left out), or a
/// placeholder when no stack was recorded.
pub fn user_frames_outermost_first(s: &SiteProfile) -> Vec<String> {
    if s.frames.is_empty() {
        return vec![NO_STACK_RECORDED.to_owned()];
    }
    s.user_frames().iter().rev().map(frame_name).collect()
}
