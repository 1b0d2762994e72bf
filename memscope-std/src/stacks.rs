//! Call stacks by frame-pointer walking, and the per-thread table that sends
//! each distinct stack once.
//!
//! # How a stack is captured
//!
//! With frame pointers every function's frame starts with the caller's frame
//! pointer and the return address (x86_64: `rbp`, aarch64: `x29`). The walk
//! follows that chain from the allocator call upwards, taking one return
//! address per frame, and stops at the configured depth, at a return address
//! outside loaded code (null included), or at the first frame pointer that
//! is not above the previous one or whose frame record (two words) would not
//! end below the top of the thread's stack. Because every frame it reads
//! lies between the current frame and the stack top, it only reads mapped
//! stack memory, whatever the frame pointers hold.
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
//! # What a walk costs
//!
//! The walk is the record path's largest part with stacks on, so each frame
//! does the least that keeps the rules above: two loads, one range check of
//! the return address against the executable's code (a frame elsewhere is
//! checked against the module where this thread's last such frame was —
//! libc, for every thread's entry frame — and only then, out of line,
//! against every module), one multiply-rotate step of the stack's hash, and
//! the two bounds checks of the next frame record. On x86_64 that loop is a
//! few lines of assembly, 14 instructions a frame: compiled inside the
//! record path it lost registers to the code around it and took 19 to 20.
//!
//! The hash is computed during the walk and the addresses are not written
//! down: a stack the thread has sent before (nearly every event) costs the
//! walk and one table lookup. Only a stack the table does not know is walked
//! a second time, writing its addresses for the `Stack` record, and the key
//! the table then stores is that second walk's own hash — the key of a
//! stack id is always the hash of exactly the addresses sent under it.
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

/// The interning table, and the walk's memory of this thread's code ranges.
/// All-zero is empty (a key of 0 is never stored).
pub(crate) struct StackTable {
    keys: [u64; TABLE],
    ids: [u32; TABLE],
    next_id: u32,
    code: CodeRanges,
    /// The lowest address of this thread's stack: a walk starts only when
    /// the stack pointer is at or above it, so that everything between the
    /// stack pointer and the top is this stack's mapped memory. 0 until the
    /// thread's first walk looks it up; `usize::MAX` when unknown (then no
    /// walk starts).
    bottom: usize,
}

/// The code ranges a walk checks each return address against without a
/// search. `repr(C)`: the x86_64 walk reads the fields by their offsets.
#[repr(C)]
struct CodeRanges {
    /// The executable's code, as start and length: copied from the module
    /// scan's first range by the thread's first walk that finds it known, a
    /// load from the table rather than the shared list's count and bounds.
    /// (0, 0) until then.
    exe_start: usize,
    exe_len: usize,
    /// The executable range, other than the executable's, that held the
    /// latest return address found outside the executable — usually
    /// libc's, which holds every thread's entry frame — as its start's
    /// offset from `exe_start` (the walk hashes offsets) and its length.
    /// (0, 0) when none yet.
    other_offset: usize,
    other_len: usize,
}

/// Result of [`StackTable::intern`].
pub(crate) enum Lookup {
    /// Sent before under this id.
    Known(u32),
    /// Not sent: send it under `id`, then call [`StackTable::insert`].
    New { id: u32, key: u64, at: usize },
}

impl StackTable {
    /// The thread's first walk: looks up the lowest address of its stack
    /// (see [`first_record`]) and keeps it; `usize::MAX` when unknown.
    #[cold]
    #[inline(never)]
    fn look_up_bottom(&mut self) -> usize {
        self.bottom = match current_stack() {
            Some((bottom, _)) if bottom != 0 => bottom,
            _ => usize::MAX,
        };
        self.bottom
    }

    /// Whether the stack of `walk` (non-empty) was sent before.
    #[inline]
    pub(crate) fn intern(&self, walk: &Walk) -> Lookup {
        match walk.known {
            Some(id) => Lookup::Known(id),
            None => self.find(walk.key),
        }
    }

    #[inline(always)]
    fn find(&self, key: u64) -> Lookup {
        let home = home_of(key);
        if self.keys[home] == key {
            return Lookup::Known(self.ids[home]);
        }
        self.probe(key, home)
    }

    /// [`find`](Self::find) past the home entry: the other probes, and where
    /// a new stack goes.
    #[inline(never)]
    fn probe(&self, key: u64, home: usize) -> Lookup {
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

    /// Forgets every stack (a new stream starts on a reused slot) and the
    /// stack bottom, which was the previous thread's: kept, it made the new
    /// thread's walks stop at once whenever its stack lay below the old one
    /// (a four-thread test lost every stack of a worker that took an exited
    /// one's slot, in about one run in twenty).
    pub(crate) fn clear(&mut self) {
        self.keys = [0; TABLE];
        self.next_id = 0;
        self.bottom = 0;
    }
}

/// Where the table looks for `key` first: its top 12 bits (TABLE = 4096).
/// Most stacks are found where they were put first.
#[inline(always)]
fn home_of(key: u64) -> usize {
    (key >> 52) as usize
}

/// The hash of an empty stack; [`mix`] folds in one address at a time, so
/// the walk hashes as it goes and never reads the addresses back.
const SEED: u64 = 0x243f_6a88_85a3_08d3;

/// One multiply and a rotate per address (three instructions on the walk's
/// path): the multiply carries each address's low bits (where return
/// addresses of one module differ) into the high bits that pick the table
/// entry, and the rotate brings high bits back down, so that a difference in
/// one address spreads over the whole key before the next is folded in.
/// Each step is a bijection of the key, so two stacks of the same depth that
/// differ in one address have different hashes; only [`finish`]'s `| 1` could
/// merge them, when those differ in the lowest bit alone.
#[inline(always)]
fn mix(h: u64, a: u64) -> u64 {
    (h ^ a).wrapping_mul(MIX_FACTOR).rotate_left(29)
}

/// [`mix`]'s multiplier (2^64 / golden ratio, odd).
const MIX_FACTOR: u64 = 0x9e37_79b9_7f4a_7c15;

/// [`MIX_FACTOR`] in memory, where the x86_64 walk's multiply reads it (a
/// register fewer in its loop).
#[cfg(all(target_arch = "x86_64", not(miri)))]
static MIX_FACTOR_IN_MEMORY: u64 = MIX_FACTOR;

/// The table key of `frames`: what [`StackTable::capture`] returns for the
/// same addresses when the executable starts at `exe_start`.
#[cfg(test)]
fn key_of(frames: &[u64], exe_start: usize) -> u64 {
    let h = frames
        .iter()
        .fold(SEED, |h, &a| mix(h, a.wrapping_sub(exe_start as u64)));
    finish(h, frames.len())
}

/// Folds in the depth (a stack and its prefix differ) and keeps the key
/// nonzero (0 marks an empty table entry).
#[inline(always)]
fn finish(h: u64, depth: usize) -> u64 {
    mix(h, depth as u64) | 1
}

/// A captured call stack: its depth and key for [`StackTable::intern`] (0
/// when `depth` is 0), and its id when the walk found it at its home entry;
/// `out[..depth]` of [`StackTable::capture`]'s buffer holds its addresses
/// only when `known` is `None`.
pub(crate) struct Walk {
    pub depth: usize,
    pub key: u64,
    known: Option<u32>,
}

impl StackTable {
    /// Walks the call chain that starts at frame address `from` (the
    /// allocator method's frame, so memscope's own frames are not in it),
    /// up to `out.len()` frames, hashing the return addresses on the way,
    /// and looks the hash up in the table. `stack_top` is the highest
    /// address of the current thread's stack (0 when unknown: then nothing
    /// is captured).
    ///
    /// A stack found there is not written down: [`intern`](Self::intern)
    /// answers with its id and nothing reads `out`. Otherwise the chain is
    /// walked a second time, out of line, writing the return addresses to
    /// `out` (innermost first), and the returned depth and key are that
    /// second walk's: whatever the second walk finds, the key stored with a
    /// stack is always the hash of the very addresses sent for it. (Both
    /// walks read the same frames — this thread's callers, suspended in the
    /// allocator call — and only a module loaded in between could make them
    /// differ.)
    #[inline(always)]
    pub(crate) fn capture(&mut self, stack_top: usize, from: usize, out: &mut [u64]) -> Walk {
        let none = Walk {
            depth: 0,
            key: 0,
            known: None,
        };
        let bottom = match self.bottom {
            0 => self.look_up_bottom(),
            b => b,
        };
        let Some(limit) = first_record(bottom, stack_top, from) else {
            return none;
        };
        let (n, h) = self.hash_chain(from, limit, out.len());
        if n == 0 {
            return none;
        }
        let key = finish(h, n);
        let home = home_of(key);
        if self.keys[home] == key {
            return Walk {
                depth: n,
                key,
                known: Some(self.ids[home]),
            };
        }
        self.capture_away_from_home(
            Walk {
                depth: n,
                key,
                known: None,
            },
            from,
            limit,
            out,
        )
    }

    /// [`capture`](Self::capture) of a stack not at its home entry: in
    /// another probe, or new (then walked again to write the addresses).
    /// Out of line, so that `capture` keeps nothing in registers for it.
    #[cold]
    #[inline(never)]
    fn capture_away_from_home(
        &mut self,
        walk: Walk,
        from: usize,
        limit: usize,
        out: &mut [u64],
    ) -> Walk {
        match self.probe(walk.key, home_of(walk.key)) {
            Lookup::Known(id) => Walk {
                known: Some(id),
                ..walk
            },
            Lookup::New { .. } => {
                let (depth, key) = self.capture_addresses(from, limit, out);
                Walk {
                    depth,
                    key,
                    known: None,
                }
            }
        }
    }

    /// The depth and hash of the chain from `from` (as
    /// [`follow`](Self::follow) computes them, without writing addresses).
    #[inline(always)]
    fn hash_chain(&mut self, from: usize, limit: usize, max: usize) -> (usize, u64) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            self.climb(from, limit, max)
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            self.know_exe_code();
            self.follow::<false>(from, limit, max, core::ptr::null_mut())
        }
    }

    /// [`follow`](Self::follow)'s loop without the writes, in assembly:
    /// compiled, the loop lost registers to the record path around it
    /// (constants reloaded and bounds spilled each frame) and took 19 to 20
    /// instructions a frame; this one takes 14 (unrolled twice, so that no
    /// move passes a frame pointer on), and reads the ranges and the hash's
    /// multiplier from memory so that it needs eight registers. It
    /// stops at a return address outside both ranges of `code`; the module
    /// search then runs here and the loop resumes at the same frame when it
    /// found one.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[inline(always)]
    fn climb(&mut self, from: usize, limit: usize, max: usize) -> (usize, u64) {
        let mut fp = from;
        let mut h = SEED;
        let mut left = max;
        while left != 0 {
            let unknown: usize;
            // SAFETY: the assembly reads the two words at `fp` only while
            // `sp <= fp <= limit` — the first `fp` is checked by
            // `first_record`, each next one by the same two comparisons as
            // `follow` (above the previous record, at most `limit`) — so
            // every read lies on this thread's own stack, mapped memory
            // (unaligned reads are fine on x86_64); its other reads are the
            // four words of `self.code` (`repr(C)`, borrowed for the block)
            // and a static. It writes only its register operands, uses no
            // stack and clobbers the flags (no `preserves_flags`).
            unsafe {
                core::arch::asm!(
                    "2:",
                    "mov {next}, qword ptr [{fp}]",
                    "mov {ret}, qword ptr [{fp} + 8]",
                    // The offset from the executable's start: the hashed
                    // value, and in range when below its length.
                    "sub {ret}, qword ptr [{code}]",
                    "cmp {ret}, qword ptr [{code} + 8]",
                    "jae 5f",
                    "3:",
                    "xor {h}, {ret}",
                    "imul {h}, qword ptr [rip + {k}]",
                    "rol {h}, 29",
                    "cmp {next}, {fp}",
                    "jbe 4f",
                    "cmp {next}, {limit}",
                    "ja 4f",
                    "dec {left}",
                    "jz 8f",
                    // The next frame, with the two registers' roles swapped
                    // (the frame at `next`, its caller's into `fp`): no move
                    // between frames.
                    "mov {fp}, qword ptr [{next}]",
                    "mov {ret}, qword ptr [{next} + 8]",
                    "sub {ret}, qword ptr [{code}]",
                    "cmp {ret}, qword ptr [{code} + 8]",
                    "jae 15f",
                    "13:",
                    "xor {h}, {ret}",
                    "imul {h}, qword ptr [rip + {k}]",
                    "rol {h}, 29",
                    "cmp {fp}, {next}",
                    "jbe 4f",
                    "cmp {fp}, {limit}",
                    "ja 4f",
                    "dec {left}",
                    "jnz 2b",
                    // The depth is reached.
                    "8:",
                    "xor {unknown:e}, {unknown:e}",
                    "jmp 6f",
                    // Stopped after taking the frame (the chain ends here).
                    "4:",
                    "dec {left}",
                    "xor {unknown:e}, {unknown:e}",
                    "jmp 6f",
                    // Outside the executable: the other module's range, its
                    // start an offset from the executable's too.
                    "5:",
                    "sub {ret}, qword ptr [{code} + 16]",
                    "cmp {ret}, qword ptr [{code} + 24]",
                    "jae 7f",
                    "add {ret}, qword ptr [{code} + 16]",
                    "jmp 3b",
                    "15:",
                    "sub {ret}, qword ptr [{code} + 16]",
                    "cmp {ret}, qword ptr [{code} + 24]",
                    "jae 17f",
                    "add {ret}, qword ptr [{code} + 16]",
                    "jmp 13b",
                    // Outside both: the frame is not taken, and `fp` is its
                    // address for the search below.
                    "17:",
                    "mov {fp}, {next}",
                    "7:",
                    "mov {unknown:e}, 1",
                    "6:",
                    fp = inout(reg) fp,
                    h = inout(reg) h,
                    left = inout(reg) left,
                    next = out(reg) _,
                    ret = out(reg) _,
                    unknown = out(reg) unknown,
                    code = in(reg) &self.code,
                    limit = in(reg) limit,
                    k = sym MIX_FACTOR_IN_MEMORY,
                    options(nostack, readonly),
                );
            }
            if unknown == 0 {
                break;
            }
            // The thread's first walk: hash it again with the executable's
            // start known (offsets from 0 so far).
            if self.know_exe_code() {
                (fp, h, left) = (from, SEED, max);
                continue;
            }
            // SAFETY: the assembly stopped at `fp` without moving past it:
            // `sp <= fp <= limit`, as for its own reads.
            let ret = unsafe { core::ptr::read_unaligned((fp + WORD) as *const usize) };
            if !find_other_code(&mut self.code, ret) {
                break;
            }
        }
        (max - left, h)
    }

    /// [`capture`](Self::capture)'s second walk, writing the addresses.
    /// Returns the depth and key (in registers, not through memory).
    #[inline(never)]
    fn capture_addresses(&mut self, from: usize, limit: usize, out: &mut [u64]) -> (usize, u64) {
        self.know_exe_code();
        let (n, h) = self.follow::<true>(from, limit, out.len(), out.as_mut_ptr());
        (n, if n == 0 { 0 } else { finish(h, n) })
    }

    /// Copies the executable's range from the module scan when not done
    /// yet; returns whether it changed (the other module's offset, taken
    /// from the old start, is then forgotten).
    #[cold]
    fn know_exe_code(&mut self) -> bool {
        if self.code.exe_len != 0 {
            return false;
        }
        (self.code.exe_start, self.code.exe_len) = first_code_range();
        (self.code.other_offset, self.code.other_len) = (0, 0);
        self.code.exe_len != 0
    }

    /// Follows the frame-pointer chain from the record at `from` (checked
    /// by [`first_record`]: between the stack pointer and `limit`) for up to
    /// `max` frames; returns how many return addresses it took and their
    /// hash, and writes them to `out[..n]` when `STORE`.
    ///
    /// Per frame: two loads, a range check of the return address against the
    /// executable's code (then against the other module this thread's walks
    /// passed through last, and, out of line, the search over every module
    /// only when that fails), the hash step, and the bounds check of the
    /// next frame record.
    #[inline(always)]
    fn follow<const STORE: bool>(
        &mut self,
        from: usize,
        limit: usize,
        max: usize,
        out: *mut u64,
    ) -> (usize, u64) {
        let (exe_start, exe_len) = (self.code.exe_start, self.code.exe_len);
        let mut fp = from;
        let mut h = SEED;
        let mut n = 0;
        while n != max {
            // SAFETY: `sp <= fp <= limit`: the frame record's two words lie
            // between our own frame and the top of this thread's stack,
            // mapped memory of our own stack (the first `fp` is checked by
            // `first_record`, each next one below). Unaligned reads: a frame
            // pointer that is not a multiple of the word size is junk, but
            // reading it is as safe as any other address on the stack, and
            // the return address check below ends the walk there — cheaper
            // than testing the alignment of every frame.
            let (next, ret) = unsafe {
                (
                    core::ptr::read_unaligned(fp as *const usize),
                    core::ptr::read_unaligned((fp + WORD) as *const usize),
                )
            };
            // A return address points into loaded code; anything else means
            // the chain was not a frame-pointer chain (a frame without one).
            // Most lie in the executable; the rest are checked aside. The
            // hash takes the offset from the executable's start (one
            // register fewer in the loop; a bijection of the address).
            let offset = ret.wrapping_sub(exe_start);
            if offset >= exe_len && !self.in_other_code(offset) {
                break;
            }
            if STORE {
                // SAFETY: `n < max`, the caller's room at `out`.
                unsafe { out.add(n).write(offset.wrapping_add(exe_start) as u64) };
            }
            n += 1;
            h = mix(h, offset as u64);
            // The caller's record lies above this one (stacks grow down: a
            // chain that does not climb is not a frame-pointer chain) and
            // starts at or below `limit`, so it lies on the stack too.
            if next <= fp || next > limit {
                break;
            }
            fp = next;
        }
        (n, h)
    }

    /// Whether the return address at `offset` from the executable's start
    /// lies in a module's code outside the executable: first in the module
    /// this thread's walks found last, then (out of line) in every module.
    #[inline(always)]
    fn in_other_code(&mut self, offset: usize) -> bool {
        let c = &mut self.code;
        offset.wrapping_sub(c.other_offset) < c.other_len
            || find_other_code(c, offset.wrapping_add(c.exe_start))
    }
}

const WORD: usize = core::mem::size_of::<usize>();
/// A frame record: the caller's frame pointer, then the return address.
const RECORD: usize = 2 * WORD;

/// The highest address a frame record may start at (a record must end at
/// or below `stack_top`), when `from` is a frame record's address between
/// the stack pointer and there; `None` otherwise (no stack to walk).
///
/// The stack pointer must lie in this thread's stack (`bottom` and up): on
/// a signal handler's alternate stack, a `stacker` segment or a coroutine's
/// stack, the range from the stack pointer to the thread's top may cross
/// unmapped memory, and a stray frame pointer there would fault. Such a
/// call gets no stack.
#[inline(always)]
fn first_record(bottom: usize, stack_top: usize, from: usize) -> Option<usize> {
    let sp = stack_pointer()?;
    let limit = stack_top.checked_sub(RECORD)?;
    (sp >= bottom && from >= sp && from <= limit).then_some(limit)
}

/// Whether `a` lies in a module's code outside the executable, searching all
/// of them (the one found last was not it); remembers the one found as
/// `code`'s other module.
#[cold]
#[inline(never)]
fn find_other_code(code: &mut CodeRanges, a: usize) -> bool {
    match code_range_of(a) {
        Some((start, len)) => {
            code.other_offset = start.wrapping_sub(code.exe_start);
            code.other_len = len;
            true
        }
        None => false,
    }
}

/// The frame pointer register of the calling function (0 where unknown).
/// Inlined into the `GlobalAlloc` methods, it is the frame the stack walk
/// starts from.
#[inline(always)]
pub(crate) fn frame_address() -> usize {
    // Miri cannot run inline assembly: no stacks there.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let fp: usize;
        // SAFETY: reads a register, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let fp: usize;
        // SAFETY: reads a register, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        0
    }
}

/// The stack pointer register (`None` where stacks are not walked).
#[inline(always)]
fn stack_pointer() -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let sp: usize;
        // SAFETY: reads a register, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        Some(sp)
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let sp: usize;
        // SAFETY: reads a register, touches no memory.
        unsafe {
            core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        Some(sp)
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

/// The first executable range (the executable's: the module scan lists it
/// first) as (start, length); (0, 0) before any is known.
#[inline(always)]
fn first_code_range() -> (usize, usize) {
    // Acquire: pairs with the Release in `add_code_range`.
    if CODE_RANGES.load(Ordering::Acquire) == 0 {
        return (0, 0);
    }
    // Relaxed: ordered by the Acquire above.
    let start = CODE_START[0].load(Ordering::Relaxed);
    (start, CODE_END[0].load(Ordering::Relaxed) - start)
}

/// The executable range that holds `a`, as (start, length).
#[inline(never)]
fn code_range_of(a: usize) -> Option<(usize, usize)> {
    // Acquire: pairs with the Release in `add_code_range`.
    let n = CODE_RANGES.load(Ordering::Acquire);
    (0..n.min(MAX_CODE_RANGES)).find_map(|i| {
        // Relaxed: ordered by the Acquire above.
        let start = CODE_START[i].load(Ordering::Relaxed);
        let end = CODE_END[i].load(Ordering::Relaxed);
        (a >= start && a < end).then(|| (start, end - start))
    })
}

/// The highest address of the calling thread's stack, or 0 when unknown.
/// May allocate through libc's `malloc` (glibc reads /proc/self/maps for the
/// main thread), never through Rust's global allocator.
pub(crate) fn current_stack_top() -> usize {
    current_stack().map_or(0, |(bottom, size)| bottom.saturating_add(size))
}

/// The lowest address and the size of the calling thread's stack, when
/// known. As [`current_stack_top`] for allocation.
fn current_stack() -> Option<(usize, usize)> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `attr` is initialised by `pthread_getattr_np` before use and
        // destroyed after; the out-pointers are valid locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return None;
            }
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            ok.then_some((addr as usize, size))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_table() -> Box<StackTable> {
        Box::new(StackTable {
            keys: [0; TABLE],
            ids: [0; TABLE],
            next_id: 0,
            code: CodeRanges {
                exe_start: 0,
                exe_len: 0,
                other_offset: 0,
                other_len: 0,
            },
            bottom: 0,
        })
    }

    #[test]
    fn table_interns_and_evicts() {
        let mut t = empty_table();
        let a = key_of(&[1u64, 2, 3], 0);
        let Lookup::New { id, key, at } = t.find(a) else {
            panic!("empty table knows a stack")
        };
        assert_eq!(id, 0);
        t.insert(id, key, at);
        assert!(matches!(t.find(a), Lookup::Known(0)));
        let Lookup::New { id: id2, .. } = t.find(key_of(&[1, 2], 0)) else {
            panic!("prefix is another stack")
        };
        assert_eq!(id2, 1);
        t.clear();
        assert!(matches!(t.find(a), Lookup::New { id: 0, .. }));
    }

    #[test]
    fn table_keys_tell_stacks_apart() {
        // Stacks that differ in one address, in its order, in a prefix, or
        // only in high bits get different keys, none of them 0.
        let base = [0x5555_0000_1234u64, 0x5555_0000_5678, 0x7f00_0000_9abc];
        let mut keys = vec![key_of(&base, 0), key_of(&base[..2], 0), key_of(&[], 0)];
        for i in 0..base.len() {
            for bit in [0, 1, 4, 12, 40, 63] {
                let mut s = base;
                s[i] ^= 1 << bit;
                keys.push(key_of(&s, 0));
            }
        }
        keys.push(key_of(&[base[1], base[0], base[2]], 0));
        assert!(keys.iter().all(|&k| k != 0));
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "two stacks share a key");
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads the stack pointer with inline assembly")]
    fn no_walk_unless_the_stack_pointer_is_in_the_thread_stack() {
        let (bottom, size) = current_stack().expect("this thread's stack");
        let top = bottom + size;
        let from = frame_address();
        let sp = stack_pointer().expect("x86_64 or aarch64");
        assert!(
            first_record(bottom, top, from).is_some(),
            "on its own stack"
        );
        // As on an alternate signal stack below the thread's stack: the
        // stack pointer lies below the bottom, and nothing is walked.
        assert!(first_record(sp + 1, top, from).is_none());
        let mut t = empty_table();
        t.bottom = sp + 1;
        let mut out = [0u64; MAX_DEPTH];
        assert_eq!(t.capture(top, from, &mut out).depth, 0);
        // The thread's first walk looks the bottom up itself.
        let mut t = empty_table();
        t.capture(top, frame_address(), &mut out);
        assert_eq!(t.bottom, bottom);
        // So does the first walk of a thread that takes over a slot whose
        // table held another thread's bottom.
        t.bottom = sp + 1;
        t.clear();
        t.capture(top, frame_address(), &mut out);
        assert_eq!(t.bottom, bottom);
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
        let mut t = empty_table();
        let w = t.capture(top, frame_address(), &mut out);
        // Whatever the build flags, every address is code and the walk ended.
        assert!(w.depth <= MAX_DEPTH);
        assert!(out[..w.depth]
            .iter()
            .all(|&a| code_range_of(a as usize).is_some()));
        if w.depth > 0 {
            assert_eq!(
                w.key,
                key_of(&out[..w.depth], t.code.exe_start),
                "hashed on the way"
            );
        }
        let again = t.capture(top, frame_address(), &mut out);
        assert_eq!(again.depth, w.depth, "the range memory changes nothing");
        assert_eq!(again.key, w.key);
        if w.depth > 0 {
            // Once the table knows the stack, the walk answers with its id
            // and leaves the addresses alone.
            let Lookup::New { id, key, at } = t.intern(&again) else {
                panic!("an empty table knows a stack")
            };
            t.insert(id, key, at);
            out.fill(0);
            let known = t.capture(top, frame_address(), &mut out);
            assert_eq!((known.depth, known.key), (w.depth, w.key));
            assert!(matches!(t.intern(&known), Lookup::Known(i) if i == id));
            assert!(out.iter().all(|&a| a == 0), "a known stack is not written");
        }
        let short = t.capture(top, frame_address(), &mut out[..1]);
        assert!(short.depth <= 1, "the depth limit holds");
        let none = t.capture(0, 0, &mut out);
        assert_eq!(
            (none.depth, none.key),
            (0, 0),
            "no known stack top: no walk"
        );
    }
}
