//! [`RttSink`]: frames into an RTT up-channel of rtt-target (feature `rtt`).
//!
//! Only one `_SEGGER_RTT` control block may exist in an image, so memscope
//! does not bring its own: the firmware creates the control block with
//! rtt-target's `rtt_init!`, gives channel 0 to defmt (rtt-target's `defmt`
//! feature, *not* the defmt-rtt crate, which would define a second control
//! block) and hands another up-channel to the sink:
//!
//! ```ignore
//! use memscope_core::{rtt::RttSink, NoClock, Stream, StreamInfo, TrackingAllocator};
//! use rtt_target::{rtt_init, ChannelMode::NoBlockSkip};
//!
//! #[global_allocator]
//! static HEAP: TrackingAllocator<embedded_alloc::LlffHeap, Stream<RttSink, NoClock>> =
//!     TrackingAllocator::new(
//!         embedded_alloc::LlffHeap::empty(),
//!         Stream::new(RttSink::new(), NoClock, StreamInfo::new("my-firmware")),
//!     );
//!
//! let channels = rtt_init! {
//!     up: {
//!         0: { size: 1024, mode: NoBlockSkip, name: "defmt" }
//!         1: { size: 4096, mode: NoBlockSkip, name: "memscope" }
//!     }
//! };
//! rtt_target::set_defmt_channel(channels.up.0);
//! HEAP.recorder().sink().attach(channels.up.1);
//! ```
//!
//! The host finds the channel by its name, `memscope` ([`CHANNEL_NAME`]).

use core::cell::RefCell;
use critical_section::Mutex;
use rtt_target::{ChannelMode, UpChannel};

use crate::sink::Sink;

/// The up-channel name `memscope-decode` looks for.
pub const CHANNEL_NAME: &str = "memscope";

/// A [`Sink`] over an rtt-target [`UpChannel`] in [`ChannelMode::NoBlockSkip`]:
/// a frame lands whole or not at all (then the recorder counts it lost), and a
/// write never waits for the host.
///
/// Until [`attach`](Self::attach) is called the sink takes nothing, so events
/// before it are counted as lost and the stream header goes out with the
/// first event after it.
pub struct RttSink {
    channel: Mutex<RefCell<Option<UpChannel>>>,
}

impl RttSink {
    /// A sink with no channel yet. Usable in a `static`.
    pub const fn new() -> Self {
        RttSink {
            channel: Mutex::new(RefCell::new(None)),
        }
    }

    /// Starts writing to `channel`, switching it to `NoBlockSkip`: `BlockIfFull`
    /// would stall the allocator until a host reads, `NoBlockTrim` would cut
    /// frames in half.
    pub fn attach(&self, mut channel: UpChannel) {
        channel.set_mode(ChannelMode::NoBlockSkip);
        critical_section::with(|cs| {
            // Cannot fail: every borrow is scoped to a critical section.
            if let Ok(mut slot) = self.channel.borrow(cs).try_borrow_mut() {
                *slot = Some(channel);
            }
        });
    }

    /// Whether the host has read everything written so far (true with no
    /// channel). Firmware that is about to stop (semihosting exit, reset) can
    /// wait for this, with a bound of its own, so the last frames are not lost.
    pub fn is_drained(&self) -> bool {
        // try_borrow: inside the critical section nothing else holds the
        // channel, and this way no panic path is linked in.
        critical_section::with(|cs| {
            self.channel
                .borrow(cs)
                .try_borrow()
                .is_ok_and(|ch| ch.as_ref().is_none_or(UpChannel::is_empty))
        })
    }
}

impl Default for RttSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for RttSink {
    fn write_frame(&self, frame: &[u8]) -> bool {
        critical_section::with(|cs| self.write_frame_locked(cs, frame))
    }

    /// Inside the recorder's critical section: its token borrows the
    /// channel, no nested section per frame.
    fn write_frame_locked(&self, cs: critical_section::CriticalSection<'_>, frame: &[u8]) -> bool {
        let Ok(mut channel) = self.channel.borrow(cs).try_borrow_mut() else {
            return false;
        };
        match channel.as_mut() {
            // In NoBlockSkip mode rtt-target commits the write offset only
            // when every byte fitted; a short count means nothing of the
            // frame became visible to the host.
            Some(ch) => ch.write(frame) == frame.len(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtt_target::rtt::RttChannel;

    #[test]
    fn a_frame_lands_whole_or_not_at_all() {
        let mut buf = [0u8; 16];
        // SAFETY: an all-zero RttChannel is valid (rtt-target zero-initialises
        // its control block the same way); `init` gets a NUL-terminated name
        // and a buffer that outlives the channel.
        let mut ch: RttChannel = unsafe { core::mem::zeroed() };
        unsafe {
            ch.init(
                c"memscope".as_ptr().cast(),
                ChannelMode::BlockIfFull,
                &mut buf as *mut [u8],
            );
        }
        let sink = RttSink::new();
        assert!(
            !sink.write_frame(&[9; 4]),
            "no channel yet: nothing is taken"
        );
        // SAFETY: `ch` lives until the end of the test and nothing else uses it.
        sink.attach(unsafe { UpChannel::new(&mut ch) });
        assert!(sink.is_drained());
        // 16 bytes hold 15: one slot tells full from empty.
        assert!(sink.write_frame(&[1; 10]));
        assert!(
            !sink.write_frame(&[2; 10]),
            "does not fit: skipped, not trimmed, not blocked"
        );
        // What `Stream` calls, inside its own critical section.
        assert!(critical_section::with(
            |cs| sink.write_frame_locked(cs, &[3; 5])
        ));
        assert!(!sink.is_drained());
        assert_eq!(&buf[..15], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3]);
    }
}
