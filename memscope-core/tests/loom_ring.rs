//! Loom models of the ring and of the producer discipline built on it.
//!
//! Run with (about a minute, release mode):
//! `RUSTFLAGS="--cfg loom" cargo test -p memscope-core --release --test loom_ring`
//!
//! Under `--cfg loom` the ring's atomics and byte cells are loom's, so loom
//! explores every interleaving (and every value a load may return under the
//! C++ memory model) of a producer and a concurrent consumer, and checks that
//! no byte is read while it is written.
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use memscope_core::frame::{encode_frame, max_frame_len, Deframer, FrameEvent, MAX_HEAD_LEN};
use memscope_core::stream::StreamEncoder;
use memscope_core::wire::{Alloc, Dealloc, Delta, Record, Records, MAX_EVENT_LEN};
use memscope_core::Ring;

/// Entry `seq`: its length, its sequence number, then `seq % 3` bytes derived
/// from both, so a torn or stale byte anywhere shows.
fn entry(seq: u8) -> Vec<u8> {
    let len = 2 + seq % 3;
    (0..len)
        .map(|i| match i {
            0 => len,
            1 => seq,
            i => seq.wrapping_mul(31).wrapping_add(i),
        })
        .collect()
}

/// Parses whole entries from the committed bytes; every committed byte must
/// belong to a whole entry (entries are pushed whole or not at all).
fn parse(bytes: &[u8]) -> Vec<u8> {
    let mut seqs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = bytes[at] as usize;
        assert!(
            len >= 2 && at + len <= bytes.len(),
            "torn entry at {at}: {bytes:?}"
        );
        let seq = bytes[at + 1];
        assert_eq!(
            &bytes[at..at + len],
            &entry(seq)[..],
            "entry {seq} corrupted"
        );
        seqs.push(seq);
        at += len;
    }
    seqs
}

/// Reads what is committed; releases only the first entry when `first_only`.
fn consume(ring: &Ring<8>, first_only: bool, seen: &mut Vec<u8>) {
    // SAFETY: this thread is the only consumer.
    unsafe {
        ring.read(|a, b| {
            let bytes = [a, b].concat();
            let seqs = parse(&bytes);
            if first_only && !seqs.is_empty() {
                seen.push(seqs[0]);
                bytes[0] as usize
            } else {
                seen.extend(seqs);
                bytes.len()
            }
        });
    }
}

/// One producer pushes entries (in two parts each, so wrapping and multi-part
/// copies happen) into an 8-byte ring while one consumer reads and releases,
/// partly and wholly. The consumer sees exactly the entries that were
/// accepted, whole, in order; a refused entry never shows up.
#[test]
fn ring_entries_arrive_whole_and_in_order() {
    loom::model(|| {
        let ring = Arc::new(Ring::<8>::new());
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut accepted = Vec::new();
                for seq in 0..4u8 {
                    let e = entry(seq);
                    // SAFETY: this thread is the only producer.
                    if unsafe { ring.push(&[&e[..1], &e[1..]]) } {
                        accepted.push(seq);
                    }
                }
                accepted
            })
        };
        let mut seen = Vec::new();
        consume(&ring, true, &mut seen);
        thread::yield_now();
        consume(&ring, false, &mut seen);
        let accepted = producer.join().unwrap();
        consume(&ring, false, &mut seen);
        assert_eq!(seen, accepted);
        assert!(ring.is_empty());
        assert!(!accepted.is_empty(), "the first entry always fits");
    });
}

/// What a critical section protects on a microcontroller: the stream's
/// encoder and (here) a model heap with one reusable address.
struct Guarded {
    enc: StreamEncoder,
    /// Whether address 0x100 is handed out; 0x200 always is available.
    taken: bool,
    performed: u64,
}

/// The discipline of `Stream`: inner allocator call, encoding, push into the
/// ring and commit, all in one critical section (here a loom `Mutex`), from
/// two producers (thread mode and an interrupt handler on a microcontroller),
/// while a consumer drains concurrently. Whatever the interleaving, the
/// decoded stream never shows an address allocated twice without a free in
/// between, and recorded + lost events add up to the events performed.
///
/// With a 64-byte ring nothing is lost and the order is checked strictly; with
/// a 16-byte ring events are dropped and the `Lost` records must account for
/// every one of them.
#[test]
fn stream_discipline_keeps_the_allocator_order() {
    discipline::<64>();
}

#[test]
fn stream_discipline_accounts_for_every_dropped_event() {
    discipline::<16>();
}

fn discipline<const N: usize>() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let ring = Arc::new(Ring::<N>::new());
        let state = Arc::new(Mutex::new(Guarded {
            enc: StreamEncoder::new(),
            taken: false,
            performed: 0,
        }));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, state) = (ring.clone(), state.clone());
                thread::spawn(move || {
                    let addr = event(&ring, &state, None);
                    event(&ring, &state, Some(addr));
                })
            })
            .collect();
        // The consumer drains while the producers run (a yield lets loom
        // schedule them in between without spending a preemption).
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut bytes = Vec::new();
                drain(&ring, &mut bytes);
                thread::yield_now();
                drain(&ring, &mut bytes);
                bytes
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        let mut bytes = consumer.join().unwrap();
        drain(&ring, &mut bytes);

        let st = state.lock().unwrap();
        let (events, lost) = decode(&bytes);
        assert_eq!(events + lost + st.enc.pending_lost(), st.performed);
        assert_eq!(st.performed, 4);
        if N >= 64 {
            assert_eq!(
                lost + st.enc.pending_lost(),
                0,
                "a 64-byte ring holds all four"
            );
        }
    });
}

/// Allocates (`free` None) or frees, and records it, in one critical section.
fn event<const N: usize>(ring: &Ring<N>, state: &Mutex<Guarded>, free: Option<u64>) -> u64 {
    let mut st = state.lock().unwrap();
    // The "inner allocator".
    let rec = match free {
        None => {
            let addr = if st.taken { 0x200 } else { 0x100 };
            st.taken |= addr == 0x100;
            Record::Alloc(Alloc {
                ts: 0,
                addr: Some(addr),
                size: 16,
                align: 8,
                zeroed: false,
                stack: None,
            })
        }
        Some(addr) => {
            if addr == 0x100 {
                st.taken = false;
            }
            Record::Dealloc(Dealloc {
                ts: 0,
                ts_exact: false,
                addr,
                size: 16,
                align: 8,
                stack: None,
            })
        }
    };
    st.performed += 1;
    // The record, as `Stream::write` does it.
    let mut buf = [0u8; MAX_HEAD_LEN + MAX_EVENT_LEN];
    let mut frame = [0u8; max_frame_len(MAX_HEAD_LEN + MAX_EVENT_LEN)];
    let p = st.enc.prepare(&rec, &mut buf).unwrap();
    let n = encode_frame(0, false, &[&buf[..p.len]], &mut frame).unwrap();
    // SAFETY: pushes happen only with the mutex held: one producer at a time.
    if unsafe { ring.push(&[&frame[..n]]) } {
        st.enc.commit(p);
    } else {
        st.enc.lose();
    }
    match rec {
        Record::Alloc(a) => a.addr.unwrap(),
        _ => 0,
    }
}

fn drain<const N: usize>(ring: &Ring<N>, out: &mut Vec<u8>) {
    // SAFETY: the test thread is the only consumer.
    unsafe {
        ring.read(|a, b| {
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            a.len() + b.len()
        });
    }
}

/// Decodes the drained bytes; checks that per address allocations and frees
/// alternate. Returns the heap events recorded and the lost events reported.
fn decode(bytes: &[u8]) -> (u64, u64) {
    let mut buf = [0u8; 128];
    let mut deframer = Deframer::new(&mut buf);
    let mut delta = Delta::default();
    let (mut events, mut lost) = (0, 0);
    let mut live = [false; 2];
    let slot = |addr: u64| (addr / 0x100 - 1) as usize;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (n, ev) = deframer.push(rest);
        rest = &rest[n..];
        match ev {
            Some(FrameEvent::Frame { records, .. }) => {
                for r in Records::new(records, &mut delta) {
                    match r.unwrap() {
                        Record::Alloc(a) => {
                            let s = slot(a.addr.unwrap());
                            // 0x200 is handed out twice at once by design.
                            // Unless the free between was dropped (and said so).
                            assert!(
                                s == 1 || !live[s] || lost > 0,
                                "0x100 allocated twice without a free"
                            );
                            live[s] = true;
                            events += 1;
                        }
                        Record::Dealloc(d) => {
                            let s = slot(d.addr);
                            // Only a lost alloc record can explain a free of a block not live.
                            assert!(
                                live[s] || lost > 0,
                                "free of {:#x} before its alloc",
                                d.addr
                            );
                            if s == 0 {
                                live[s] = false;
                            }
                            events += 1;
                        }
                        Record::Lost { count } => lost += count,
                        Record::Sync(_) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            Some(FrameEvent::Damaged { offset, .. }) => panic!("damage at {offset}"),
            None => {}
        }
    }
    (events, lost)
}

/// Three actors on one ring: a producer, a consumer, and a third party that
/// only asks how full it is (`len`), as a live view of a `RingSink` or a
/// statistics reader does. Whatever it sees must be a length the ring could
/// have: never more than its capacity. (This model found `len` loading
/// `head` before `tail` and returning 2^64 - 2.) About 270 000 interleavings.
#[test]
fn a_third_party_sees_a_length_within_capacity() {
    let mut builder = loom::model::Builder::new();
    // `LOOM_MAX_PREEMPTIONS` set (read by `Builder::new`) wins, for longer runs.
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(|| {
        let ring = Arc::new(Ring::<4>::new());
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                for seq in 0..3u8 {
                    // SAFETY: this thread is the only producer.
                    unsafe { ring.push(&[&[seq, seq]]) };
                }
            })
        };
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    // SAFETY: this thread is the only consumer.
                    unsafe { ring.read(|a, b| a.len() + b.len()) };
                }
            })
        };
        let observer = {
            let ring = ring.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let len = ring.len();
                    assert!(len <= ring.capacity(), "a third party saw length {len}");
                }
            })
        };
        observer.join().unwrap();
        producer.join().unwrap();
        consumer.join().unwrap();
    });
}
