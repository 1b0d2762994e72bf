//! Every record kind survives `encode` → `decode` over arbitrary values, alone
//! and in sequences written by a `StreamEncoder` (with dropped events, syncs
//! and extension kinds this version does not know) and read back by `Records`.

mod support;

use memscope_core::stream::{StreamEncoder, SYNC_INTERVAL};
use memscope_core::wire::{kind, Common, DecodeError, Delta, Record, Records};
use proptest::collection::vec;
use proptest::prelude::*;
use support::{
    any_record, config, ext_record, heap_record, max_len, next_base, unknown_ext, Owned,
};

/// Big enough for any generated record (extension bodies stay far below 16 KiB).
const BUF: usize = 1 << 15;

proptest! {
    #![proptest_config(config(512))]

    /// One record alone, against an arbitrary base: same record, same length,
    /// same next base; every strict prefix is reported truncated and leaves
    /// the base alone.
    #[test]
    fn every_kind_round_trips(rec in any_record(), base_ts: u64, base_addr: u64) {
        let base = Delta { ts: base_ts, addr: base_addr };
        let owned = rec.with_base(base.ts);
        let rec = owned.record();
        let mut buf = vec![0u8; BUF];
        let (n, next) = rec.encode(base, &mut buf).unwrap();
        prop_assert_eq!(next, next_base(base, &rec));

        let mut delta = base;
        let (back, used) = Record::decode(&buf[..n], &mut delta).unwrap();
        prop_assert_eq!(back, rec);
        prop_assert_eq!(used, n);
        prop_assert_eq!(delta, next);

        for cut in 0..n {
            let mut delta = base;
            prop_assert_eq!(Record::decode(&buf[..cut], &mut delta).map(|_| ()), Err(DecodeError::Truncated));
            prop_assert_eq!(delta, base);
        }
    }

    /// `decode_common` reads exactly the successful allocations and frees
    /// with an alignment in their tag, as `decode` does (same fields, length
    /// and next base), and leaves every other record, and every strict
    /// prefix of one, to `decode` with the base untouched.
    #[test]
    fn common_records_decode_as_the_general_path_does(
        rec in any_record(),
        base_ts: u64,
        base_addr: u64,
    ) {
        let base = Delta { ts: base_ts, addr: base_addr };
        let owned = rec.with_base(base.ts);
        let rec = owned.record();
        let mut buf = vec![0u8; BUF];
        let (n, next) = rec.encode(base, &mut buf).unwrap();
        let want = match rec {
            Record::Alloc(a) if a.addr.is_some() && a.align < 128 => Some(Common {
                kind: if a.zeroed { kind::ALLOC_ZEROED } else { kind::ALLOC },
                ts: a.ts,
                ts_exact: false,
                addr: a.addr.unwrap(),
                size: a.size,
                align_log2: a.align.trailing_zeros() as u8,
                stack: a.stack,
            }),
            Record::Dealloc(d) if d.align < 128 => Some(Common {
                kind: kind::DEALLOC,
                ts: d.ts,
                ts_exact: d.ts_exact,
                addr: d.addr,
                size: d.size,
                align_log2: d.align.trailing_zeros() as u8,
                stack: d.stack,
            }),
            _ => None,
        };
        let mut delta = base;
        match Record::decode_common(&buf[..n], &mut delta) {
            Some((c, used)) => {
                prop_assert_eq!(Some(c), want);
                prop_assert_eq!(used, n);
                prop_assert_eq!(delta, next);
            }
            None => {
                prop_assert_eq!(None, want);
                prop_assert_eq!(delta, base);
            }
        }
        for cut in 0..n {
            let mut delta = base;
            prop_assert!(Record::decode_common(&buf[..cut], &mut delta).is_none());
            prop_assert_eq!(delta, base);
        }
    }

    /// An output buffer too small is an error at every size, never a panic or
    /// a partial record that claims success.
    #[test]
    fn short_output_is_refused(rec in any_record(), base_ts: u64, base_addr: u64) {
        let base = Delta { ts: base_ts, addr: base_addr };
        let owned = rec.with_base(base.ts);
        let rec = owned.record();
        let mut buf = vec![0u8; BUF];
        let (n, _) = rec.encode(base, &mut buf).unwrap();
        for short in [0, n / 2, n.saturating_sub(1)] {
            if short < n {
                prop_assert!(rec.encode(base, &mut buf[..short]).is_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A whole stream as the producer writes it: `prepare`, then `commit` or
    /// (ring full) `lose`. The reader gets every committed record in order,
    /// `Lost` records adding up to the dropped events, a `Sync` first and at
    /// least every `SYNC_INTERVAL` records, each sync carrying the base the
    /// reader already had; unknown extension kinds between records are
    /// skipped without disturbing anything.
    #[test]
    fn stream_round_trips(
        ops in vec(
            prop_oneof![
                8 => (heap_record(), proptest::bool::weighted(0.1)).prop_map(|(r, drop)| Op::Record(r, drop)),
                2 => (ext_record(16), proptest::bool::weighted(0.1)).prop_map(|(r, drop)| Op::Record(r, drop)),
                1 => (11u64..u64::MAX, vec(any::<u8>(), 0..300)).prop_map(|(k, b)| Op::Unknown(k, b)),
            ],
            0..max_len(700),
        )
    ) {
        let mut enc = StreamEncoder::new();
        let mut payload = Vec::new();
        let mut buf = vec![0u8; BUF];
        let mut expect = Vec::new(); // committed records and unknowns, in order
        let mut dropped = 0u64;
        for op in ops {
            match op {
                Op::Record(owned, drop) => {
                    let owned = owned.with_base(enc.last_ts());
                    let p = enc.prepare(&owned.record(), &mut buf).unwrap();
                    if drop {
                        enc.lose();
                        dropped += 1;
                    } else {
                        payload.extend_from_slice(&buf[..p.len]);
                        enc.commit(p);
                        expect.push(Op::Record(owned, false));
                    }
                }
                Op::Unknown(kind, body) => {
                    payload.extend_from_slice(&unknown_ext(kind, &body));
                    expect.push(Op::Unknown(kind, body));
                }
            }
        }

        let mut delta = Delta::default();
        let mut records = Records::new(&payload, &mut delta);
        let mut got = Vec::new();
        for r in records.by_ref() {
            got.push(r.unwrap());
        }
        prop_assert_eq!(records.remaining(), 0);

        let mut base = Delta::default();
        let mut reported_lost = 0;
        let mut since_sync: Option<u32> = None;
        let mut want = expect.iter();
        for rec in &got {
            match rec {
                Record::Lost { count } => reported_lost += count,
                Record::Sync(d) => {
                    prop_assert_eq!(*d, base, "a sync restates the base");
                    since_sync = Some(0);
                }
                Record::Unknown { kind, body } => {
                    let Some(Op::Unknown(k, b)) = want.next() else {
                        return Err(TestCaseError::fail("unexpected unknown record"));
                    };
                    prop_assert_eq!((*kind, *body), (*k, &b[..]));
                }
                rec => {
                    let Some(Op::Record(owned, _)) = want.next() else {
                        return Err(TestCaseError::fail(format!("unexpected {rec:?}")));
                    };
                    prop_assert_eq!(rec, &owned.record());
                    let Some(n) = since_sync.as_mut() else {
                        return Err(TestCaseError::fail("record before the first sync"));
                    };
                    *n += 1;
                    prop_assert!(*n <= SYNC_INTERVAL, "{} records since the last sync", n);
                }
            }
            base = next_base(base, rec);
        }
        prop_assert!(want.next().is_none(), "records missing");
        prop_assert_eq!(reported_lost + enc.pending_lost(), dropped);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A record, and whether the ring was full for it.
    Record(Owned, bool),
    /// An extension record of an unknown kind, and its body.
    Unknown(u64, Vec<u8>),
}

/// Later versions may append fields to an extension body; this reader must
/// take the fields it knows and ignore the rest.
#[test]
fn extension_bodies_may_grow() {
    use memscope_core::wire::{End, Header};
    let header = Header::new(4, 32_768, "fw");
    let end = End {
        allocs: 3,
        deallocs: 2,
        reallocs: 1,
        failed: 1,
        lost: 0,
        streams: 0,
    };
    let mut hbuf = [0u8; 64];
    let mut ebuf = [0u8; 64];
    for (kind, body, want) in [
        (
            1u64,
            postcard::to_slice(&header, &mut hbuf).unwrap().to_vec(),
            Record::Header(header),
        ),
        (
            2,
            postcard::to_slice(&end, &mut ebuf).unwrap().to_vec(),
            Record::End(end),
        ),
    ] {
        let mut grown = body.clone();
        grown.extend_from_slice(&[7, 0, 0xff, 0x01]);
        let bytes = unknown_ext(kind, &grown);
        let mut delta = Delta::default();
        let (rec, n) = Record::decode(&bytes, &mut delta).unwrap();
        assert_eq!(rec, want);
        assert_eq!(n, bytes.len());
    }
}

/// Kind 7 is reserved: the reader stops at it (record lengths are implicit)
/// and says how much of the frame it gave up.
#[test]
fn reserved_kind_stops_the_frame() {
    let mut payload = vec![0u8; 64];
    let (n, _) = Record::Lost { count: 5 }
        .encode(Delta::default(), &mut payload)
        .unwrap();
    payload.truncate(n);
    payload.extend_from_slice(&[0x07, 1, 2, 3]);
    let mut delta = Delta::default();
    let mut records = Records::new(&payload, &mut delta);
    assert_eq!(records.next(), Some(Ok(Record::Lost { count: 5 })));
    assert_eq!(records.next(), Some(Err(DecodeError::ReservedKind)));
    assert_eq!(records.next(), None);
    assert_eq!(records.remaining(), 4);
}

/// Extension bodies of every length class: one-byte length (up to 127), two-byte
/// length (up to 16383), and too long (refused, never truncated).
#[test]
fn extension_body_lengths_at_the_varint_boundaries() {
    // A mark's body is the name's length as a varint, then the name.
    for (name_len, body_len) in [
        (0usize, 1usize),
        (126, 127),
        (127, 128),
        (200, 202),
        (16381, 16383),
    ] {
        let name = "m".repeat(name_len);
        let rec = Record::Mark { name: &name };
        let mut buf = vec![0u8; 20_000];
        let (n, _) = rec.encode(Delta::default(), &mut buf).unwrap();
        let len_len = if body_len < 128 { 1 } else { 2 };
        assert_eq!(n, 2 + len_len + body_len, "tag, kind, length, body");
        let mut delta = Delta::default();
        let (back, used) = Record::decode(&buf[..n], &mut delta).unwrap();
        assert_eq!((back, used), (rec, n));
        // Exactly enough room works; one byte less does not.
        assert_eq!(
            rec.encode(Delta::default(), &mut buf[..n]).map(|r| r.0),
            Ok(n)
        );
        assert!(rec.encode(Delta::default(), &mut buf[..n - 1]).is_err());
    }
    let name = "m".repeat(16382);
    let mut buf = vec![0u8; 20_000];
    assert_eq!(
        Record::Mark { name: &name }.encode(Delta::default(), &mut buf),
        Err(memscope_core::wire::EncodeError::Unrepresentable)
    );
}

proptest! {
    #![proptest_config(config(256))]

    /// The header, heap region and end bodies are written by hand (no
    /// serializer on a microcontroller); they must be postcard's bytes.
    #[test]
    fn hand_written_bodies_are_postcards(rec in support::ext_record(0)) {
        let rec = rec.record();
        let mut body = vec![0u8; 1 << 14];
        let want: Vec<u8> = match rec {
            Record::Header(h) => postcard::to_slice(&h, &mut body).unwrap().to_vec(),
            Record::HeapRegion(r) => postcard::to_slice(&r, &mut body).unwrap().to_vec(),
            Record::End(e) => postcard::to_slice(&e, &mut body).unwrap().to_vec(),
            Record::Watermark { ts } => postcard::to_slice(&ts, &mut body).unwrap().to_vec(),
            _ => return Ok(()),
        };
        let mut buf = vec![0u8; 1 << 15];
        let (n, _) = rec.encode(Delta::default(), &mut buf).unwrap();
        let mut delta = Delta::default();
        let raw = as_unknown(&buf[..n]);
        let Record::Unknown { body, .. } = Record::decode(&raw, &mut delta).unwrap().0 else {
            unreachable!()
        };
        prop_assert_eq!(body, &want[..]);
    }
}

/// The same extension record with its kind replaced by one no reader knows,
/// so that decoding hands back the raw body.
fn as_unknown(rec: &[u8]) -> Vec<u8> {
    let (_, kind_len) = memscope_core::varint::read_u64(&rec[1..]).unwrap();
    let mut out = vec![0u8, 0x7f];
    out.extend_from_slice(&rec[1 + kind_len..]);
    out
}
