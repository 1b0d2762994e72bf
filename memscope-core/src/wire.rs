//! Records: the events of a memscope stream and their byte encoding.
//!
//! A frame's payload (see [`crate::frame`]) holds one or more records. Every
//! record starts with a tag byte whose low three bits are its kind:
//!
//! | kind | record | fields after the tag |
//! |---|---|---|
//! | 0 | extension | ext kind, body length, body (postcard) |
//! | 1 | alloc | \[stack\] dts \[addr\] size \[align\] |
//! | 2 | alloc_zeroed | as alloc |
//! | 3 | dealloc | \[stack\] \[dts\] addr size \[align\] |
//! | 4 | realloc | \[stack\] dts old_addr old_size \[new_addr\] new_size \[align\] |
//! | 5 | sync | ts addr (absolute) |
//! | 6 | lost | count |
//! | 7 | reserved | a reader stops reading the frame |
//!
//! Heap events keep their alignment in bits 3–5 (`align = 1 << code`, code 7:
//! an explicit `align` varint follows), bit 6 says a stack id follows, bit 7
//! says the allocation failed (alloc, realloc) or that a dealloc carries its own
//! timestamp. `dts` is the timestamp's distance from the stream's previous one;
//! addresses are zigzag distances from the stream's previous address (a
//! realloc's new address from its old one). Which fields are present depends
//! only on the tag bits, so the hot records carry no length and cost a few bytes.
//!
//! Extension records carry their kind and length, so a reader skips kinds it
//! does not know; their bodies are postcard-serialized structs to which later
//! versions may append fields (readers ignore bytes past the fields they know).
//! docs/FORMAT.md is the byte-level description with a worked example.

use crate::varint::{self, VarintError};
use serde::{Deserialize, Serialize};

/// Version of the wire format written by this crate. Readers refuse streams of
/// a newer version; additions that old readers can skip do not bump it.
pub const FORMAT_VERSION: u16 = 1;

/// Leads the body of every [`Header`], so a reader can tell a memscope stream
/// from anything else.
pub const MAGIC: [u8; 4] = *b"MSCP";

/// Record kinds in the low three bits of the tag byte.
pub mod kind {
    /// Extension record: kind varint, length varint, body.
    pub const EXT: u8 = 0;
    /// `GlobalAlloc::alloc`.
    pub const ALLOC: u8 = 1;
    /// `GlobalAlloc::alloc_zeroed`.
    pub const ALLOC_ZEROED: u8 = 2;
    /// `GlobalAlloc::dealloc`.
    pub const DEALLOC: u8 = 3;
    /// `GlobalAlloc::realloc`.
    pub const REALLOC: u8 = 4;
    /// Absolute timestamp and address: the base for the deltas that follow.
    pub const SYNC: u8 = 5;
    /// Events that were dropped just before this point of the stream.
    pub const LOST: u8 = 6;
}

/// Extension kinds (the varint after a tag of kind [`kind::EXT`]).
pub mod ext {
    /// [`Header`](super::Header).
    pub const HEADER: u64 = 1;
    /// [`End`](super::End).
    pub const END: u64 = 2;
    /// [`Stack`](super::Stack).
    pub const STACK: u64 = 3;
    /// [`Thread`](super::Thread).
    pub const THREAD: u64 = 4;
    /// [`Record::ScopeEnter`](super::Record::ScopeEnter).
    pub const SCOPE_ENTER: u64 = 5;
    /// [`Record::ScopeExit`](super::Record::ScopeExit).
    pub const SCOPE_EXIT: u64 = 6;
    /// [`Name`](super::Name).
    pub const NAME: u64 = 7;
    /// [`Module`](super::Module).
    pub const MODULE: u64 = 8;
    /// [`Record::Mark`](super::Record::Mark).
    pub const MARK: u64 = 9;
    /// [`HeapRegion`](super::HeapRegion).
    pub const HEAP_REGION: u64 = 10;
    /// Frame number: read and written by [`crate::frame`]
    /// ([`SEQ_KIND`](crate::frame::SEQ_KIND), [`split_seq`](crate::frame::split_seq)),
    /// never a [`Record`](super::Record) of its own; a reader that does not
    /// take it off sees [`Record::Unknown`](super::Record::Unknown).
    pub const FRAME_SEQ: u64 = 11;
    /// [`Record::Watermark`](super::Record::Watermark).
    pub const WATERMARK: u64 = 12;
}

const KIND_MASK: u8 = 0b0000_0111;
const ALIGN_SHIFT: u8 = 3;
const ALIGN_MASK: u8 = 0b0011_1000;
const ALIGN_EXPLICIT: u8 = 7;
const FLAG_STACK: u8 = 0b0100_0000;
/// Alloc and realloc: the inner allocator returned null.
const FLAG_FAILED: u8 = 0b1000_0000;
/// Dealloc: an explicit timestamp delta follows.
const FLAG_TS: u8 = 0b1000_0000;

/// Largest stack a [`Stack`] record may carry; readers reject deeper ones.
pub const MAX_STACK_DEPTH: usize = 256;

/// The most bytes one heap-event record (alloc, dealloc or realloc) takes on
/// its own: tag, stack id, and at most six varints (a realloc's).
pub const MAX_HEAP_RECORD_LEN: usize = 1 + 5 + 10 * 6;

/// The most bytes one heap-event record (alloc, dealloc or realloc) takes,
/// including the lost and sync records the encoder may put before it.
pub const MAX_EVENT_LEN: usize = MAX_HEAP_RECORD_LEN + (1 + 10) + (1 + 10 + 10);

/// The per-stream base that timestamps and addresses are encoded against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Timestamp of the stream's previous record (ticks, or 0 without a clock).
    pub ts: u64,
    /// The stream's previous heap address.
    pub addr: u64,
}

/// `GlobalAlloc::alloc` or `alloc_zeroed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alloc {
    /// Taken after the inner allocator returned: an upper bound of the moment the
    /// block came to exist, which keeps frees of the same address before it.
    pub ts: u64,
    /// `None` when the inner allocator returned null.
    pub addr: Option<u64>,
    /// `Layout::size`.
    pub size: u64,
    /// `Layout::align`.
    pub align: u64,
    /// Through `alloc_zeroed`.
    pub zeroed: bool,
    /// Call stack id, see [`Stack`].
    pub stack: Option<u32>,
}

/// `GlobalAlloc::dealloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dealloc {
    /// When `ts_exact` is false this is the stream's previous timestamp, a lower
    /// bound of the moment of the free (reading a clock per free is the cost the
    /// format lets a producer skip).
    pub ts: u64,
    /// Whether `ts` was read for this free.
    pub ts_exact: bool,
    /// The block's address.
    pub addr: u64,
    /// `Layout::size` as passed to `dealloc`.
    pub size: u64,
    /// `Layout::align` as passed to `dealloc`.
    pub align: u64,
    /// Call stack id of the free.
    pub stack: Option<u32>,
}

/// `GlobalAlloc::realloc`: one inner call, one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Realloc {
    /// Taken after the inner call returned (as [`Alloc::ts`]). The old block's
    /// release is ordered at the stream's previous timestamp by readers.
    pub ts: u64,
    /// The block passed in.
    pub old_addr: u64,
    /// Its size (`Layout::size` of the layout passed in).
    pub old_size: u64,
    /// `None` when the inner allocator returned null (the old block stays valid).
    pub new_addr: Option<u64>,
    /// The size asked for.
    pub new_size: u64,
    /// `Layout::align`, the same before and after.
    pub align: u64,
    /// Call stack id.
    pub stack: Option<u32>,
}

/// First record of every stream: what produced it and how to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header<'a> {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u16,
    /// `size_of::<usize>()` of the traced program, in bytes.
    pub pointer_width: u8,
    /// Timestamp ticks per second; 0 when there is no clock and timestamps only
    /// order events.
    pub ticks_per_second: u64,
    /// Program identity: a name or path.
    #[serde(borrow)]
    pub program: &'a str,
    /// Program identity: the build id of its ELF (GNU build-id note), when known.
    #[serde(borrow)]
    pub build_id: &'a [u8],
    /// Target triple or core name, free text.
    #[serde(borrow)]
    pub target: &'a str,
}

impl<'a> Header<'a> {
    /// A header of this crate's format version.
    pub const fn new(pointer_width: u8, ticks_per_second: u64, program: &'a str) -> Self {
        Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            pointer_width,
            ticks_per_second,
            program,
            build_id: &[],
            target: "",
        }
    }
}

/// A heap the allocator manages, so readers can map blocks and gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapRegion {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Last record of a stream: what its producer attempted, so a reader can prove
/// the stream complete (every event either decoded or counted as lost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// `alloc` + `alloc_zeroed` calls, failed ones included.
    pub allocs: u64,
    /// `dealloc` calls.
    pub deallocs: u64,
    /// `realloc` calls, failed ones included.
    pub reallocs: u64,
    /// Calls of the above that returned null.
    pub failed: u64,
    /// Events of the above that were dropped instead of recorded.
    pub lost: u64,
    /// On the process's control stream (0): how many event streams it opened.
    /// 0 elsewhere.
    pub streams: u32,
}

/// Describes the thread that writes this stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread<'a> {
    /// The OS thread id.
    pub os_id: u64,
    /// The thread's name, empty when it has none.
    #[serde(borrow)]
    pub name: &'a str,
}

/// `track!`: gives the block at `addr` a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name<'a> {
    /// The block's address.
    pub addr: u64,
    /// Variable name.
    #[serde(borrow)]
    pub var: &'a str,
    /// Type name.
    #[serde(borrow)]
    pub type_name: &'a str,
    /// Source file.
    #[serde(borrow)]
    pub file: &'a str,
    /// Source line.
    pub line: u32,
}

/// A loaded module (executable or shared library), for offline symbolization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module<'a> {
    /// Address the module's first segment is mapped at.
    pub base: u64,
    /// Bytes mapped from `base`.
    pub size: u64,
    /// File path.
    #[serde(borrow)]
    pub path: &'a str,
    /// GNU build-id, when the file has one.
    #[serde(borrow)]
    pub build_id: &'a [u8],
}

/// A call stack, sent once per stream and referred to by `id` afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack<'a> {
    /// Id that heap events of the same stream refer to.
    pub id: u32,
    /// Return addresses, innermost first.
    pub frames: Frames<'a>,
}

/// The return addresses of a [`Stack`]: the caller's slice when encoding, the
/// validated wire bytes when decoding (no allocation either way).
#[derive(Clone, Copy, Debug)]
pub enum Frames<'a> {
    /// Addresses to encode.
    Slice(&'a [u64]),
    /// Zigzag deltas as read from a frame, already checked to decode.
    Wire {
        /// The varints.
        bytes: &'a [u8],
        /// How many addresses they hold.
        count: u32,
    },
}

impl<'a> Frames<'a> {
    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self {
            Frames::Slice(s) => s.len(),
            Frames::Wire { count, .. } => *count as usize,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses, innermost first.
    pub fn iter(&self) -> FramesIter<'a> {
        FramesIter {
            frames: *self,
            index: 0,
            offset: 0,
            prev: 0,
        }
    }
}

impl PartialEq for Frames<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Frames<'_> {}

/// Iterator over [`Frames`].
#[derive(Clone, Debug)]
pub struct FramesIter<'a> {
    frames: Frames<'a>,
    index: usize,
    offset: usize,
    prev: u64,
}

impl Iterator for FramesIter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self.frames {
            Frames::Slice(s) => {
                let v = *s.get(self.index)?;
                self.index += 1;
                Some(v)
            }
            Frames::Wire { bytes, count } => {
                if self.index >= count as usize {
                    return None;
                }
                // Validated when the record was decoded, so this cannot fail.
                let (d, n) = varint::read_u64(bytes.get(self.offset..)?).ok()?;
                self.offset += n;
                self.index += 1;
                self.prev = self.prev.wrapping_add(varint::unzigzag(d) as u64);
                Some(self.prev)
            }
        }
    }
}

/// One record of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// `alloc` / `alloc_zeroed`.
    Alloc(Alloc),
    /// `dealloc`.
    Dealloc(Dealloc),
    /// `realloc`.
    Realloc(Realloc),
    /// New absolute base for the deltas of the records that follow.
    Sync(Delta),
    /// `count` events were dropped here (the ring or channel was full).
    Lost {
        /// How many.
        count: u64,
    },
    /// Stream header.
    Header(Header<'a>),
    /// A heap region.
    HeapRegion(HeapRegion),
    /// Stream end with totals.
    End(End),
    /// An interned call stack.
    Stack(Stack<'a>),
    /// The thread behind this stream.
    Thread(Thread<'a>),
    /// `track_scope!` entered on this stream's thread.
    ScopeEnter {
        /// Scope name.
        name: &'a str,
    },
    /// The innermost open scope of this stream ended.
    ScopeExit,
    /// `track!`.
    Name(Name<'a>),
    /// A loaded module.
    Module(Module<'a>),
    /// A named point in time.
    Mark {
        /// Its name.
        name: &'a str,
    },
    /// A promise about every stream of the session: each heap event with a
    /// timestamp below `ts` that will ever be written is in a frame before
    /// this record (memscope-std's writer; see docs/FORMAT.md). A reader
    /// that merges streams by time need wait no longer for such events.
    Watermark {
        /// In the header's ticks.
        ts: u64,
    },
    /// An extension kind this version does not know; skipped whole.
    Unknown {
        /// The extension kind.
        kind: u64,
        /// Its body.
        body: &'a [u8],
    },
}

/// Why a record could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small.
    NoSpace,
    /// The record cannot be represented (a stack deeper than
    /// [`MAX_STACK_DEPTH`], an extension body over 16383 bytes, an [`Record::Unknown`]).
    Unrepresentable,
}

/// Why a record could not be read. Everything after it in the frame is unreadable too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended inside the record.
    Truncated,
    /// A varint was longer than 64 bits.
    BadVarint,
    /// Kind 7, reserved: a writer newer than this reader, or damage.
    ReservedKind,
    /// An extension body that does not parse as its kind.
    BadBody {
        /// The extension kind.
        kind: u64,
    },
    /// A field is out of range (an alignment that is not a power of two, a
    /// stack deeper than [`MAX_STACK_DEPTH`], a header with the wrong magic).
    OutOfRange,
}

impl From<VarintError> for DecodeError {
    fn from(e: VarintError) -> Self {
        match e {
            VarintError::Truncated => DecodeError::Truncated,
            VarintError::Overflow => DecodeError::BadVarint,
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("record cut short by the end of its frame"),
            DecodeError::BadVarint => f.write_str("integer longer than 64 bits"),
            DecodeError::ReservedKind => f.write_str("reserved record kind 7"),
            DecodeError::BadBody { kind } => write!(f, "extension record {kind} does not parse"),
            DecodeError::OutOfRange => f.write_str("field out of range"),
        }
    }
}

/// Writes bytes into a slice, failing once it is full.
struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Out<'_> {
    #[inline]
    fn byte(&mut self, b: u8) -> Result<(), EncodeError> {
        *self.buf.get_mut(self.pos).ok_or(EncodeError::NoSpace)? = b;
        self.pos += 1;
        Ok(())
    }

    // Out of line where flash is small and a 64-bit varint loop is long (32-bit
    // cores): a record writes up to seven of them.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    #[cfg_attr(not(target_pointer_width = "32"), inline)]
    fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        let rest = self.buf.get_mut(self.pos..).ok_or(EncodeError::NoSpace)?;
        self.pos += varint::write_u64(rest, v).ok_or(EncodeError::NoSpace)?;
        Ok(())
    }

    #[inline]
    fn addr(&mut self, addr: u64, base: u64) -> Result<(), EncodeError> {
        self.u64(varint::zigzag(addr.wrapping_sub(base) as i64))
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos.checked_add(b.len()).ok_or(EncodeError::NoSpace)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::NoSpace)?
            .copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
}

/// Reads fields from a slice.
struct In<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    #[inline(always)]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        // One- and two-byte varints (sizes, small deltas) are most fields of
        // hot records: read them without the general loop. Same values and
        // errors as `varint::read_u64` (two bytes cannot overflow).
        match self.buf.get(self.pos..) {
            Some(&[b0, ..]) if b0 < 0x80 => {
                self.pos += 1;
                return Ok(u64::from(b0));
            }
            Some(&[b0, b1, ..]) if b1 < 0x80 => {
                self.pos += 2;
                return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
            }
            _ => {}
        }
        // Three to eight bytes (address deltas, most timestamp deltas of a
        // fast clock): from one 8-byte load, without a loop. Same values as
        // `varint::read_u64`, which only fails past eight bytes.
        if let Some(w) = self.buf.get(self.pos..).and_then(<[u8]>::first_chunk::<8>) {
            let w = u64::from_le_bytes(*w);
            // The high bit of every byte that ends a varint.
            let ends = !w & 0x8080_8080_8080_8080;
            if ends != 0 {
                // 8 × the bytes up to and including the first end.
                let bits = ends.trailing_zeros() + 1;
                let w = w & (u64::MAX >> (64 - bits));
                // The 7-bit groups, packed: pairs, then fours, then all.
                let v = w & 0x7f7f_7f7f_7f7f_7f7f;
                let v = (v & 0x007f_007f_007f_007f) | ((v & 0x7f00_7f00_7f00_7f00) >> 1);
                let v = (v & 0x0000_3fff_0000_3fff) | ((v & 0x3fff_0000_3fff_0000) >> 2);
                let v = (v & 0x0000_0000_0fff_ffff) | ((v & 0x0fff_ffff_0000_0000) >> 4);
                self.pos += (bits / 8) as usize;
                return Ok(v);
            }
        }
        let rest = self.buf.get(self.pos..).ok_or(DecodeError::Truncated)?;
        let (v, n) = varint::read_u64(rest)?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn addr(&mut self, base: u64) -> Result<u64, DecodeError> {
        Ok(base.wrapping_add(varint::unzigzag(self.u64()?) as u64))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u64()?).map_err(|_| DecodeError::OutOfRange)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
}

#[inline(always)]
fn align_code(align: u64) -> u8 {
    // `align & (align - 1)` rather than `is_power_of_two`, which is a
    // popcount: a long bit-twiddling sequence on CPUs without one.
    if align != 0 && align & (align - 1) == 0 && align < (1 << ALIGN_EXPLICIT) {
        align.trailing_zeros() as u8
    } else {
        ALIGN_EXPLICIT
    }
}

#[inline(always)]
fn heap_tag(kind: u8, code: u8, stack: Option<u32>, flag: u8) -> u8 {
    let mut tag = kind | (code << ALIGN_SHIFT) | flag;
    if stack.is_some() {
        tag |= FLAG_STACK;
    }
    tag
}

#[inline]
fn flag_if(cond: bool, flag: u8) -> u8 {
    if cond {
        flag
    } else {
        0
    }
}

impl Record<'_> {
    /// Encodes the record at the start of `out` against the stream's base
    /// `delta`. Returns the bytes written and the base for the next record; the
    /// caller adopts that base only once the bytes are committed to the stream,
    /// so a record dropped on a full ring never desynchronises the deltas.
    ///
    /// Always inlined (it is a jump to one out-of-line encoder per kind), so
    /// that where the kind is known at compile time (a recorder writing its
    /// header or end record) only that kind's encoder is linked: on a
    /// microcontroller the serializers of host-only kinds would cost flash.
    #[inline(always)]
    pub fn encode(&self, delta: Delta, out: &mut [u8]) -> Result<(usize, Delta), EncodeError> {
        let n = match *self {
            Record::Alloc(_)
            | Record::Dealloc(_)
            | Record::Realloc(_)
            | Record::Sync(_)
            | Record::Lost { .. } => return self.encode_event(delta, out),
            // What a microcontroller writes: bodies by hand (postcard's bytes).
            Record::Header(h) => encode_header(out, &h)?,
            Record::HeapRegion(r) => encode_varints(out, ext::HEAP_REGION, &[r.start, r.len])?,
            Record::End(e) => encode_varints(
                out,
                ext::END,
                &[
                    e.allocs,
                    e.deallocs,
                    e.reallocs,
                    e.failed,
                    e.lost,
                    e.streams.into(),
                ],
            )?,
            Record::Thread(t) => ext_serde(out, ext::THREAD, &t)?,
            Record::ScopeEnter { name } => ext_serde(out, ext::SCOPE_ENTER, &name)?,
            Record::ScopeExit => ext_serde(out, ext::SCOPE_EXIT, &())?,
            Record::Name(n) => ext_serde(out, ext::NAME, &n)?,
            Record::Module(m) => ext_serde(out, ext::MODULE, &m)?,
            Record::Mark { name } => ext_serde(out, ext::MARK, &name)?,
            Record::Watermark { ts } => encode_varints(out, ext::WATERMARK, &[ts])?,
            Record::Stack(s) => encode_stack(out, s)?,
            Record::Unknown { .. } => return Err(EncodeError::Unrepresentable),
        };
        // Extension records leave the base alone.
        Ok((n, delta))
    }

    /// [`encode`](Self::encode) for the records a recorder writes per heap
    /// event (alloc, dealloc, realloc, and the sync and lost records that go
    /// with them); any other kind is [`EncodeError::Unrepresentable`]. Holds
    /// the code of these kinds only, so a recorder that calls it for every
    /// event links no serializer it does not need.
    ///
    /// Fastest when `out` has at least [`EVENT_ROOM`] bytes: the record is
    /// then written in place without a length check per byte.
    #[inline]
    pub fn encode_event(
        &self,
        delta: Delta,
        out: &mut [u8],
    ) -> Result<(usize, Delta), EncodeError> {
        with_event_room(out, |w| self.encode_event_into(delta, w))
    }

    /// [`encode_event`](Self::encode_event) of one heap-event record (alloc,
    /// dealloc, realloc; any other kind is [`EncodeError::Unrepresentable`])
    /// straight into memory the caller vouches for, without a length check:
    /// a recorder that knows it has [`MAX_HEAP_RECORD_LEN`] bytes free at
    /// `out` (its ring's contiguous free space) writes there in place.
    ///
    /// # Safety
    ///
    /// `out` is valid for writes of [`MAX_HEAP_RECORD_LEN`] bytes.
    #[inline(always)]
    pub unsafe fn encode_heap_event_unchecked(
        &self,
        delta: Delta,
        out: *mut u8,
    ) -> Result<(usize, Delta), EncodeError> {
        if !matches!(
            self,
            Record::Alloc(_) | Record::Dealloc(_) | Record::Realloc(_)
        ) {
            return Err(EncodeError::Unrepresentable);
        }
        // SAFETY: the caller's room covers one heap-event record, the most
        // this writes (each field's largest encoding is counted in
        // `MAX_HEAP_RECORD_LEN`).
        let mut o = unsafe { EventOut::from_raw(out) };
        let next = self.encode_event_into(delta, &mut o)?;
        Ok((o.pos, next))
    }

    /// Appends the heap-event record to `w`; returns the base for the next
    /// record.
    #[inline(always)]
    pub(crate) fn encode_event_into(
        &self,
        delta: Delta,
        o: &mut EventOut<'_>,
    ) -> Result<Delta, EncodeError> {
        let mut next = delta;
        match *self {
            Record::Alloc(a) => {
                let kind = if a.zeroed {
                    kind::ALLOC_ZEROED
                } else {
                    kind::ALLOC
                };
                let code = align_code(a.align);
                o.byte(heap_tag(
                    kind,
                    code,
                    a.stack,
                    flag_if(a.addr.is_none(), FLAG_FAILED),
                ));
                if let Some(s) = a.stack {
                    o.u64(s.into());
                }
                o.u64(a.ts.wrapping_sub(delta.ts));
                next.ts = a.ts;
                if let Some(addr) = a.addr {
                    o.addr(addr, delta.addr);
                    next.addr = addr;
                }
                o.u64(a.size);
                if code == ALIGN_EXPLICIT {
                    o.u64(a.align);
                }
            }
            Record::Dealloc(d) => {
                let code = align_code(d.align);
                o.byte(heap_tag(
                    kind::DEALLOC,
                    code,
                    d.stack,
                    flag_if(d.ts_exact, FLAG_TS),
                ));
                if let Some(s) = d.stack {
                    o.u64(s.into());
                }
                if d.ts_exact {
                    o.u64(d.ts.wrapping_sub(delta.ts));
                    next.ts = d.ts;
                }
                o.addr(d.addr, delta.addr);
                next.addr = d.addr;
                o.u64(d.size);
                if code == ALIGN_EXPLICIT {
                    o.u64(d.align);
                }
            }
            Record::Realloc(r) => {
                let code = align_code(r.align);
                o.byte(heap_tag(
                    kind::REALLOC,
                    code,
                    r.stack,
                    flag_if(r.new_addr.is_none(), FLAG_FAILED),
                ));
                if let Some(s) = r.stack {
                    o.u64(s.into());
                }
                o.u64(r.ts.wrapping_sub(delta.ts));
                next.ts = r.ts;
                o.addr(r.old_addr, delta.addr);
                o.u64(r.old_size);
                next.addr = r.old_addr;
                if let Some(new) = r.new_addr {
                    o.addr(new, r.old_addr);
                    next.addr = new;
                }
                o.u64(r.new_size);
                if code == ALIGN_EXPLICIT {
                    o.u64(r.align);
                }
            }
            Record::Sync(d) => {
                o.byte(kind::SYNC);
                o.u64(d.ts);
                o.u64(d.addr);
                next = d;
            }
            Record::Lost { count } => {
                o.byte(kind::LOST);
                o.u64(count);
            }
            _ => return Err(EncodeError::Unrepresentable),
        }
        Ok(next)
    }
}

/// Bytes the heap-event encoder works in: at least [`MAX_EVENT_LEN`] (an
/// event with its lost and sync records), rounded up to a power of two. An
/// output of at least this length is written in place without a length
/// check per byte.
pub const EVENT_ROOM: usize = 128;
const _: () = assert!(MAX_EVENT_LEN <= EVENT_ROOM && EVENT_ROOM.is_power_of_two());

/// Writes heap-event records into [`EVENT_ROOM`] bytes (or, for
/// [`Record::encode_heap_event_unchecked`], into the caller's room for one
/// record) through a raw pointer: no length check and no panic branch per
/// byte. The records written through one `EventOut` together never exceed
/// its room: [`MAX_EVENT_LEN`] bytes for an event with its lost and sync
/// records, [`MAX_HEAP_RECORD_LEN`] for an event alone (each field's largest
/// encoding is counted there).
pub(crate) struct EventOut<'b> {
    /// Where the next byte goes.
    p: *mut u8,
    /// Bytes written so far.
    pos: usize,
    /// The room's size, checked in debug builds (tests, Miri, fuzzing).
    #[cfg(debug_assertions)]
    room: usize,
    _buf: core::marker::PhantomData<&'b mut [u8]>,
}

impl<'b> EventOut<'b> {
    #[inline(always)]
    fn new(buf: &'b mut [u8; EVENT_ROOM]) -> Self {
        EventOut {
            p: buf.as_mut_ptr(),
            pos: 0,
            #[cfg(debug_assertions)]
            room: EVENT_ROOM,
            _buf: core::marker::PhantomData,
        }
    }

    /// # Safety
    ///
    /// `p` is valid for writes of [`MAX_HEAP_RECORD_LEN`] bytes for `'b`,
    /// and at most one heap-event record is written through the result.
    #[inline(always)]
    unsafe fn from_raw(p: *mut u8) -> Self {
        EventOut {
            p,
            pos: 0,
            #[cfg(debug_assertions)]
            room: MAX_HEAP_RECORD_LEN,
            _buf: core::marker::PhantomData,
        }
    }

    /// Writes `b` at `at` bytes past the next one (`at` < 3: within one
    /// field).
    #[inline(always)]
    fn put(&mut self, at: usize, b: u8) {
        #[cfg(debug_assertions)]
        assert!(self.pos + at < self.room, "EventOut past its room");
        // SAFETY: `pos + at` stays below the room (see the type's docs:
        // the records written never exceed it), which is valid for writes.
        unsafe { self.p.add(at).write(b) };
    }

    /// Moves past `n` bytes written with [`put`](Self::put).
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        // SAFETY: as in `put`: at most one past the room's last byte.
        self.p = unsafe { self.p.add(n) };
        self.pos += n;
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.put(0, b);
        self.advance(1);
    }

    /// Varints of up to three bytes (deltas of neighbouring events, sizes,
    /// most address distances) inline, each byte at a known offset; longer
    /// ones out of line. On 32-bit cores, where flash is small, out of line.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    #[cfg_attr(not(target_pointer_width = "32"), inline(always))]
    fn u64(&mut self, v: u64) {
        if v < 1 << 7 {
            self.put(0, v as u8);
            self.advance(1);
        } else if v < 1 << 14 {
            self.put(0, v as u8 | 0x80);
            self.put(1, (v >> 7) as u8);
            self.advance(2);
        } else if v < 1 << 21 {
            self.put(0, v as u8 | 0x80);
            self.put(1, (v >> 7) as u8 | 0x80);
            self.put(2, (v >> 14) as u8);
            self.advance(3);
        } else {
            #[cfg(debug_assertions)]
            assert!(
                self.pos + varint::len_u64(v) <= self.room,
                "EventOut past its room"
            );
            // SAFETY: the room holds this field's largest encoding (see
            // the type's docs).
            let n = unsafe { u64_long(self.p, v) };
            self.advance(n);
        }
    }

    #[inline(always)]
    fn addr(&mut self, addr: u64, base: u64) {
        self.u64(varint::zigzag(addr.wrapping_sub(base) as i64))
    }
}

/// Writes a varint of four bytes or more at `p`; returns its length. Out of
/// line (rare on the hot path); takes and returns plain values so that the
/// caller's [`EventOut`] stays in registers.
///
/// # Safety
///
/// `p` is valid for writes of `varint::len_u64(v)` bytes.
#[inline(never)]
unsafe fn u64_long(p: *mut u8, mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        // SAFETY: `n` < the varint's length (the caller's contract).
        unsafe { p.add(n).write(v as u8 | 0x80) };
        n += 1;
        v >>= 7;
    }
    // SAFETY: as above: the last byte.
    unsafe { p.add(n).write(v as u8) };
    n + 1
}

/// Runs `f` on an [`EventOut`] over `out`'s first [`EVENT_ROOM`] bytes, or,
/// when `out` is shorter, over a local buffer copied into `out` afterwards
/// ([`EncodeError::NoSpace`] if the bytes do not fit). Returns the length
/// written and `f`'s value.
#[inline(always)]
pub(crate) fn with_event_room<T>(
    out: &mut [u8],
    f: impl FnOnce(&mut EventOut<'_>) -> Result<T, EncodeError>,
) -> Result<(usize, T), EncodeError> {
    match out.first_chunk_mut::<EVENT_ROOM>() {
        Some(buf) => {
            let mut o = EventOut::new(buf);
            let v = f(&mut o)?;
            Ok((o.pos, v))
        }
        None => via_local_room(out, f),
    }
}

/// [`with_event_room`] for an `out` shorter than [`EVENT_ROOM`].
#[inline(never)]
fn via_local_room<T>(
    out: &mut [u8],
    f: impl FnOnce(&mut EventOut<'_>) -> Result<T, EncodeError>,
) -> Result<(usize, T), EncodeError> {
    let mut tmp = [0u8; EVENT_ROOM];
    let mut o = EventOut::new(&mut tmp);
    let v = f(&mut o)?;
    let n = o.pos;
    out.get_mut(..n)
        .ok_or(EncodeError::NoSpace)?
        .copy_from_slice(tmp.get(..n).ok_or(EncodeError::NoSpace)?);
    Ok((n, v))
}

/// Writes an extension record whose body `body` writes, with its length as a
/// varint in front (bodies up to 16383 bytes).
///
/// The body is written after a one-byte length, which fits almost every
/// body; a longer one is written again one byte further on. Writing twice in
/// that rare case costs less than moving bytes: a `memmove` is about 1.5 KB of
/// flash on a Cortex-M.
fn ext_body(
    o: &mut Out<'_>,
    ext_kind: u64,
    body: impl Fn(&mut Out<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    o.byte(kind::EXT)?;
    o.u64(ext_kind)?;
    let len_at = o.pos;
    for len_len in 1..=2 {
        o.pos = len_at + len_len;
        if o.pos > o.buf.len() {
            return Err(EncodeError::NoSpace);
        }
        body(o)?;
        let len = o.pos - len_at - len_len;
        let head = o
            .buf
            .get_mut(len_at..len_at + len_len)
            .ok_or(EncodeError::NoSpace)?;
        match head {
            [one] if len < 0x80 => {
                *one = len as u8;
                return Ok(());
            }
            [lo, hi] if len < 1 << 14 => {
                *lo = (len as u8) | 0x80;
                *hi = (len >> 7) as u8;
                return Ok(());
            }
            _ => {}
        }
    }
    Err(EncodeError::Unrepresentable)
}

/// An extension record whose body is `v` serialized by postcard. Out of line:
/// one copy per body type, called from wherever [`Record::encode`] is inlined.
#[inline(never)]
fn ext_serde<T: Serialize>(out: &mut [u8], ext_kind: u64, v: &T) -> Result<usize, EncodeError> {
    let mut o = Out { buf: out, pos: 0 };
    ext_body(&mut o, ext_kind, |o| {
        let rest = o.buf.get_mut(o.pos..).ok_or(EncodeError::NoSpace)?;
        let used = postcard::to_slice(v, rest)
            .map_err(|_| EncodeError::NoSpace)?
            .len();
        o.pos += used;
        Ok(())
    })?;
    Ok(o.pos)
}

/// A [`Header`] record, its body written by hand exactly as postcard writes
/// it (the tests compare the two byte for byte): a firmware writes a header,
/// and a serializer of its own would cost it about a kilobyte of flash.
#[inline(never)]
fn encode_header(out: &mut [u8], h: &Header<'_>) -> Result<usize, EncodeError> {
    let mut o = Out { buf: out, pos: 0 };
    ext_body(&mut o, ext::HEADER, |o| {
        // A fixed-size array is its elements; a u8 is one byte; other
        // integers are varints; strings and byte slices are length + bytes.
        o.bytes(&h.magic)?;
        o.u64(h.version.into())?;
        o.byte(h.pointer_width)?;
        o.u64(h.ticks_per_second)?;
        for field in [h.program.as_bytes(), h.build_id, h.target.as_bytes()] {
            o.u64(field.len() as u64)?;
            o.bytes(field)?;
        }
        Ok(())
    })?;
    Ok(o.pos)
}

/// An extension record whose body is a struct of unsigned integers other
/// than `u8` ([`HeapRegion`], [`End`]): postcard writes each as a varint.
#[inline(never)]
fn encode_varints(out: &mut [u8], ext_kind: u64, fields: &[u64]) -> Result<usize, EncodeError> {
    let mut o = Out { buf: out, pos: 0 };
    ext_body(&mut o, ext_kind, |o| {
        fields.iter().try_for_each(|&v| o.u64(v))
    })?;
    Ok(o.pos)
}

/// A [`Stack`] record: id, count, then the addresses as zigzag distances.
#[inline(never)]
fn encode_stack(out: &mut [u8], s: Stack<'_>) -> Result<usize, EncodeError> {
    if s.frames.len() > MAX_STACK_DEPTH {
        return Err(EncodeError::Unrepresentable);
    }
    let mut o = Out { buf: out, pos: 0 };
    ext_body(&mut o, ext::STACK, |o| {
        o.u64(s.id.into())?;
        o.u64(s.frames.len() as u64)?;
        let mut prev = 0u64;
        for f in s.frames.iter() {
            o.addr(f, prev)?;
            prev = f;
        }
        Ok(())
    })?;
    Ok(o.pos)
}

#[inline(always)]
fn decode_align(code: u8, r: &mut In<'_>) -> Result<u64, DecodeError> {
    if code == ALIGN_EXPLICIT {
        let a = r.u64()?;
        if !a.is_power_of_two() {
            return Err(DecodeError::OutOfRange);
        }
        Ok(a)
    } else {
        Ok(1 << code)
    }
}

fn serde_body<'a, T: Deserialize<'a>>(kind: u64, body: &'a [u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(body).map_err(|_| DecodeError::BadBody { kind })
}

impl<'a> Record<'a> {
    /// Decodes the record at the start of `input` against the stream's base
    /// `delta`, which it advances. Returns the record and the bytes it used.
    // Inlined into the reader's loop: the decoder spends a fifth of its time
    // here, and the large `Record` need not be moved through a return slot.
    #[inline]
    pub fn decode(input: &'a [u8], delta: &mut Delta) -> Result<(Record<'a>, usize), DecodeError> {
        let tag = *input.first().ok_or(DecodeError::Truncated)?;
        let mut r = In { buf: input, pos: 1 };
        let align = (tag & ALIGN_MASK) >> ALIGN_SHIFT;
        // FLAG_FAILED for alloc and realloc, FLAG_TS for dealloc: the same bit.
        let flag = tag & FLAG_FAILED != 0;
        // Deltas are applied to a copy and stored only once the whole record
        // decoded, so a damaged record leaves the base as it was.
        let mut next = *delta;
        let rec = match tag & KIND_MASK {
            k @ (kind::ALLOC | kind::ALLOC_ZEROED) => {
                let f = alloc_or_free(tag, &mut r, delta)?;
                next.ts = f.ts;
                if let Some(addr) = f.addr {
                    next.addr = addr;
                }
                Record::Alloc(Alloc {
                    ts: f.ts,
                    addr: f.addr,
                    size: f.size,
                    align: decode_align(align, &mut r)?,
                    zeroed: k == kind::ALLOC_ZEROED,
                    stack: f.stack,
                })
            }
            kind::DEALLOC => {
                let f = alloc_or_free(tag, &mut r, delta)?;
                next.ts = f.ts;
                // A free always has an address.
                next.addr = f.addr.unwrap_or(delta.addr);
                Record::Dealloc(Dealloc {
                    ts: f.ts,
                    ts_exact: flag,
                    addr: next.addr,
                    size: f.size,
                    align: decode_align(align, &mut r)?,
                    stack: f.stack,
                })
            }
            kind::REALLOC => {
                let stack = stack(tag, &mut r)?;
                next.ts = delta.ts.wrapping_add(r.u64()?);
                let old_addr = r.addr(delta.addr)?;
                let old_size = r.u64()?;
                next.addr = old_addr;
                let new_addr = if flag {
                    None
                } else {
                    next.addr = r.addr(old_addr)?;
                    Some(next.addr)
                };
                let new_size = r.u64()?;
                Record::Realloc(Realloc {
                    ts: next.ts,
                    old_addr,
                    old_size,
                    new_addr,
                    new_size,
                    align: decode_align(align, &mut r)?,
                    stack,
                })
            }
            kind::SYNC => {
                next = Delta {
                    ts: r.u64()?,
                    addr: r.u64()?,
                };
                Record::Sync(next)
            }
            kind::LOST => Record::Lost { count: r.u64()? },
            kind::EXT => {
                let ext_kind = r.u64()?;
                let len = usize::try_from(r.u64()?).map_err(|_| DecodeError::Truncated)?;
                let body = r.take(len)?;
                decode_ext(ext_kind, body)?
            }
            _ => return Err(DecodeError::ReservedKind),
        };
        *delta = next;
        Ok((rec, r.pos))
    }
}

/// The call stack id of a heap record whose tag is `tag`, if it has one.
#[inline(always)]
fn stack(tag: u8, r: &mut In<'_>) -> Result<Option<u32>, DecodeError> {
    if tag & FLAG_STACK != 0 {
        r.u32().map(Some)
    } else {
        Ok(None)
    }
}

/// The fields an alloc or dealloc record (tag `tag`, already read) holds
/// before its alignment, in the order they are written, resolved against
/// `delta`.
struct AllocOrFree {
    stack: Option<u32>,
    /// An allocation's, or a free's own if it has one (else the base's).
    ts: u64,
    /// `None` for a failed allocation.
    addr: Option<u64>,
    size: u64,
}

#[inline(always)]
fn alloc_or_free(tag: u8, r: &mut In<'_>, delta: &Delta) -> Result<AllocOrFree, DecodeError> {
    let free = tag & KIND_MASK == kind::DEALLOC;
    // FLAG_FAILED for alloc, FLAG_TS for dealloc: the same bit.
    let flag = tag & FLAG_FAILED != 0;
    let stack = stack(tag, r)?;
    let ts = if free && !flag {
        delta.ts
    } else {
        delta.ts.wrapping_add(r.u64()?)
    };
    let addr = if !free && flag {
        None
    } else {
        Some(r.addr(delta.addr)?)
    };
    Ok(AllocOrFree {
        stack,
        ts,
        addr,
        size: r.u64()?,
    })
}

/// A successful allocation or a free whose alignment is in its tag: nearly
/// every record of a trace, as [`Record::decode_common`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Common {
    /// [`kind::ALLOC`], [`kind::ALLOC_ZEROED`] or [`kind::DEALLOC`].
    pub kind: u8,
    /// As [`Alloc::ts`] or [`Dealloc::ts`].
    pub ts: u64,
    /// A free's [`Dealloc::ts_exact`]; false for an allocation.
    pub ts_exact: bool,
    /// The block's address.
    pub addr: u64,
    /// `Layout::size`.
    pub size: u64,
    /// The alignment's base-2 logarithm.
    pub align_log2: u8,
    /// Call stack id, see [`Stack`].
    pub stack: Option<u32>,
}

impl Record<'_> {
    /// [`decode`](Self::decode) of the record at the start of `input` if it
    /// is a [`Common`] one; `None` (`delta` unchanged) for any other record
    /// or any error, which `decode` then reads or reports. A decoder's hot
    /// loop takes these without the general [`Record`] (a large value and
    /// a second dispatch on its kind).
    #[inline(always)]
    pub fn decode_common(input: &[u8], delta: &mut Delta) -> Option<(Common, usize)> {
        let &tag = input.first()?;
        let k = tag & KIND_MASK;
        let code = (tag & ALIGN_MASK) >> ALIGN_SHIFT;
        let failed = k != kind::DEALLOC && tag & FLAG_FAILED != 0;
        if !(kind::ALLOC..=kind::DEALLOC).contains(&k) || code == ALIGN_EXPLICIT || failed {
            return None;
        }
        let mut r = In { buf: input, pos: 1 };
        let f = alloc_or_free(tag, &mut r, delta).ok()?;
        // Not a failed allocation: the address is there.
        let addr = f.addr?;
        *delta = Delta { ts: f.ts, addr };
        Some((
            Common {
                kind: k,
                ts: f.ts,
                ts_exact: k == kind::DEALLOC && tag & FLAG_TS != 0,
                addr,
                size: f.size,
                align_log2: code,
                stack: f.stack,
            },
            r.pos,
        ))
    }
}

fn decode_ext(kind: u64, body: &[u8]) -> Result<Record<'_>, DecodeError> {
    Ok(match kind {
        ext::HEADER => {
            let h: Header<'_> = serde_body(kind, body)?;
            if h.magic != MAGIC {
                return Err(DecodeError::OutOfRange);
            }
            Record::Header(h)
        }
        ext::HEAP_REGION => Record::HeapRegion(serde_body(kind, body)?),
        ext::END => Record::End(serde_body(kind, body)?),
        ext::THREAD => Record::Thread(serde_body(kind, body)?),
        ext::SCOPE_ENTER => Record::ScopeEnter {
            name: serde_body(kind, body)?,
        },
        ext::SCOPE_EXIT => Record::ScopeExit,
        ext::NAME => Record::Name(serde_body(kind, body)?),
        ext::MODULE => Record::Module(serde_body(kind, body)?),
        ext::MARK => Record::Mark {
            name: serde_body(kind, body)?,
        },
        ext::WATERMARK => Record::Watermark {
            ts: serde_body(kind, body)?,
        },
        ext::STACK => {
            let mut r = In { buf: body, pos: 0 };
            let id = r.u32()?;
            let count = r.u64()?;
            if count > MAX_STACK_DEPTH as u64 {
                return Err(DecodeError::OutOfRange);
            }
            let start = r.pos;
            for _ in 0..count {
                r.u64()?;
            }
            Record::Stack(Stack {
                id,
                frames: Frames::Wire {
                    bytes: &body[start..r.pos],
                    count: count as u32,
                },
            })
        }
        _ => Record::Unknown { kind, body },
    })
}

/// Iterates the records of one frame payload (after the stream id), advancing
/// the stream's delta base as it goes.
///
/// After an error the rest of the payload cannot be read (record lengths are
/// implicit); [`Records::remaining`] says how many bytes that leaves unread.
pub struct Records<'a, 'd> {
    input: &'a [u8],
    pos: usize,
    delta: &'d mut Delta,
    failed: bool,
}

impl<'a, 'd> Records<'a, 'd> {
    /// Reads `input` against `delta`.
    pub fn new(input: &'a [u8], delta: &'d mut Delta) -> Self {
        Records {
            input,
            pos: 0,
            delta,
            failed: false,
        }
    }

    /// Offset of the next record within the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read (after an error: the bytes given up).
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }
}

impl<'a> Iterator for Records<'a, '_> {
    type Item = Result<Record<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.input.len() {
            return None;
        }
        match Record::decode(&self.input[self.pos..], self.delta) {
            Ok((rec, n)) => {
                self.pos += n;
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Record<'_> {
    /// Whether the record's timestamp and addresses are distances from the
    /// stream's base (alloc, dealloc, realloc), so that reading them right
    /// needs every earlier record of the stream, or a [`Record::Sync`] since.
    pub fn uses_base(&self) -> bool {
        matches!(
            self,
            Record::Alloc(_) | Record::Dealloc(_) | Record::Realloc(_)
        )
    }
}

/// A reader's delta base for one stream, and whether it is known.
///
/// Heap events carry their timestamp and addresses as distances from the
/// previous record of their stream. A reader that misses a frame no longer
/// knows that base, and since a damaged frame's stream id is unreadable, it
/// no longer knows any stream's base: on every
/// [`FrameEvent::Damaged`](crate::frame::FrameEvent::Damaged) call
/// [`desync`](Self::desync) on all of them. A base is also unknown when reading
/// starts (a reader may attach in the middle of a stream) and after a record
/// of the stream fails to decode (the rest of its frame is unreadable). It is
/// known again from the stream's next [`Record::Sync`], which every producer
/// puts before its first record and then at least every
/// [`SYNC_INTERVAL`](crate::stream::SYNC_INTERVAL) records.
///
/// [`StreamBase::records`] says, for each record, whether its values are
/// resolved; an unresolved heap event happened (its size, alignment and kind
/// are right) but its timestamp and addresses are not known.
///
/// A frame dropped whole without any damage showing (its bytes all replaced
/// by delimiters, or cut out exactly at frame boundaries) cannot be noticed
/// from the byte stream; the producer counts the frames *it* drops (see
/// [`Record::Lost`]) and writes them from the base it kept, so those are safe.
///
/// ```
/// use memscope_core::frame::{Deframer, FrameEvent};
/// use memscope_core::wire::StreamBase;
///
/// # let input: &[u8] = &[];
/// let mut buf = [0u8; 4096];
/// let mut deframer = Deframer::new(&mut buf);
/// let mut bases = [StreamBase::new(); 4]; // one per stream id
/// let mut rest = input;
/// while !rest.is_empty() {
///     let (n, event) = deframer.push(rest);
///     rest = &rest[n..];
///     match event {
///         Some(FrameEvent::Frame { stream, records, .. }) => {
///             let Some(base) = bases.get_mut(stream as usize) else { continue };
///             for r in base.records(records) {
///                 let Ok((record, resolved)) = r else { break };
///                 // use `record`; if !resolved its timestamp and addresses are unknown
///                 # let _ = (record, resolved);
///             }
///         }
///         Some(FrameEvent::Damaged { .. }) => bases.iter_mut().for_each(|b| b.desync()),
///         None => {}
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamBase {
    /// The base the stream's next record is decoded against.
    pub delta: Delta,
    /// Whether `delta` is the producer's base: false until the stream's first
    /// [`Record::Sync`] and after [`desync`](Self::desync).
    pub synced: bool,
}

impl StreamBase {
    /// A base not known yet.
    pub const fn new() -> Self {
        StreamBase {
            delta: Delta { ts: 0, addr: 0 },
            synced: false,
        }
    }

    /// Frames may have been lost: the base is unknown until the next sync.
    pub fn desync(&mut self) {
        self.synced = false;
    }

    /// Iterates the records of one frame payload of this stream, yielding each
    /// with whether its values are resolved.
    pub fn records<'a>(&'a mut self, payload: &'a [u8]) -> BasedRecords<'a> {
        let StreamBase { delta, synced } = self;
        BasedRecords {
            records: Records::new(payload, delta),
            synced,
        }
    }
}

/// Iterator of [`StreamBase::records`]: `(record, resolved)` pairs.
pub struct BasedRecords<'a> {
    records: Records<'a, 'a>,
    synced: &'a mut bool,
}

impl BasedRecords<'_> {
    /// Bytes not read (after an error: the bytes given up).
    pub fn remaining(&self) -> usize {
        self.records.remaining()
    }
}

impl<'a> Iterator for BasedRecords<'a> {
    type Item = Result<(Record<'a>, bool), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.records.next()? {
            Ok(rec) => {
                if let Record::Sync(_) = rec {
                    *self.synced = true;
                }
                Some(Ok((rec, *self.synced || !rec.uses_base())))
            }
            Err(e) => {
                // The records after this one in the frame moved the producer's
                // base; they cannot be read, so neither can the base.
                *self.synced = false;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder's varint reads (one and two bytes by hand, three to
    /// eight from one load, the rest by `varint::read_u64`) give what
    /// `varint::read_u64` gives, at every length, whatever follows the
    /// varint, and with the input cut anywhere.
    #[test]
    fn field_reads_match_the_varint_reader() {
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        // Miri is slow: every length still comes up three times.
        let rounds = if cfg!(miri) { 195 } else { 20_000 };
        for round in 0..rounds {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            // Every length from 1 to 10 bytes, boundaries included.
            let bits = round % 65;
            let v = if bits == 0 { 0 } else { r >> (64 - bits) };
            let mut buf = [0u8; 24];
            let n = varint::write_u64(&mut buf, v).unwrap();
            // What follows: bytes with and without the high bit.
            for (i, b) in buf[n..].iter_mut().enumerate() {
                *b = (r >> (i % 8 * 8)) as u8;
            }
            for end in [n, n + 1, n + 7, buf.len()] {
                let mut input = In {
                    buf: &buf[..end],
                    pos: 0,
                };
                assert_eq!(input.u64(), Ok(v), "{v:#x} with {end} bytes");
                assert_eq!(input.pos, n);
            }
            // At an offset, the load still starts at the varint.
            let mut shifted = [0xffu8; 27];
            shifted[3..].copy_from_slice(&buf);
            let mut input = In {
                buf: &shifted,
                pos: 3,
            };
            assert_eq!(input.u64(), Ok(v));
            assert_eq!(input.pos, 3 + n);
            // Cut inside the varint: truncated, as the varint reader says.
            for cut in 0..n {
                let mut input = In {
                    buf: &buf[..cut],
                    pos: 0,
                };
                assert_eq!(input.u64().ok(), None);
                assert_eq!(
                    varint::read_u64(&buf[..cut]).map_err(DecodeError::from),
                    input_err(&buf[..cut])
                );
            }
        }
    }

    fn input_err(b: &[u8]) -> Result<(u64, usize), DecodeError> {
        let mut input = In { buf: b, pos: 0 };
        input.u64().map(|v| (v, input.pos))
    }
}
