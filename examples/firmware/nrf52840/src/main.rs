//! memscope on a real board: an nRF52840 (for example the nRF52840-DK),
//! with embedded-alloc's `TlsfHeap` (two-level segregated fit) wrapped in
//! `TrackingAllocator`, DWT cycle-counter timestamps at 64 MHz, call sites
//! from the r7 frame chain, defmt logs on RTT up-channel 0 and memscope
//! records on up-channel 1.
//!
//! ```text
//! cargo build -p nrf52840 --target thumbv7em-none-eabihf --release
//! probe-rs download --chip nRF52840_xxAA <ELF> && probe-rs reset --chip nRF52840_xxAA
//! memscope-decode rtt --chip nRF52840_xxAA --elf <ELF>
//! ```
//!
//! `TlsfHeap` has no `used()`: the live figures come from memscope alone.
#![no_std]
#![no_main]

extern crate alloc;

use core::mem::MaybeUninit;
use cortex_m::peripheral::SCB;
use cortex_m_rt::{entry, exception};
use embedded_alloc::TlsfHeap;
use memscope_core::cortex_m::{DwtClock, FrameChain};
use memscope_core::rtt::RttSink;
use memscope_core::{Stream, StreamInfo, TrackingAllocator};
use panic_semihosting as _;

/// The nRF52840's core clock.
const CORE_HZ: u32 = 64_000_000;
/// `ORIGIN(RAM) + LENGTH(RAM)` in memory.x: the initial stack pointer.
const STACK_TOP: usize = 0x2000_0000 + 256 * 1024;
const HEAP_SIZE: usize = 32 * 1024;

#[global_allocator]
static HEAP: TrackingAllocator<TlsfHeap, Stream<RttSink, DwtClock, FrameChain<16, 32>>> =
    TrackingAllocator::new(
        TlsfHeap::empty(),
        Stream::with_stacks(
            RttSink::new(),
            DwtClock::new(CORE_HZ),
            StreamInfo::new("nrf52840").with_target("nRF52840_xxAA"),
            FrameChain::new().with_stack_top(STACK_TOP),
        ),
    );

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    let heap_start = HEAP_MEM.as_ptr() as usize;

    let mut p = cortex_m::Peripherals::take().unwrap();
    let channels = rtt_target::rtt_init! {
        up: {
            0: { size: 1024, mode: rtt_target::ChannelMode::NoBlockSkip, name: "defmt" }
            1: { size: 8192, mode: rtt_target::ChannelMode::NoBlockSkip, name: "memscope" }
        }
    };
    rtt_target::set_defmt_channel(channels.up.0);
    let counting = HEAP.recorder().clock().start(&mut p.DCB, &mut p.DWT);
    HEAP.recorder().sink().attach(channels.up.1);
    HEAP.recorder().set_heap(heap_start, HEAP_SIZE);
    // SAFETY: called once, before the first allocation, with memory that is
    // ours alone from here on.
    unsafe { HEAP.inner().init(heap_start, HEAP_SIZE) };
    defmt::info!(
        "heap at {=usize:#x}, {=usize} bytes; cycle counter runs: {=bool}",
        heap_start,
        HEAP_SIZE,
        counting
    );

    workload::run(SCB::set_pendst);
    HEAP.recorder().finish();

    let s = HEAP.stats();
    defmt::info!(
        "memscope allocs={=usize} deallocs={=usize} reallocs={=usize} lost={=usize} current_bytes={=usize} peak_bytes={=usize}",
        s.allocs, s.deallocs, s.reallocs, s.lost, s.current_bytes, s.peak_bytes
    );
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
fn SysTick() {
    workload::from_interrupt();
}
