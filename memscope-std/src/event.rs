//! One allocator call, as the tracker sees it after the inner call returned.

/// What happened. Addresses are null when the inner allocator failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Alloc {
        ptr: *mut u8,
        size: usize,
        align: usize,
        zeroed: bool,
    },
    Dealloc {
        ptr: *mut u8,
        size: usize,
        align: usize,
    },
    Realloc {
        old: *mut u8,
        old_size: usize,
        new: *mut u8,
        new_size: usize,
        align: usize,
    },
}

impl Event {
    /// Whether the inner allocator returned null.
    #[inline(always)]
    pub(crate) fn failed(&self) -> bool {
        match *self {
            Event::Alloc { ptr, .. } => ptr.is_null(),
            Event::Dealloc { .. } => false,
            Event::Realloc { new, .. } => new.is_null(),
        }
    }

    /// Change of live bytes and blocks this event makes.
    #[inline(always)]
    pub(crate) fn net(&self) -> (i64, i64) {
        if self.failed() {
            return (0, 0);
        }
        match *self {
            Event::Alloc { size, .. } => (size as i64, 1),
            Event::Dealloc { size, .. } => (-(size as i64), -1),
            Event::Realloc {
                old_size, new_size, ..
            } => (new_size as i64 - old_size as i64, 0),
        }
    }
}
