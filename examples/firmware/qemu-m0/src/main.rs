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
//! `memscope-decode gdb localhost:3333 --elf <this ELF>`.
#![no_std]
#![no_main]

extern crate alloc;

use core::mem::MaybeUninit;
use cortex_m::peripheral::SCB;
use cortex_m_rt::{entry, exception};
use embedded_alloc::LlffHeap;
use panic_semihosting as _;

#[cfg(feature = "tracking")]
mod tracked {
    use embedded_alloc::LlffHeap;
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

    pub type Heap = TrackingAllocator<LlffHeap, Stream<RttSink, NoClock, Stacks>>;

    pub const fn heap() -> Heap {
        TrackingAllocator::new(
            LlffHeap::empty(),
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
static HEAP: LlffHeap = LlffHeap::empty();

/// The memscope RTT channel's buffer; none without tracking, so size
/// comparisons show what memscope adds.
const MEMSCOPE_CHANNEL: usize = if cfg!(feature = "tracking") { 4096 } else { 0 };

const HEAP_SIZE: usize = 4 * 1024;

/// How often the workload runs: 1, or MEMSCOPE_WORKLOAD_RUNS at build time.
const WORKLOAD_RUNS: u32 = match option_env!("MEMSCOPE_WORKLOAD_RUNS") {
    Some(n) => match u32::from_str_radix(n, 10) {
        Ok(n) => n,
        Err(_) => panic!("MEMSCOPE_WORKLOAD_RUNS must be a number"),
    },
    None => 1,
};

fn inner_heap() -> &'static LlffHeap {
    #[cfg(feature = "tracking")]
    return HEAP.inner();
    #[cfg(not(feature = "tracking"))]
    return &HEAP;
}

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    let heap_start = HEAP_MEM.as_ptr() as usize;

    let channels = rtt_target::rtt_init! {
        up: {
            0: { size: 256, mode: rtt_target::ChannelMode::NoBlockSkip, name: "defmt" }
            1: { size: MEMSCOPE_CHANNEL, mode: rtt_target::ChannelMode::NoBlockSkip, name: "memscope" }
        }
    };
    rtt_target::set_defmt_channel(channels.up.0);

    #[cfg(feature = "tracking")]
    {
        HEAP.recorder().sink().attach(channels.up.1);
        HEAP.recorder().set_heap(heap_start, HEAP_SIZE);
    }
    #[cfg(not(feature = "tracking"))]
    drop(channels.up.1);

    // SAFETY: called once, before the first allocation, with memory that is
    // ours alone from here on.
    unsafe { inner_heap().init(heap_start, HEAP_SIZE) };
    defmt::info!("heap at {=usize:#x}, {=usize} bytes", heap_start, HEAP_SIZE);

    // The measurement script (examples/firmware/measure.py) builds with
    // MEMSCOPE_WORKLOAD_RUNS=2 to tell per-event costs from one-time ones.
    for _ in 0..WORKLOAD_RUNS {
        workload::run(SCB::set_pendst);
    }

    let heap = Some((inner_heap().used(), inner_heap().free()));
    #[cfg(feature = "tracking")]
    {
        HEAP.recorder().finish();
        // Without a host attached this gives up after a bounded wait;
        // MEMSCOPE_NO_WAIT (measurement builds) skips it.
        let spins = if option_env!("MEMSCOPE_NO_WAIT").is_some() {
            0
        } else {
            20_000
        };
        let drained = workload::wait_for_host(|| HEAP.recorder().sink().is_drained(), spins);
        defmt::info!("trace drained: {=bool}", drained);
        workload::print_stats(&HEAP.stats(), heap);
    }
    #[cfg(not(feature = "tracking"))]
    workload::print_stats(&Default::default(), heap);

    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
fn SysTick() {
    workload::from_interrupt();
}
