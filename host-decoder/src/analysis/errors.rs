//! Heap errors: double free, free of an address that is not live, dealloc or
//! realloc with a layout other than the allocation's (undefined behaviour in
//! Rust), an allocation over a block still live. Each kind is counted; the
//! first examples keep both stacks.

/// Kinds of heap error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A block freed twice (the first free is still remembered).
    DoubleFree,
    /// A free of an address that is not live and not recently freed.
    UnknownFree,
    /// `dealloc` with a size or alignment other than the allocation's.
    DeallocLayoutMismatch,
    /// `realloc` with an old size or alignment other than the allocation's.
    ReallocLayoutMismatch,
    /// `realloc` of an address that is not live.
    ReallocUnknown,
    /// An allocation returned an address that is still live.
    AllocOverLive,
}

/// All kinds, in report order.
pub const KINDS: [ErrorKind; 6] = [
    ErrorKind::DoubleFree,
    ErrorKind::DeallocLayoutMismatch,
    ErrorKind::ReallocLayoutMismatch,
    ErrorKind::UnknownFree,
    ErrorKind::ReallocUnknown,
    ErrorKind::AllocOverLive,
];

/// One occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapError {
    /// What.
    pub kind: ErrorKind,
    /// The address.
    pub addr: u64,
    /// When (ticks).
    pub ts: u64,
    /// Merged-stream sequence number.
    pub seq: u64,
    /// Stream of the faulty call.
    pub stream: u32,
    /// Stack of the faulty call.
    pub stack: u32,
    /// Layout passed by the faulty call.
    pub layout: (u64, u64),
    /// The block concerned, when known: its stack, stream and layout.
    pub block: Option<(u32, u32, u64, u64)>,
    /// For a double free: the stack and stream of the first free.
    pub first_free: Option<(u32, u32)>,
}

/// Examples kept per kind.
pub const EXAMPLES_PER_KIND: usize = 20;

/// Counts and examples.
#[derive(Default)]
pub struct Errors {
    counts: [u64; 6],
    /// The first examples of each kind.
    pub examples: Vec<HeapError>,
}

impl Errors {
    /// Records `e`.
    pub fn push(&mut self, e: HeapError) {
        let i = KINDS.iter().position(|k| *k == e.kind).unwrap_or(0);
        self.counts[i] += 1;
        if self.counts[i] <= EXAMPLES_PER_KIND as u64 {
            self.examples.push(e);
        }
    }

    /// How many of `kind`.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.counts[i])
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}
