//! What the three firmware images share: a bump allocator standing in for
//! the heap, the calls an application makes, and the panic handler.
//!
//! Every variant calls `alloc`, `alloc_zeroed`, `realloc` and `dealloc`
//! through `GlobalAlloc` on its allocator with layouts the compiler cannot
//! see through, so the difference between images is the code the tracking
//! adds, and nothing else.
#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::hint::black_box;
use core::sync::atomic::{AtomicUsize, Ordering};
// The single-core critical section (interrupts masked) that `Stream` takes.
use cortex_m as _;

/// A bump allocator over 16 KiB (never frees): the same inner allocator in
/// every variant.
pub struct Bump {
    next: AtomicUsize,
}

static mut ARENA: [u8; 16384] = [0; 16384];

impl Bump {
    /// An empty arena.
    pub const fn new() -> Self {
        Bump {
            next: AtomicUsize::new(0),
        }
    }
}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: hands out disjoint, aligned blocks of ARENA, or null when full.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: the images are single-threaded; only the arithmetic matters.
        let at = self.next.load(Ordering::Relaxed);
        let start = (at + layout.align() - 1) & !(layout.align() - 1);
        let end = start + layout.size();
        if end > 16384 {
            return core::ptr::null_mut();
        }
        self.next.store(end, Ordering::Relaxed);
        // SAFETY: `start..end` is inside ARENA and handed out once.
        unsafe { core::ptr::addr_of_mut!(ARENA).cast::<u8>().add(start) }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

/// The application: one call of each kind, with opaque arguments.
pub fn exercise<A: GlobalAlloc>(a: &A) {
    let l = black_box(Layout::from_size_align(24, 8).unwrap());
    // SAFETY: non-zero-sized layouts; each block goes back once with its layout.
    unsafe {
        let p = a.alloc(l);
        let q = a.alloc_zeroed(l);
        let p = a.realloc(p, l, black_box(100));
        a.dealloc(p, Layout::from_size_align_unchecked(100, 8));
        a.dealloc(q, l);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
