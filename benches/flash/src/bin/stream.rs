//! Every event recorded into a 1 KiB ring (the record path only: nothing
//! drains it, which is the transport's code, not the recorder's).
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
        core::hint::black_box(HEAP.stats());
    }
}
