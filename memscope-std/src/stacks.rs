//! Call stacks by frame-pointer walking, and the per-thread table that sends
//! each distinct stack once.
//!
//! # How a stack is captured
//!
//! With frame pointers every function's frame starts with the caller's frame
//! pointer and the return address (x86_64: `rbp`, aarch64: `x29`). The walk
//! follows that chain from the allocator call upwards, taking one return
//! address per frame, and stops at the configured depth, at a null return
//! address, or at the first frame pointer that is not strictly above the
//! previous one and below the top of the thread's stack. Because every frame
//! it reads lies between the current frame and the stack top, it only reads
//! mapped stack memory, whatever the frame pointers hold.
//!
//! Build the program with frame pointers for full stacks:
//! `RUSTFLAGS="-C force-frame-pointers=yes"`. Generic code (`Vec`, `HashMap`,
//! `Box`…) is compiled into your crate and gets them too; the precompiled
//! standard library may not.
//!
//! **Fallback without frame pointers**: the bounds checks above end the walk
//! at the first frame that did not keep a frame pointer, so stacks come out
//! short — often only the frames up to the nearest function that kept one —
//! and an event whose walk yields no address carries no stack at all. The
//! trace never contains an address that was not read from a frame record on
//! the stack, but a frame without a frame pointer is skipped silently (its
//! caller's return address appears in its place). Other targets than x86_64
//! and aarch64 record no stacks. Every return address must also lie in an
//! executable segment of a loaded module (the module scan's ranges), which
//! stops a walk that wandered into a register that only looked like a frame
//! pointer.
//!
//! # Interning
//!
//! Each thread keeps a fixed table of 4096 entries of (64-bit hash of the
//! addresses, stack id). A stack whose hash is in the table is sent as its id
//! only; a new one goes out as a `Stack` record in the same ring entry as the
//! event that uses it, so the definition always precedes its first use in the
//! stream. A stack that is evicted (4 probes all taken) is sent again under a
//! new id: more bytes, never a wrong answer. Two distinct stacks with the same
//! 64-bit hash would share an id; with a million distinct stacks the chance of
//! that is about 3·10⁻⁸.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Deepest stack `MEMSCOPE_STACKS` may ask for.
pub const MAX_DEPTH: usize = 64;

/// Depth used when `MEMSCOPE_STACKS` is unset.
pub const DEFAULT_DEPTH: usize = 16;

const TABLE: usize = 4096;
const PROBES: usize = 4;

/// The interning table. All-zero is empty (a key of 0 is never stored).
pub(crate) struct StackTable {
    keys: [u64; TABLE],
    ids: [u32; TABLE],
    next_id: u32,
}

/// Result of [`StackTable::lookup`].
pub(crate) enum Lookup {
    /// Sent before under this id.
    Known(u32),
    /// Not sent: send it under `id`, then call [`StackTable::insert`].
    New { id: u32, key: u64, at: usize },
}

impl StackTable {
    #[inline]
    pub(crate) fn lookup(&self, frames: &[u64]) -> Lookup {
        let key = hash(frames);
        let home = (key >> 52) as usize; // top 12 bits: TABLE = 4096
        let mut empty = None;
        for i in 0..PROBES {
            let at = (home + i) % TABLE;
            match self.keys[at] {
                k if k == key => return Lookup::Known(self.ids[at]),
                0 if empty.is_none() => empty = Some(at),
                _ => {}
            }
        }
        Lookup::New {
            id: self.next_id,
            key,
            // No free probe: evict the home entry.
            at: empty.unwrap_or(home),
        }
    }

    /// The stack of a `Lookup::New` is in the stream.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32, key: u64, at: usize) {
        self.keys[at] = key;
        self.ids[at] = id;
        self.next_id = self.next_id.wrapping_add(1);
    }

    /// Forgets every stack (a new stream starts on a reused slot).
    pub(crate) fn clear(&mut self) {
        self.keys = [0; TABLE];
        self.next_id = 0;
    }
}

#[inline]
fn hash(frames: &[u64]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    // 0 marks an empty table entry.
    h | 1
}

/// Writes up to `out.len()` return addresses of the call chain that starts at
/// frame address `from` (the allocator method's frame, so memscope's own
/// frames are not in it), innermost first; returns how many.
/// `stack_top` is the highest address of the current thread's stack (0 when
/// unknown: then nothing is captured).
#[inline(never)]
pub(crate) fn capture(stack_top: usize, from: usize, out: &mut [u64]) -> usize {
    let Some((_, sp)) = registers() else {
        return 0;
    };
    let mut fp = from;
    if stack_top == 0 {
        return 0;
    }
    let word = core::mem::size_of::<usize>();
    let mut n = 0;
    while n < out.len() {
        // The frame record is two words at `fp`: caller's fp, return address.
        // It must lie between our stack pointer and the stack's top.
        if fp < sp
            || !fp.is_multiple_of(word)
            || fp.checked_add(2 * word).is_none_or(|e| e > stack_top)
        {
            break;
        }
        // SAFETY: `fp` is aligned and the two words lie between our own frame
        // (the first `fp` is this function's, and each next one is checked to
        // be higher) and the top of this thread's stack: mapped memory of our
        // own stack. Volatile: these are other frames' bytes, not our values.
        let (next, ret) = unsafe {
            (
                core::ptr::read_volatile(fp as *const usize),
                core::ptr::read_volatile((fp + word) as *const usize),
            )
        };
        // A return address points into loaded code; anything else means the
        // chain was not a frame-pointer chain (a frame without one).
        if !is_code(ret) {
            break;
        }
        out[n] = ret as u64;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// The frame pointer register of the calling function (0 where unknown).
/// Inlined into the `GlobalAlloc` methods, it is the frame the stack walk
/// starts from.
#[inline(always)]
pub(crate) fn frame_address() -> usize {
    registers().map_or(0, |(fp, _)| fp)
}

/// The frame pointer and stack pointer registers.
#[inline(always)]
fn registers() -> Option<(usize, usize)> {
    // Miri cannot run inline assembly: no stacks there.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let (fp, sp): (usize, usize);
        // SAFETY: reads two registers, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp,
                options(nomem, nostack, preserves_flags))
        };
        Some((fp, sp))
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let (fp, sp): (usize, usize);
        // SAFETY: reads two registers, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, x29", "mov {}, sp", out(reg) fp, out(reg) sp,
                options(nomem, nostack, preserves_flags))
        };
        Some((fp, sp))
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        None
    }
}

const MAX_CODE_RANGES: usize = 128;
static CODE_START: [AtomicUsize; MAX_CODE_RANGES] =
    [const { AtomicUsize::new(0) }; MAX_CODE_RANGES];
static CODE_END: [AtomicUsize; MAX_CODE_RANGES] = [const { AtomicUsize::new(0) }; MAX_CODE_RANGES];
static CODE_RANGES: AtomicUsize = AtomicUsize::new(0);

/// Adds an executable segment `[start, end)`. Called by one thread at a time
/// (the recording's start, then the writer under its lock).
pub(crate) fn add_code_range(start: usize, end: usize) {
    // Relaxed: only the (single) caller writes the count.
    let n = CODE_RANGES.load(Ordering::Relaxed);
    if n == MAX_CODE_RANGES || (0..n).any(|i| CODE_START[i].load(Ordering::Relaxed) == start) {
        return;
    }
    // Relaxed: published by the Release store of the count.
    CODE_START[n].store(start, Ordering::Relaxed);
    CODE_END[n].store(end, Ordering::Relaxed);
    // Release: readers that see the new count see the range.
    CODE_RANGES.store(n + 1, Ordering::Release);
}

/// Whether `a` lies in the code of a loaded module. The executable comes
/// first, so most frames take one or two comparisons.
#[inline]
fn is_code(a: usize) -> bool {
    // Acquire: pairs with the Release in `add_code_range`.
    let n = CODE_RANGES.load(Ordering::Acquire);
    (0..n).any(|i| {
        // Relaxed: ordered by the Acquire above.
        a >= CODE_START[i].load(Ordering::Relaxed) && a < CODE_END[i].load(Ordering::Relaxed)
    })
}

/// The highest address of the calling thread's stack, or 0 when unknown.
/// May allocate through libc's `malloc` (glibc reads /proc/self/maps for the
/// main thread), never through Rust's global allocator.
pub(crate) fn current_stack_top() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `attr` is initialised by `pthread_getattr_np` before use and
        // destroyed after; the out-pointers are valid locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return 0;
            }
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if ok {
                (addr as usize).saturating_add(size)
            } else {
                0
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_interns_and_evicts() {
        let mut t: Box<StackTable> = Box::new(StackTable {
            keys: [0; TABLE],
            ids: [0; TABLE],
            next_id: 0,
        });
        let a = [1u64, 2, 3];
        let Lookup::New { id, key, at } = t.lookup(&a) else {
            panic!("empty table knows a stack")
        };
        assert_eq!(id, 0);
        t.insert(id, key, at);
        assert!(matches!(t.lookup(&a), Lookup::Known(0)));
        let Lookup::New { id: id2, .. } = t.lookup(&[1, 2]) else {
            panic!("prefix is another stack")
        };
        assert_eq!(id2, 1);
        t.clear();
        assert!(matches!(t.lookup(&a), Lookup::New { id: 0, .. }));
    }

    #[test]
    fn walk_stays_on_the_stack() {
        for m in crate::modules::scan() {
            for (s, e) in m.exec {
                add_code_range(s as usize, e as usize);
            }
        }
        let top = current_stack_top();
        let mut out = [0u64; MAX_DEPTH];
        let n = capture(top, frame_address(), &mut out);
        // Whatever the build flags, every address is non-zero and the walk ended.
        assert!(n <= MAX_DEPTH);
        assert!(out[..n].iter().all(|&a| a != 0));
        assert_eq!(capture(0, 0, &mut out), 0, "no known stack top: no walk");
    }
}
