//! memscope on QEMU's `microbit` (nRF51822, Cortex-M0): embedded-alloc's
//! `LlffHeap` wrapped in `TrackingAllocator`, records streamed over RTT
//! (up-channel 1, "memscope") next to defmt logs (up-channel 0), no clock (an
//! ARMv6-M core has no cycle counter: the stream order is the event order),
//! call sites from the r7 frame chain. Buffers are sized for 16 KiB of RAM.
//!
//! ```text
//! cargo run -p qemu-m0 --target thumbv6m-none-eabi --release
//! ```
//!
//! prints memscope's statistics and the heap's `used()` over semihosting. To
//! watch the trace, start QEMU with `-gdb tcp::3333 -S` and run
//! `memscope-decode gdb localhost:3333 --elf <this ELF>`. The body of `main`
//! after the setup below is `workload::qemu`, shared with `qemu-m4`.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use cortex_m_rt::{entry, exception};
use panic_semihosting as _;

#[cfg(feature = "tracking")]
mod tracked {
    #[cfg(feature = "stacks")]
    use memscope_core::cortex_m::FrameChain;
    use memscope_core::rtt::RttSink;
    use memscope_core::{NoClock, Stream, StreamInfo, TrackingAllocator};

    /// Top of the stack: `ORIGIN(RAM) + LENGTH(RAM)` in memory.x, where
    /// cortex-m-rt puts the initial stack pointer.
    #[cfg(feature = "stacks")]
    const STACK_TOP: usize = 0x2000_0000 + 16 * 1024;

    #[cfg(feature = "stacks")]
    pub type Stacks = FrameChain<16, 16>;
    #[cfg(not(feature = "stacks"))]
    pub type Stacks = memscope_core::NoStacks;

    #[cfg(feature = "stacks")]
    const STACKS: Stacks = FrameChain::new().with_stack_top(STACK_TOP);
    #[cfg(not(feature = "stacks"))]
    const STACKS: Stacks = memscope_core::NoStacks;

    pub type Heap = workload::qemu::Tracked<NoClock, Stacks>;

    pub const fn heap() -> Heap {
        TrackingAllocator::new(
            embedded_alloc::LlffHeap::empty(),
            Stream::with_stacks(
                RttSink::new(),
                NoClock,
                StreamInfo::new("qemu-m0").with_target("thumbv6m-none-eabi"),
                STACKS,
            ),
        )
    }
}

#[cfg(feature = "tracking")]
#[global_allocator]
static HEAP: tracked::Heap = tracked::heap();

#[cfg(not(feature = "tracking"))]
#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

/// The memscope RTT channel's buffer; none without tracking, so size
/// comparisons show what memscope adds.
const MEMSCOPE_CHANNEL: usize = if cfg!(feature = "tracking") { 4096 } else { 0 };

const HEAP_SIZE: usize = 4 * 1024;

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

    let channels = rtt_target::rtt_init! {
        up: {
            0: { size: 256, mode: rtt_target::ChannelMode::NoBlockSkip, name: "defmt" }
            1: { size: MEMSCOPE_CHANNEL, mode: rtt_target::ChannelMode::NoBlockSkip, name: "memscope" }
        }
    };
    rtt_target::set_defmt_channel(channels.up.0);

    #[cfg(feature = "tracking")]
    workload::qemu::tracked(&HEAP, channels.up.1, HEAP_MEM, 20_000);
    #[cfg(not(feature = "tracking"))]
    {
        drop(channels.up.1);
        workload::qemu::bare(&HEAP, HEAP_MEM)
    }
}

#[exception]
fn SysTick() {
    workload::from_interrupt();
}
