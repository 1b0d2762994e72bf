//! As `stream`, plus what a firmware adds around it: draining the ring and
//! writing the end record (`Stream::finish`).
#![no_std]
#![no_main]

use memscope_core::{NoClock, RingSink, Stream, StreamInfo, TrackingAllocator};
use memscope_flash::{exercise, Bump};

static HEAP: TrackingAllocator<Bump, Stream<RingSink<1024>, NoClock>> = TrackingAllocator::new(
    Bump::new(),
    Stream::new(RingSink::new(), NoClock, StreamInfo::new("flash")),
);

#[no_mangle]
pub extern "C" fn Reset() -> ! {
    loop {
        exercise(&HEAP);
        HEAP.recorder().sink().drain(|a, b| {
            core::hint::black_box((a, b));
            a.len() + b.len()
        });
        core::hint::black_box(HEAP.recorder().finish());
    }
}
