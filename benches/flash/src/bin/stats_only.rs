//! Live statistics only.
#![no_std]
#![no_main]

use memscope_core::{StatsOnly, TrackingAllocator};
use memscope_flash::{exercise, Bump};

static HEAP: TrackingAllocator<Bump, StatsOnly> =
    TrackingAllocator::new(Bump::new(), StatsOnly::new());

#[no_mangle]
pub extern "C" fn Reset() -> ! {
    loop {
        exercise(&HEAP);
        core::hint::black_box(HEAP.stats());
    }
}
