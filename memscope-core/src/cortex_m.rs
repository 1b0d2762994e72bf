//! Cortex-M timestamps and call sites (feature `cortex-m`).
//!
//! - [`DwtClock`]: the DWT cycle counter (CYCCNT), extended past its 32-bit
//!   wrap. ARMv7-M and later; a Cortex-M0 (thumbv6m) has no cycle counter and
//!   uses [`NoClock`](crate::NoClock).
//! - [`FrameChain`]: call sites from a bounded walk of the r7 frame chain, as a
//!   [`StackSource`] for [`Stream::with_stacks`](crate::Stream::with_stacks).
//!   Build with `-C force-frame-pointers=yes` so thumb code keeps r7 as its
//!   frame pointer; without it the walk finds garbage, which its bounds turn
//!   into short stacks rather than faults.

use crate::stack::{Interned, StackSource, StackTable};
#[cfg(target_has_atomic = "32")]
use portable_atomic::{AtomicU32, Ordering::Relaxed};

/// Timestamps from the DWT cycle counter, in core clock cycles.
///
/// CYCCNT is 32 bits wide (a minute at 64 MHz); each [`now`](crate::Clock::now)
/// notices a wrap by comparing with the previous reading and carries into the
/// upper 32 bits. That is exact as long as two readings are less than 2³²
/// cycles apart: call `now` from a periodic interrupt as well when the
/// firmware may not allocate for that long.
///
/// Until [`start`](Self::start) succeeds the clock reads 0 and announces 0
/// ticks per second ("no clock"), which is also what it says on a core or
/// emulator whose counter does not run (QEMU does not model CYCCNT).
#[cfg(target_has_atomic = "32")] // i.e. not thumbv6m, whose DWT has no CYCCNT
#[derive(Debug)]
pub struct DwtClock {
    hz: u32,
    /// Core clock while the counter runs, 0 before.
    running_hz: AtomicU32,
    last_low: AtomicU32,
    high: AtomicU32,
}

#[cfg(target_has_atomic = "32")]
impl DwtClock {
    /// A clock for a core running at `core_hz`. Usable in a `static`.
    pub const fn new(core_hz: u32) -> Self {
        DwtClock {
            hz: core_hz,
            running_hz: AtomicU32::new(0),
            last_low: AtomicU32::new(0),
            high: AtomicU32::new(0),
        }
    }

    /// Enables trace and the cycle counter and checks that it counts. Call it
    /// before the first allocation (the stream header announces the rate).
    /// Returns whether the counter runs.
    pub fn start(
        &self,
        dcb: &mut cortex_m::peripheral::DCB,
        dwt: &mut cortex_m::peripheral::DWT,
    ) -> bool {
        use cortex_m::peripheral::DWT;
        if !DWT::has_cycle_counter() {
            return false;
        }
        dcb.enable_trace();
        dwt.enable_cycle_counter();
        let a = DWT::cycle_count();
        for _ in 0..16 {
            core::hint::spin_loop();
        }
        let runs = DWT::cycle_count() != a;
        if runs {
            critical_section::with(|_| {
                self.last_low.store(DWT::cycle_count(), Relaxed);
                // Relaxed throughout: the counters are only touched inside
                // critical sections, which order them on a single core.
                self.running_hz.store(self.hz, Relaxed);
            });
        }
        runs
    }

    #[inline]
    fn read(&self) -> u64 {
        {
            if self.running_hz.load(Relaxed) == 0 {
                return 0;
            }
            // A critical section makes read-compare-store one step even when
            // `now` is called outside a recorder (nested, it costs a few
            // instructions).
            critical_section::with(|_| {
                let low = cortex_m::peripheral::DWT::cycle_count();
                // Relaxed: single core, and we are inside a critical section.
                let (high, now) = extend(self.last_low.load(Relaxed), self.high.load(Relaxed), low);
                self.high.store(high, Relaxed);
                self.last_low.store(low, Relaxed);
                now
            })
        }
    }
}

#[cfg(target_has_atomic = "32")]
impl crate::clock::Clock for DwtClock {
    #[inline]
    fn now(&self) -> u64 {
        self.read()
    }

    fn ticks_per_second(&self) -> u64 {
        // Relaxed: a rate that is set once, before the first event.
        u64::from(self.running_hz.load(Relaxed))
    }
}

/// Extends a 32-bit counter reading `low` to 64 bits, given the previous
/// reading and the upper half so far: a reading below the previous one means
/// the counter wrapped once. Returns the new upper half and the timestamp.
#[cfg_attr(not(target_has_atomic = "32"), allow(dead_code))]
fn extend(last_low: u32, high: u32, low: u32) -> (u32, u64) {
    let high = if low < last_low {
        high.wrapping_add(1)
    } else {
        high
    };
    (high, (u64::from(high) << 32) | u64::from(low))
}

/// EXC_RETURN values (0xFFFFFFxx) are what LR holds inside an exception
/// handler: the chain ends there, the interrupted code's frame is not ours to
/// trust (it may be on the other stack).
#[cfg_attr(not(all(target_arch = "arm", target_os = "none")), allow(dead_code))]
const EXC_RETURN_MIN: u32 = 0xFFFF_FF00;

/// Call sites from the r7 frame chain: each thumb frame with a frame pointer
/// starts with `push {r7, lr}` (plus other registers below) and points r7 at
/// the saved r7, so `[r7]` is the caller's frame and `[r7 + 4]` the return
/// address.
///
/// The walk reads only words between the current stack pointer and the
/// stack top given to [`set_stack_top`](Self::set_stack_top), requires every
/// frame to lie above the previous one (so it ends), stops at `DEPTH`
/// frames, at an EXC_RETURN value and at a null or misaligned pointer. Before
/// a stack top is set it captures nothing.
///
/// Stacks are interned in a table of `SLOTS` entries (8 bytes each). The
/// innermost frames are memscope's and the allocator shims': the host trims them.
pub struct FrameChain<const DEPTH: usize = 8, const SLOTS: usize = 32> {
    stack_top: usize,
    table: StackTable<SLOTS>,
}

impl<const DEPTH: usize, const SLOTS: usize> FrameChain<DEPTH, SLOTS> {
    /// A walker with no stack bounds yet. Usable in a `static`.
    pub const fn new() -> Self {
        FrameChain {
            stack_top: 0,
            table: StackTable::new(),
        }
    }

    /// Bounds the walk by the top of the stack (the initial stack pointer;
    /// cortex-m-rt's `_stack_start`).
    pub const fn with_stack_top(mut self, top: usize) -> Self {
        self.stack_top = top;
        self
    }

    /// Sets the stack top at run time (a linker symbol's address is not a
    /// constant).
    pub fn set_stack_top(&mut self, top: usize) {
        self.stack_top = top;
    }
}

impl<const DEPTH: usize, const SLOTS: usize> Default for FrameChain<DEPTH, SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

/// Walks a frame chain starting at `fp`, reading memory through `read` only
/// for 8-byte records inside `[low, high)`. Split from the register access so
/// the host can test it.
#[cfg_attr(not(all(target_arch = "arm", target_os = "none")), allow(dead_code))]
fn walk(fp: usize, low: usize, high: usize, read: impl Fn(usize) -> u32, out: &mut [u64]) -> usize {
    let mut n = 0;
    let mut fp = fp;
    while n < out.len() {
        // The record is two words at `fp`; it must lie in the live stack.
        if !fp.is_multiple_of(4) || fp < low || fp.checked_add(8).is_none_or(|end| end > high) {
            break;
        }
        let next = read(fp) as usize;
        let ret = read(fp + 4);
        if ret >= EXC_RETURN_MIN || ret == 0 {
            break;
        }
        // Clear the thumb bit: the host wants the address of the instruction.
        out[n] = u64::from(ret & !1);
        n += 1;
        // Callers' frames are at higher addresses; anything else is a broken
        // chain (and would let the walk loop).
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

impl<const DEPTH: usize, const SLOTS: usize> StackSource for FrameChain<DEPTH, SLOTS> {
    #[inline(never)]
    fn capture(&mut self, out: &mut [u64]) -> usize {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            if self.stack_top == 0 {
                return 0;
            }
            let fp: usize;
            let sp: usize;
            // SAFETY: reads two registers, touches no memory, keeps flags.
            unsafe {
                core::arch::asm!(
                    "mov {fp}, r7",
                    "mov {sp}, sp",
                    fp = out(reg) fp,
                    sp = out(reg) sp,
                    options(nomem, nostack, preserves_flags)
                );
            }
            let depth = DEPTH.min(out.len());
            walk(
                fp,
                sp,
                self.stack_top,
                // SAFETY: `walk` only reads aligned words inside
                // `[sp, stack_top)`, the live part of this core's stack.
                |addr| unsafe { core::ptr::read_volatile(addr as *const u32) },
                &mut out[..depth],
            )
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = out;
            0
        }
    }

    fn intern(&mut self, frames: &[u64]) -> Interned {
        self.table.intern(frames)
    }

    fn sent(&mut self, interned: Interned) {
        self.table.sent(interned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stack: word index -> value, based at 0x2000_0000.
    fn mem(words: &[(usize, u32)]) -> impl Fn(usize) -> u32 + '_ {
        move |addr| {
            words
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, v)| *v)
                .unwrap_or(0xDEAD_BEEF)
        }
    }

    #[test]
    fn the_cycle_counter_is_extended_past_its_wrap() {
        assert_eq!(extend(10, 0, 20), (0, 20));
        assert_eq!(extend(u32::MAX - 5, 0, 3), (1, (1 << 32) | 3));
        assert_eq!(extend(3, 1, 3), (1, (1 << 32) | 3), "same reading: no wrap");
        let mut t = (0u32, 0u64);
        let mut last = 0u32;
        for low in [100, u32::MAX, 7, 8, u32::MAX - 1, 0] {
            let next = extend(last, t.0, low);
            assert!(next.1 >= t.1, "monotonic");
            t = next;
            last = low;
        }
        assert_eq!(t.1, 2 << 32);
    }

    #[test]
    fn walks_until_exc_return() {
        let m = [
            (0x2000_0010, 0x2000_0020),
            (0x2000_0014, 0x0000_1235),
            (0x2000_0020, 0x2000_0040),
            (0x2000_0024, 0x0000_2001),
            (0x2000_0040, 0x2000_0080),
            (0x2000_0044, 0xFFFF_FFF9),
        ];
        let mut out = [0u64; 8];
        let n = walk(0x2000_0010, 0x2000_0000, 0x2000_1000, mem(&m), &mut out);
        assert_eq!(&out[..n], &[0x1234, 0x2000]);
    }

    #[test]
    fn stops_at_depth_bounds_and_loops() {
        let m = [
            (0x2000_0010, 0x2000_0020),
            (0x2000_0014, 0x101),
            (0x2000_0020, 0x2000_0010), // points back down: a loop
            (0x2000_0024, 0x201),
        ];
        let mut out = [0u64; 8];
        assert_eq!(
            walk(0x2000_0010, 0x2000_0000, 0x2000_1000, mem(&m), &mut out),
            2
        );
        let mut one = [0u64; 1];
        assert_eq!(
            walk(0x2000_0010, 0x2000_0000, 0x2000_1000, mem(&m), &mut one),
            1
        );
        // Frame record straddling the stack top, below the stack pointer, misaligned.
        assert_eq!(
            walk(0x2000_0ffc, 0x2000_0000, 0x2000_1000, mem(&m), &mut out),
            0
        );
        assert_eq!(
            walk(0x2000_0010, 0x2000_0100, 0x2000_1000, mem(&m), &mut out),
            0
        );
        assert_eq!(
            walk(0x2000_0012, 0x2000_0000, 0x2000_1000, mem(&m), &mut out),
            0
        );
    }
}
