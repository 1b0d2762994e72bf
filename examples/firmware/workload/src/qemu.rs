//! The part of `main` the QEMU examples (`qemu-m4`, `qemu-m0`) share: set the
//! heap up, run the workload, end the trace, wait for the host, print the
//! figures the tests parse, and exit QEMU. What differs between the two (the
//! clock, the stack depth, buffer sizes, the RTT block, which has to be a
//! static of the binary) stays in each example's `main.rs`.

use crate::{print_stats, run, wait_for_host};
use core::mem::MaybeUninit;
use cortex_m::peripheral::SCB;
use embedded_alloc::LlffHeap;
use memscope_core::rtt::RttSink;
use memscope_core::{Clock, StackSource, Stream, TrackingAllocator};
use rtt_target::UpChannel;

/// How often the workload runs: 1, or `MEMSCOPE_WORKLOAD_RUNS` at build time.
/// The measurement script (examples/firmware/measure.py) builds with 2 to
/// tell per-event costs from one-time ones.
pub const WORKLOAD_RUNS: u32 = match option_env!("MEMSCOPE_WORKLOAD_RUNS") {
    Some(n) => match u32::from_str_radix(n, 10) {
        Ok(n) => n,
        Err(_) => panic!("MEMSCOPE_WORKLOAD_RUNS must be a number"),
    },
    None => 1,
};

/// An example's heap with memscope: `LlffHeap` recorded to an RTT channel.
pub type Tracked<C, K> = TrackingAllocator<LlffHeap, Stream<RttSink, C, K>>;

/// Runs the example with memscope: attaches `channel` to the recorder, hands
/// `mem` to the heap, runs the workload, writes the trace's end record and
/// waits up to `spins` polls for a host to drain it (none when the build sets
/// `MEMSCOPE_NO_WAIT`, as measurement builds do), then prints and exits.
pub fn tracked<C: Clock, K: StackSource>(
    heap: &'static Tracked<C, K>,
    channel: UpChannel,
    mem: &'static mut [MaybeUninit<u8>],
    spins: u32,
) -> ! {
    heap.recorder().sink().attach(channel);
    heap.recorder().set_heap(mem.as_ptr() as usize, mem.len());
    init(heap.inner(), mem);
    for _ in 0..WORKLOAD_RUNS {
        run(SCB::set_pendst);
    }
    let used_free = (heap.inner().used(), heap.inner().free());
    heap.recorder().finish();
    let spins = if option_env!("MEMSCOPE_NO_WAIT").is_some() {
        0
    } else {
        spins
    };
    let drained = wait_for_host(|| heap.recorder().sink().is_drained(), spins);
    defmt::info!("trace drained: {=bool}", drained);
    print_stats(&heap.stats(), Some(used_free));
    exit()
}

/// Runs the example on the bare heap (what memscope's cost is measured against).
pub fn bare(heap: &'static LlffHeap, mem: &'static mut [MaybeUninit<u8>]) -> ! {
    init(heap, mem);
    for _ in 0..WORKLOAD_RUNS {
        run(SCB::set_pendst);
    }
    print_stats(&Default::default(), Some((heap.used(), heap.free())));
    exit()
}

fn init(heap: &LlffHeap, mem: &'static mut [MaybeUninit<u8>]) {
    let (start, len) = (mem.as_mut_ptr() as usize, mem.len());
    // SAFETY: called once, before the first allocation, with memory that is
    // the heap's alone from here on (`mem` is borrowed for 'static).
    unsafe { heap.init(start, len) };
    defmt::info!("heap at {=usize:#x}, {=usize} bytes", start, len);
}

fn exit() -> ! {
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}
