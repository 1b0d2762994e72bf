//! No tracking: the inner allocator alone.
#![no_std]
#![no_main]

use memscope_flash::{exercise, Bump};

static HEAP: Bump = Bump::new();

#[no_mangle]
pub extern "C" fn Reset() -> ! {
    loop {
        exercise(&HEAP);
    }
}
