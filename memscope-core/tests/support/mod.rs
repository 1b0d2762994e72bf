//! Strategies shared by the property tests: owned records (a `Record` borrows
//! its strings), and a proptest configuration that stays short under Miri.

#![allow(dead_code)] // each test file uses a different part

use memscope_core::wire::{
    Alloc, Dealloc, Delta, End, Frames, Header, HeapRegion, Module, Name, Realloc, Record, Stack,
    Thread, MAGIC, MAX_STACK_DEPTH,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// `cases` normally; a handful under Miri, where one case of a long sequence
/// takes seconds. No failure files: a failing seed is printed instead, and
/// Miri's isolation forbids the file system anyway.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 2 } else { cases },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Longest generated sequence: above `SYNC_INTERVAL`, so streams carry several
/// syncs; far shorter under Miri.
pub const fn max_len(native: usize) -> usize {
    if cfg!(miri) {
        12
    } else {
        native
    }
}

/// A record that owns its data.
#[derive(Clone, Debug)]
pub enum Owned {
    Alloc(Alloc),
    Dealloc(Dealloc),
    Realloc(Realloc),
    Sync(Delta),
    Lost(u64),
    Header {
        version: u16,
        pointer_width: u8,
        ticks_per_second: u64,
        program: String,
        build_id: Vec<u8>,
        target: String,
    },
    HeapRegion(HeapRegion),
    End(End),
    Stack {
        id: u32,
        frames: Vec<u64>,
    },
    Thread {
        os_id: u64,
        name: String,
    },
    ScopeEnter(String),
    Watermark(u64),
    ScopeExit,
    Name {
        addr: u64,
        var: String,
        type_name: String,
        file: String,
        line: u32,
    },
    Module {
        base: u64,
        size: u64,
        path: String,
        build_id: Vec<u8>,
    },
    Mark(String),
}

impl Owned {
    pub fn record(&self) -> Record<'_> {
        match self {
            Owned::Alloc(a) => Record::Alloc(*a),
            Owned::Dealloc(d) => Record::Dealloc(*d),
            Owned::Realloc(r) => Record::Realloc(*r),
            Owned::Sync(d) => Record::Sync(*d),
            Owned::Lost(count) => Record::Lost { count: *count },
            Owned::Header {
                version,
                pointer_width,
                ticks_per_second,
                program,
                build_id,
                target,
            } => Record::Header(Header {
                magic: MAGIC,
                version: *version,
                pointer_width: *pointer_width,
                ticks_per_second: *ticks_per_second,
                program,
                build_id,
                target,
            }),
            Owned::HeapRegion(r) => Record::HeapRegion(*r),
            Owned::End(e) => Record::End(*e),
            Owned::Stack { id, frames } => Record::Stack(Stack {
                id: *id,
                frames: Frames::Slice(frames),
            }),
            Owned::Thread { os_id, name } => Record::Thread(Thread {
                os_id: *os_id,
                name,
            }),
            Owned::ScopeEnter(name) => Record::ScopeEnter { name },
            Owned::ScopeExit => Record::ScopeExit,
            Owned::Name {
                addr,
                var,
                type_name,
                file,
                line,
            } => Record::Name(Name {
                addr: *addr,
                var,
                type_name,
                file,
                line: *line,
            }),
            Owned::Module {
                base,
                size,
                path,
                build_id,
            } => Record::Module(Module {
                base: *base,
                size: *size,
                path,
                build_id,
            }),
            Owned::Mark(name) => Record::Mark { name },
            Owned::Watermark(ts) => Record::Watermark { ts: *ts },
        }
    }

    /// A dealloc without its own clock reading carries the stream's previous
    /// timestamp: the encoder does not write it, so set it before encoding.
    pub fn with_base(mut self, base_ts: u64) -> Self {
        if let Owned::Dealloc(d) = &mut self {
            if !d.ts_exact {
                d.ts = base_ts;
            }
        }
        self
    }
}

/// The base a reader holds after `rec`, computed from the format's rules
/// (not from the encoder), to check syncs against.
pub fn next_base(base: Delta, rec: &Record<'_>) -> Delta {
    let mut next = base;
    match rec {
        Record::Alloc(a) => {
            next.ts = a.ts;
            if let Some(addr) = a.addr {
                next.addr = addr;
            }
        }
        Record::Dealloc(d) => {
            if d.ts_exact {
                next.ts = d.ts;
            }
            next.addr = d.addr;
        }
        Record::Realloc(r) => {
            next.ts = r.ts;
            next.addr = r.new_addr.unwrap_or(r.old_addr);
        }
        Record::Sync(d) => next = *d,
        _ => {}
    }
    next
}

/// Alignments: the seven that fit the tag (1..=64) and explicit ones (128..2^63).
pub fn align() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u32..7).prop_map(|k| 1u64 << k),
        (7u32..64).prop_map(|k| 1u64 << k)
    ]
}

/// Addresses: anywhere, or close together as a real heap hands them out.
pub fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0x2000_0000u64..0x2001_0000),
        (0x5555_0000_0000u64..0x5555_0010_0000)
    ]
}

/// Timestamps and sizes: small values (one varint byte) or anything.
pub fn num() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..300, any::<u64>()]
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

pub fn heap_record() -> impl Strategy<Value = Owned> {
    let stack = proptest::option::of(any::<u32>());
    prop_oneof![
        (
            num(),
            proptest::option::of(addr()),
            num(),
            align(),
            any::<bool>(),
            stack.clone()
        )
            .prop_map(
                |(ts, addr, size, align, zeroed, stack)| Owned::Alloc(Alloc {
                    ts,
                    addr,
                    size,
                    align,
                    zeroed,
                    stack,
                })
            ),
        (num(), any::<bool>(), addr(), num(), align(), stack.clone()).prop_map(
            |(ts, ts_exact, addr, size, align, stack)| Owned::Dealloc(Dealloc {
                ts,
                ts_exact,
                addr,
                size,
                align,
                stack,
            })
        ),
        (
            num(),
            addr(),
            num(),
            proptest::option::of(addr()),
            num(),
            align(),
            stack
        )
            .prop_map(
                |(ts, old_addr, old_size, new_addr, new_size, align, stack)| Owned::Realloc(
                    Realloc {
                        ts,
                        old_addr,
                        old_size,
                        new_addr,
                        new_size,
                        align,
                        stack,
                    }
                )
            ),
    ]
}

/// Extension records; stacks up to `max_depth` frames.
pub fn ext_record(max_depth: usize) -> impl Strategy<Value = Owned> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u8>(),
            any::<u64>(),
            text(),
            vec(any::<u8>(), 0..40),
            text()
        )
            .prop_map(
                |(version, pointer_width, ticks_per_second, program, build_id, target)| {
                    Owned::Header {
                        version,
                        pointer_width,
                        ticks_per_second,
                        program,
                        build_id,
                        target,
                    }
                }
            ),
        (any::<u64>(), any::<u64>())
            .prop_map(|(start, len)| Owned::HeapRegion(HeapRegion { start, len })),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(
                |(allocs, deallocs, reallocs, failed, lost, streams)| Owned::End(End {
                    allocs,
                    deallocs,
                    reallocs,
                    failed,
                    lost,
                    streams,
                })
            ),
        (any::<u32>(), vec(addr(), 0..=max_depth))
            .prop_map(|(id, frames)| Owned::Stack { id, frames }),
        (any::<u64>(), text()).prop_map(|(os_id, name)| Owned::Thread { os_id, name }),
        text().prop_map(Owned::ScopeEnter),
        Just(Owned::ScopeExit),
        (addr(), text(), text(), text(), any::<u32>()).prop_map(
            |(addr, var, type_name, file, line)| {
                Owned::Name {
                    addr,
                    var,
                    type_name,
                    file,
                    line,
                }
            }
        ),
        (addr(), any::<u64>(), text(), vec(any::<u8>(), 0..40)).prop_map(
            |(base, size, path, build_id)| {
                Owned::Module {
                    base,
                    size,
                    path,
                    build_id,
                }
            }
        ),
        text().prop_map(Owned::Mark),
        any::<u64>().prop_map(Owned::Watermark),
    ]
}

/// Every kind, heap events most often (as in a real stream).
pub fn any_record() -> impl Strategy<Value = Owned> {
    prop_oneof![
        6 => heap_record(),
        2 => ext_record(MAX_STACK_DEPTH),
        1 => (any::<u64>(), any::<u64>()).prop_map(|(ts, addr)| Owned::Sync(Delta { ts, addr })),
        1 => any::<u64>().prop_map(Owned::Lost),
    ]
}

/// Bytes of an extension record of a kind this version does not know.
pub fn unknown_ext(kind: u64, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut v = [0u8; 10];
    let n = memscope_core::varint::write_u64(&mut v, kind).unwrap();
    out.extend_from_slice(&v[..n]);
    let n = memscope_core::varint::write_u64(&mut v, body.len() as u64).unwrap();
    out.extend_from_slice(&v[..n]);
    out.extend_from_slice(body);
    out
}
