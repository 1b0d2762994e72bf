//! Who allocated what: per thread, per scope (`scope!`), per named variable
//! (`track!`), and frees on another thread than the allocating one.

use rustc_hash::FxHashMap;

/// Per thread (stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Successful allocs.
    pub allocs: u64,
    /// Bytes allocated (allocs and realloc growth).
    pub bytes: u64,
    /// Frees made by this thread.
    pub frees: u64,
    /// Frees made by this thread of blocks another thread allocated.
    pub foreign_frees: u64,
    /// Blocks allocated by this thread and live now.
    pub live_blocks: u64,
    /// Their bytes.
    pub live_bytes: u64,
    /// Generation of its latest allocation (alloc or realloc), if any: a
    /// block it frees with this generation is a temporary. Kept here, not
    /// in a map of its own, so an event looks its thread up once.
    pub last_alloc: Option<u64>,
}

/// Per scope name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeStats {
    /// Times entered.
    pub entered: u64,
    /// Allocations made while it was the innermost scope.
    pub allocs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, live now.
    pub live_blocks: u64,
    /// Their bytes.
    pub live_bytes: u64,
}

/// Per `track!` name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameStats {
    /// Whether the address was live when named.
    pub resolved: bool,
    /// Site of the block's first allocation.
    pub site: u32,
    /// Size when named.
    pub size_at_naming: u64,
    /// Largest size reached.
    pub max_size: u64,
    /// Reallocs after naming.
    pub reallocs: u32,
    /// Whether it was freed.
    pub freed: bool,
    /// Lifetime from its first allocation to its free (ticks, lower bound).
    pub lifetime: Option<u64>,
}

/// Frees on other threads.
#[derive(Default)]
pub struct CrossThread {
    /// Count.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
    /// (allocating stream, freeing stream) → (count, bytes).
    pub pairs: FxHashMap<(u32, u32), (u64, u64)>,
}

/// All attribution views.
#[derive(Default)]
pub struct Attribution {
    /// By stream.
    pub threads: super::stream_map::StreamMap<ThreadStats>,
    /// By interned scope name.
    pub scopes: FxHashMap<u32, ScopeStats>,
    /// By name index.
    pub names: FxHashMap<u32, NameStats>,
    /// Cross-thread frees.
    pub cross_thread: CrossThread,
}
