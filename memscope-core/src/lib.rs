//! memscope-core: heap-allocation tracking for any `GlobalAlloc`, on a
//! microcontroller or a desktop, with no `std` and no `alloc`.
//!
//! [`TrackingAllocator`] wraps an allocator (embedded-alloc's `LlffHeap` or
//! `TlsfHeap`, `System`, mimalloc…) and reports every `alloc`, `alloc_zeroed`,
//! `dealloc` and `realloc` to a [`Recorder`]:
//!
//! - [`StatsOnly`] keeps live [`Stats`] (current, peak, totals) and nothing else.
//! - [`Stream`] also encodes each event as a compact record (about five bytes)
//!   and hands it, framed, to a [`Sink`]: an RTT up-channel, a [`RingSink`]
//!   you drain yourself, anything that takes whole frames without blocking.
//! - memscope-std adds a per-thread recorder for hosts.
//!
//! Nothing on the record path allocates, takes a lock, panics or waits: a
//! frame that does not fit is dropped, counted, and the next one that fits
//! says how many were lost. The host program `memscope-decode` reads the stream
//! (the [`frame`] and [`wire`] modules here are its single source of truth) and
//! does the analysis.
//!
//! ```
//! use core::alloc::{GlobalAlloc, Layout};
//! use memscope_core::{NoClock, RingSink, Stream, StreamInfo, TrackingAllocator};
//! use std::alloc::System;
//!
//! static HEAP: TrackingAllocator<System, Stream<RingSink<4096>, NoClock>> = TrackingAllocator::new(
//!     System,
//!     Stream::new(RingSink::new(), NoClock, StreamInfo::new("doc-example")),
//! );
//!
//! let layout = Layout::from_size_align(24, 8).unwrap();
//! unsafe {
//!     let p = HEAP.alloc(layout);
//!     HEAP.dealloc(p, layout);
//! }
//! assert_eq!(HEAP.stats().allocs, 1);
//! let mut bytes = Vec::new();
//! HEAP.recorder().sink().drain(|a, b| { bytes.extend_from_slice(a); bytes.extend_from_slice(b); a.len() + b.len() });
//! // A 0x00 first (so a reset mid-frame keeps the next header), then three
//! // frames, each ended by a 0x00: the header, the alloc and the dealloc.
//! assert_eq!(bytes[0], 0);
//! assert_eq!(bytes[1..].iter().filter(|&&b| b == 0).count(), 3);
//! ```
//!
//! What memscope cannot see: moves and borrows (Rust has no hook for them), and
//! memory that bypasses `GlobalAlloc` (C's `malloc` from a linked library).
#![no_std]
#![warn(missing_docs)]

mod alloc;
pub mod clock;
pub mod frame;
mod recorder;
pub mod ring;
pub mod sink;
pub mod stack;
pub mod stats;
pub mod stream;
pub mod varint;
pub mod wire;

#[cfg(feature = "cortex-m")]
pub mod cortex_m;
#[cfg(feature = "rtt")]
pub mod rtt;

pub use crate::alloc::{Recorder, TrackingAllocator};
pub use clock::{Clock, NoClock};
pub use recorder::{StatsOnly, Stream, StreamInfo};
pub use ring::Ring;
pub use sink::{RingSink, Sink};
pub use stack::{NoStacks, StackSource};
pub use stats::{Stats, StatsSnapshot};
pub use stream::StreamEncoder;
