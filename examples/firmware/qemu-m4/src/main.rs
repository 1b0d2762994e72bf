//! memscope on QEMU's `mps2-an386` (Cortex-M4F): embedded-alloc's `LlffHeap`
//! wrapped in `TrackingAllocator`, records streamed over RTT (up-channel 1,
//! "memscope") next to defmt logs (up-channel 0), timestamps from DWT CYCCNT
//! (QEMU does not model it, so this trace says "no clock"), call sites from
//! the r7 frame chain.
//!
//! ```text
//! cargo run -p qemu-m4 --target thumbv7em-none-eabihf --release
//! ```
//!
//! prints memscope's statistics and the heap's `used()` over semihosting. To
//! watch the trace, start QEMU with `-gdb tcp::3333 -S` and run
//! `memscope-decode gdb localhost:3333 --elf <this ELF>`. The body of `main`
//! after the setup below is `workload::qemu`, shared with `qemu-m0`.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use cortex_m_rt::{entry, exception};
use panic_semihosting as _;

#[cfg(feature = "tracking")]
mod tracked {
    use memscope_core::cortex_m::DwtClock;
    #[cfg(feature = "stacks")]
    use memscope_core::cortex_m::FrameChain;
    use memscope_core::rtt::RttSink;
    use memscope_core::{Stream, StreamInfo, TrackingAllocator};

    /// QEMU's mps2-an386 core clock.
    pub const CORE_HZ: u32 = 25_000_000;
    /// Top of the stack: `ORIGIN(RAM) + LENGTH(RAM)` in memory.x, where
    /// cortex-m-rt puts the initial stack pointer.
    #[cfg(feature = "stacks")]
    const STACK_TOP: usize = 0x2000_0000 + 256 * 1024;

    #[cfg(feature = "stacks")]
    pub type Stacks = FrameChain<16, 32>;
    #[cfg(not(feature = "stacks"))]
    pub type Stacks = memscope_core::NoStacks;

    #[cfg(feature = "stacks")]
    const STACKS: Stacks = FrameChain::new().with_stack_top(STACK_TOP);
    #[cfg(not(feature = "stacks"))]
    const STACKS: Stacks = memscope_core::NoStacks;

    pub type Heap = workload::qemu::Tracked<DwtClock, Stacks>;

    pub const fn heap() -> Heap {
        TrackingAllocator::new(
            embedded_alloc::LlffHeap::empty(),
            Stream::with_stacks(
                RttSink::new(),
                DwtClock::new(CORE_HZ),
                StreamInfo::new("qemu-m4").with_target("thumbv7em-none-eabihf"),
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
const MEMSCOPE_CHANNEL: usize = if cfg!(feature = "tracking") { 16384 } else { 0 };

const HEAP_SIZE: usize = 16 * 1024;

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

    let channels = rtt_target::rtt_init! {
        up: {
            0: { size: 1024, mode: rtt_target::ChannelMode::NoBlockSkip, name: "defmt" }
            1: { size: MEMSCOPE_CHANNEL, mode: rtt_target::ChannelMode::NoBlockSkip, name: "memscope" }
        }
    };
    rtt_target::set_defmt_channel(channels.up.0);

    #[cfg(feature = "tracking")]
    {
        let mut p = cortex_m::Peripherals::take().unwrap();
        let counting = HEAP.recorder().clock().start(&mut p.DCB, &mut p.DWT);
        defmt::info!("DWT cycle counter runs: {=bool}", counting);
        workload::qemu::tracked(&HEAP, channels.up.1, HEAP_MEM, 2_000_000)
    }
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
