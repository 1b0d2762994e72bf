//! Bad input: truncated at any byte, random damage, not a trace, a future
//! version. Never a panic; every intact record kept; errors name the offset.

mod common;
use common::*;
use memscope_core::wire::Header;
use memscope_decode::error::Error;

fn sample(checked: bool) -> Vec<u8> {
    let mut b = builder().checked(checked).batched(24);
    b.simple_header("host", 1_000_000_000).unwrap();
    b.thread(1, 1, "main").unwrap();
    b.stack(1, 0, &[0x1000, 0x2000, 0x3000]).unwrap();
    let mut live = Vec::new();
    for i in 0..400u64 {
        let addr = 0x10_0000 + i * 64;
        b.alloc(1, i * 10, addr, 8 + i % 40, 8, Some(0)).unwrap();
        live.push((addr, 8 + i % 40));
        if i % 3 == 0 {
            let (a, s) = live.remove(0);
            b.dealloc(1, None, a, s, 8, Some(0)).unwrap();
        }
    }
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    b.finish().unwrap()
}

#[test]
fn truncated_at_every_byte_never_panics_and_keeps_what_is_intact() {
    let full = sample(false);
    let whole = report_of(&run_live(&full).unwrap()).summary;
    assert!(whole.complete);
    let mut prev_allocs = 0;
    // Every prefix length (stepping to keep the test quick on big traces).
    let step = (full.len() / 1500).max(1);
    for cut in (0..full.len()).step_by(step) {
        match run_live(&full[..cut]) {
            Ok(run) => {
                let s = report_of(&run).summary;
                assert!(
                    s.allocations >= prev_allocs,
                    "cut {cut}: decoded fewer allocations than a shorter prefix"
                );
                assert!(s.allocations <= whole.allocations);
                assert!(
                    !s.complete || cut == full.len(),
                    "cut {cut} claims completeness"
                );
                prev_allocs = s.allocations;
            }
            Err(e) => {
                // Only a prefix too short to hold one frame may be refused.
                assert!(matches!(e, Error::NotATrace { .. }), "cut {cut}: {e}");
                assert!(
                    cut < 64,
                    "cut {cut}: refused a prefix with intact frames: {e}"
                );
            }
        }
    }
}

#[test]
fn random_damage_is_reported_by_offset_and_decoding_resumes_after_a_sync() {
    for checked in [false, true] {
        let full = sample(checked);
        let whole = report_of(&run_live(&full).unwrap()).summary;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..60 {
            let mut bytes = full.clone();
            for _ in 0..1 + round % 4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng as usize) % bytes.len();
                bytes[i] ^= (rng >> 32) as u8 | 1;
            }
            let Ok(run) = run_file(&bytes) else { continue };
            let r = report_of(&run);
            let s = &r.summary;
            assert!(
                s.allocations <= whole.allocations + 2,
                "round {round}: more allocations than recorded"
            );
            let i = &r.integrity;
            let damaged = i.damaged_spans > 0 || i.record_errors > 0;
            if damaged {
                assert!(!s.complete, "round {round}: damaged but complete");
            }
            for d in &i.damage {
                assert!(d.offset < bytes.len() as u64 && d.offset + d.len <= bytes.len() as u64);
            }
        }
    }
}

#[test]
fn after_damage_a_stream_waits_for_its_next_sync() {
    // 1000 events in frames of one record: a sync every 256 records.
    let mut b = builder();
    b.simple_header("host", 0).unwrap();
    for i in 0..1000u64 {
        b.alloc(1, i, 0x1000 + i * 16, 16, 8, None).unwrap();
    }
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let mut bytes = b.finish().unwrap();
    // Break a frame near the start (after the header frame): COBS damage.
    let zeros: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0)
        .map(|(i, _)| i)
        .collect();
    let victim = zeros[5] + 1; // first byte of the 7th frame
    bytes[victim] = 0xFF;
    bytes[victim + 1] = 0xFF;
    let r = report_of(&run_file(&bytes).unwrap());
    let i = &r.integrity;
    assert_eq!(i.damaged_spans, 1);
    assert_eq!(i.damage[0].offset, victim as u64);
    // The frame lost one event; the rest until the next Sync (record 256 of
    // the stream) are skipped and counted, the others decoded.
    let decoded = r.summary.allocations;
    assert_eq!(decoded + i.skipped_unsynced + 1, 1000, "{i:?}");
    assert!(i.skipped_unsynced > 0 && i.skipped_unsynced < 256);
    assert!(!r.summary.complete);
    assert_eq!(r.errors.total, 0);
}

#[test]
fn not_a_memscope_trace_is_refused_with_an_offset() {
    let text = b"hello, this is not a trace at all\n".repeat(100);
    match run_file(&text) {
        Err(Error::NotATrace { offset, reason, .. }) => {
            assert!(reason.contains("not a memscope trace"), "{reason}");
            assert!(offset <= text.len() as u64);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("text accepted as a trace"),
    }
    let mut rng = 77u64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 56) as u8
        })
        .collect();
    assert!(matches!(run_file(&random), Err(Error::NotATrace { .. })));
    assert!(matches!(run_file(&[]), Err(Error::NotATrace { .. })));
}

#[test]
fn a_future_format_version_is_refused() {
    let mut b = builder();
    let mut h = Header::new(8, 0, "future");
    h.version = memscope_core::wire::FORMAT_VERSION + 1;
    b.raw(&[0, 0]).unwrap();
    b.header(h, None).unwrap();
    b.alloc(0, 0, 0x10, 8, 8, None).unwrap();
    let bytes = b.finish().unwrap();
    match run_file(&bytes) {
        Err(e @ Error::NotATrace { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("at byte 2"), "{msg}");
            assert!(msg.contains("newer"), "{msg}");
            assert_eq!(e.exit_code(), 4);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("future version accepted"),
    }
}

#[test]
fn unknown_extension_records_are_skipped() {
    let mut b = builder();
    b.simple_header("host", 0).unwrap();
    b.alloc(1, 0, 0x10, 8, 8, None).unwrap();
    // Extension kind 99 with a 3-byte body, then a normal record in the same frame.
    b.raw_frame(1, &[0, 99, 3, 1, 2, 3]).unwrap();
    b.alloc(1, 0, 0x20, 8, 8, None).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let r = report_of(&run_file(&b.finish().unwrap()).unwrap());
    assert_eq!(r.integrity.unknown_records, 1);
    assert_eq!(r.summary.allocations, 2);
    assert!(r.summary.complete, "{:?}", r.summary.incomplete_reasons);
}

#[test]
fn heavy_random_damage_never_panics_anywhere_in_the_pipeline() {
    // Unchecked frames, so damaged bytes often still decode as (bogus)
    // records: huge sizes, unknown streams, absurd counts. Every stage, the
    // report, both renderers and the budget check must survive them.
    let full = sample(false);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..300 {
        let mut bytes = full.clone();
        let edits = 1 + next() % 40;
        for _ in 0..edits {
            let i = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[i] = next() as u8,
                1 => bytes[i] = 0,
                2 => bytes.insert(i, next() as u8),
                _ => {
                    bytes.remove(i);
                }
            }
        }
        let run = match if round % 2 == 0 {
            run_live(&bytes)
        } else {
            run_file(&bytes)
        } {
            Ok(r) => r,
            Err(e) => {
                assert!(matches!(e, Error::NotATrace { .. }), "round {round}: {e}");
                continue;
            }
        };
        let r = report_of(&run);
        let _ = memscope_decode::render::terminal::render(&r);
        memscope_decode::render::json::write(&r, std::io::sink()).unwrap();
        let _ = memscope_decode::budget::check(
            &r,
            &memscope_decode::budget::Budget {
                max_peak: Some(1),
                no_leaks: true,
                require_complete: true,
                ..Default::default()
            },
        );
    }
}
