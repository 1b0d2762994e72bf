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

/// An [`Event`] as plain words: what out-of-line code gets, in registers. An
/// `Event` passed by reference would make the inlined record path keep its
/// own copy in memory (the copy escapes), at a store per field per call.
pub(crate) type Words = (u8, usize, usize, usize, usize, usize);

impl Event {
    /// See [`Words`].
    #[inline(always)]
    pub(crate) fn to_words(self) -> Words {
        match self {
            Event::Alloc {
                ptr,
                size,
                align,
                zeroed,
            } => (u8::from(zeroed), ptr as usize, size, align, 0, 0),
            Event::Dealloc { ptr, size, align } => (2, ptr as usize, size, align, 0, 0),
            Event::Realloc {
                old,
                old_size,
                new,
                new_size,
                align,
            } => (3, old as usize, old_size, new as usize, new_size, align),
        }
    }

    /// The inverse of [`to_words`](Self::to_words).
    #[inline(always)]
    pub(crate) fn from_words((tag, a, b, c, d, e): Words) -> Event {
        match tag {
            0 | 1 => Event::Alloc {
                ptr: a as *mut u8,
                size: b,
                align: c,
                zeroed: tag == 1,
            },
            2 => Event::Dealloc {
                ptr: a as *mut u8,
                size: b,
                align: c,
            },
            _ => Event::Realloc {
                old: a as *mut u8,
                old_size: b,
                new: c as *mut u8,
                new_size: d,
                align: e,
            },
        }
    }

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
