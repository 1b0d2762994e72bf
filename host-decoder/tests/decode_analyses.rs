//! Each analysis on a synthetic trace with exact expected numbers.

mod common;
use common::*;
use memscope_core::wire::{Header, Record};
use serde_json::Value;

const HEAP: u64 = 0x2000_0000;

/// A firmware-style trace: stream 0 only, header with a heap region.
fn firmware() -> Builder {
    let mut b = builder();
    b.header(Header::new(4, 1_000_000, "fw"), Some((HEAP, 1024)))
        .unwrap();
    b
}

fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = match k.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[k],
        };
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

#[test]
fn totals_peak_and_leaks_are_exact() {
    let mut b = firmware();
    b.alloc(0, 10, HEAP, 100, ALIGN, None).unwrap();
    b.alloc(0, 20, HEAP + 200, 200, ALIGN, None).unwrap(); // peak: 300 in 2 blocks
    b.dealloc(0, None, HEAP, 100, ALIGN, None).unwrap();
    b.alloc(0, 30, HEAP + 600, 50, ALIGN, None).unwrap();
    b.alloc_failed(0, 40, 4096, ALIGN).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    let s = &v["summary"];
    assert_eq!(u(s, "allocations"), 4);
    assert_eq!(u(s, "deallocations"), 1);
    assert_eq!(u(s, "reallocations"), 0);
    assert_eq!(u(s, "failed_allocations"), 1);
    assert_eq!(u(s, "peak_bytes"), 300);
    assert_eq!(u(s, "peak_blocks"), 2);
    assert_eq!(u(s, "peak_ts"), 20);
    assert_eq!(u(s, "leaked_bytes"), 250);
    assert_eq!(u(s, "leaked_blocks"), 2);
    assert_eq!(u(s, "lost_events"), 0);
    assert_eq!(
        s["complete"],
        Value::Bool(true),
        "{}",
        s["incomplete_reasons"]
    );
    assert_eq!(v["peak"]["method"], "two-pass");
    // Live set at the peak: both blocks, no stack recorded (site 0).
    assert_eq!(u(&v, "peak.sites.0.bytes"), 300);
    assert_eq!(u(&v, "peak.sites.0.count"), 2);
    assert_eq!(u(&v, "leaks.sites.0.bytes"), 250);
    assert_eq!(v["schema_version"], 1);
}

#[test]
fn peak_live_set_is_the_same_in_one_pass_and_two() {
    let mut b = builder();
    b.simple_header("host", 1_000_000_000).unwrap();
    for id in 0..3u32 {
        b.stack(1, id, &[0x1000 + u64::from(id) * 16, 0x2000])
            .unwrap();
    }
    // Grows to a peak of 1000 (site 0: 600, site 1: 400), falls, then a
    // lower local maximum (site 2: 900) that must not replace the peak.
    b.alloc(1, 1, 0x10, 600, ALIGN, Some(0)).unwrap();
    b.alloc(1, 2, 0x1000, 400, ALIGN, Some(1)).unwrap();
    b.dealloc(1, None, 0x10, 600, ALIGN, Some(0)).unwrap();
    b.dealloc(1, None, 0x1000, 400, ALIGN, Some(1)).unwrap();
    b.alloc(1, 3, 0x5000, 900, ALIGN, Some(2)).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let bytes = b.finish().unwrap();
    for (run, method) in [
        (run_file(&bytes).unwrap(), "one-pass"),
        (run_file_two_pass(&bytes).unwrap(), "two-pass"),
        (run_live(&bytes).unwrap(), "incremental"),
    ] {
        let v = serde_json::to_value(report_of(&run)).unwrap();
        assert_eq!(v["peak"]["method"], method);
        assert_eq!(u(&v, "summary.peak_bytes"), 1000);
        let sites: Vec<(u64, u64)> = v["peak"]["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["site"].as_u64().unwrap(), r["bytes"].as_u64().unwrap()))
            .collect();
        assert_eq!(sites, vec![(1, 600), (2, 400)], "{method}");
        assert_eq!(u(&v, "summary.leaked_bytes"), 900);
    }
}

#[test]
fn temporaries_follow_heaptrack_and_the_threshold() {
    let mut b = builder();
    // 1 tick = 1 µs; short-lived threshold is 1 ms = 1000 ticks.
    b.simple_header("host", 1_000_000).unwrap();
    b.alloc(1, 100, 0x100, 10, ALIGN, None).unwrap();
    b.dealloc(1, Some(150), 0x100, 10, ALIGN, None).unwrap(); // temporary, 50 ticks
    b.alloc(1, 200, 0x200, 20, ALIGN, None).unwrap();
    b.alloc(1, 300, 0x300, 30, ALIGN, None).unwrap();
    b.dealloc(1, Some(5000), 0x200, 20, ALIGN, None).unwrap(); // not temporary, 4800 ticks
    b.dealloc(1, Some(5100), 0x300, 30, ALIGN, None).unwrap(); // temporary? no: 0x300 was the last alloc -> yes
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    let t = &v["temporaries"];
    assert_eq!(u(t, "count"), 2);
    assert_eq!(u(t, "bytes"), 40);
    assert_eq!(u(t, "short_lived_threshold_ticks"), 1000);
    assert_eq!(u(t, "short_lived"), 1);
    assert_eq!(t["lifetime_bound"], "exact");
    // Lifetimes 50, 4800, 4800 ticks: buckets [32,64) and [4096,8192).
    let lt: Vec<(u64, u64)> = v["histograms"]["lifetimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["low"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(lt, vec![(32, 1), (4096, 2)]);
    let sizes: Vec<(u64, u64)> = v["histograms"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["low"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, vec![(8, 1), (16, 2)]);
}

#[test]
fn lower_bound_frees_are_marked() {
    let mut b = builder();
    b.simple_header("host", 1_000_000).unwrap();
    b.alloc(1, 100, 0x100, 10, ALIGN, None).unwrap();
    b.dealloc(1, None, 0x100, 10, ALIGN, None).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(v["temporaries"]["lifetime_bound"], "lower");
}

#[test]
fn realloc_chains_give_growth_advice_marked_inferred() {
    let mut b = builder();
    b.simple_header("host", 0).unwrap();
    b.stack(1, 7, &[0xAAAA, 0xBBBB]).unwrap();
    b.alloc(1, 0, 0x1000, 8, ALIGN, Some(7)).unwrap();
    b.realloc(1, 0, 0x1000, 8, Some(0x1000), 16, ALIGN, Some(7))
        .unwrap(); // in place
    b.realloc(1, 0, 0x1000, 16, Some(0x2000), 32, ALIGN, Some(7))
        .unwrap(); // moved: copies 16
    b.realloc(1, 0, 0x2000, 32, Some(0x3000), 64, ALIGN, Some(7))
        .unwrap(); // moved: copies 32
    b.realloc(1, 0, 0x3000, 64, Some(0x4000), 128, ALIGN, Some(7))
        .unwrap(); // moved: copies 64
    b.realloc(1, 0, 0x4000, 128, None, 1 << 40, ALIGN, Some(7))
        .unwrap(); // failed: block stays
    b.dealloc(1, None, 0x4000, 128, ALIGN, Some(7)).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(u(&v, "summary.reallocations"), 5);
    assert_eq!(u(&v, "summary.failed_allocations"), 1);
    assert_eq!(u(&v, "summary.peak_bytes"), 128);
    assert_eq!(u(&v, "summary.leaked_bytes"), 0);
    assert_eq!(u(&v, "summary.bytes_allocated"), 128);
    let g = &v["growth"][0];
    assert_eq!(u(g, "site"), 1);
    assert_eq!(u(g, "chains"), 1);
    assert_eq!(u(g, "max_chain"), 4);
    assert_eq!(g["max_chain_sizes"], serde_json::json!([8, 128]));
    assert_eq!(u(g, "moved"), 3);
    assert_eq!(u(g, "copied_bytes"), 16 + 32 + 64);
    let advice: Vec<&Value> = v["inferred"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "growth_advice")
        .collect();
    assert_eq!(advice.len(), 1);
    assert_eq!(advice[0]["source"], "inferred");
    assert!(advice[0]["confidence"].as_f64().unwrap() > 0.0);
    assert!(!advice[0]["evidence"].as_array().unwrap().is_empty());
    assert!(advice[0]["claim"].as_str().unwrap().contains("4 times"));
    // Without symbols the container is only guessed from behaviour, with low confidence.
    let container: Vec<&Value> = v["inferred"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "container")
        .collect();
    assert_eq!(container.len(), 1);
    assert!(container[0]["confidence"].as_f64().unwrap() < 0.5);
    assert_eq!(container[0]["source"], "inferred");
}

#[test]
fn cross_thread_frees_and_per_thread_numbers() {
    let mut b = builder();
    b.simple_header("host", 1_000_000_000).unwrap();
    b.thread(1, 11, "producer").unwrap();
    b.thread(2, 12, "consumer").unwrap();
    b.alloc(1, 10, 0x100, 64, ALIGN, None).unwrap();
    b.alloc(1, 11, 0x200, 32, ALIGN, None).unwrap();
    b.flush(1).unwrap();
    b.dealloc(2, Some(20), 0x100, 64, ALIGN, None).unwrap();
    b.end(1, 0).unwrap();
    b.end(2, 0).unwrap();
    b.end(0, 2).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(u(&v, "cross_thread_frees.count"), 1);
    assert_eq!(u(&v, "cross_thread_frees.bytes"), 64);
    assert_eq!(
        v["cross_thread_frees"]["pairs"],
        serde_json::json!([[1, 2, 1, 64]])
    );
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0]["name"], "producer");
    assert_eq!(u(&threads[0], "allocations"), 2);
    assert_eq!(u(&threads[0], "leaked_bytes"), 32);
    assert_eq!(u(&threads[1], "foreign_frees"), 1);
    assert_eq!(
        v["summary"]["complete"], true,
        "{}",
        v["summary"]["incomplete_reasons"]
    );
}

#[test]
fn heap_errors_are_reported_with_both_stacks() {
    let mut b = builder();
    b.simple_header("host", 0).unwrap();
    b.stack(1, 1, &[0x11]).unwrap();
    b.stack(1, 2, &[0x22]).unwrap();
    b.stack(1, 3, &[0x33]).unwrap();
    b.alloc(1, 0, 0x100, 16, ALIGN, Some(1)).unwrap();
    b.dealloc(1, None, 0x100, 16, ALIGN, Some(2)).unwrap();
    b.dealloc(1, None, 0x100, 16, ALIGN, Some(3)).unwrap(); // double free
    b.dealloc(1, None, 0x999, 8, ALIGN, Some(3)).unwrap(); // unknown
    b.alloc(1, 0, 0x200, 24, ALIGN, Some(1)).unwrap();
    b.dealloc(1, None, 0x200, 32, ALIGN, Some(2)).unwrap(); // size mismatch
    b.alloc(1, 0, 0x300, 24, 8, Some(1)).unwrap();
    b.realloc(1, 0, 0x300, 24, Some(0x400), 48, 16, Some(2))
        .unwrap(); // align mismatch
    b.alloc(1, 0, 0x400, 8, ALIGN, Some(3)).unwrap(); // over a live block
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    let e = &v["errors"];
    assert_eq!(u(e, "total"), 5);
    for k in [
        "double_free",
        "unknown_free",
        "dealloc_layout_mismatch",
        "realloc_layout_mismatch",
        "alloc_over_live",
    ] {
        assert_eq!(e["counts"][k], 1, "{k}: {e}");
    }
    let df = e["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "double_free")
        .unwrap();
    // Stack ids are global and interned in order: local 1 → 1, 2 → 2, 3 → 3.
    assert_eq!(df["stack"], 3);
    assert_eq!(df["alloc_stack"], 1);
    assert_eq!(df["first_free_stack"], 2);
    let mm = e["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "dealloc_layout_mismatch")
        .unwrap();
    assert!(mm["message"]
        .as_str()
        .unwrap()
        .contains("undefined behaviour"));
    assert_eq!(mm["alloc_stack"], 1);
    assert_eq!(mm["stack"], 2);
    // Every stack an error names is in the report.
    for id in ["1", "2", "3"] {
        assert!(v["stacks"].get(id).is_some(), "stack {id} missing");
    }
    assert_eq!(u(&v, "summary.errors"), 5);
}

#[test]
fn fragmentation_of_the_heap_region() {
    let mut b = firmware();
    b.alloc(0, 1, HEAP, 100, ALIGN, None).unwrap();
    b.alloc(0, 2, HEAP + 200, 100, ALIGN, None).unwrap();
    b.alloc(0, 3, HEAP + 600, 100, ALIGN, None).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    let f = v["fragmentation"].as_array().unwrap();
    let end = f.iter().find(|x| x["at"] == "end").unwrap();
    assert_eq!(u(end, "used_bytes"), 300);
    assert_eq!(u(end, "free_bytes"), 724);
    assert_eq!(u(end, "largest_gap"), 324);
    assert_eq!(u(end, "blocks"), 3);
    assert_eq!(u(end, "gaps"), 3);
    let frag = end["fragmentation"].as_f64().unwrap();
    assert!((frag - (1.0 - 324.0 / 724.0)).abs() < 1e-9);
    assert_eq!(end["map"].as_array().unwrap().len(), 6);
    // The peak is the end here: the same map.
    let peak = f.iter().find(|x| x["at"] == "peak").unwrap();
    assert_eq!(u(peak, "largest_gap"), 324);
}

#[test]
fn scopes_names_and_marks() {
    let mut b = builder();
    b.simple_header("host", 0).unwrap();
    b.record(1, &Record::ScopeEnter { name: "parse" }).unwrap();
    b.alloc(1, 0, 0x100, 40, ALIGN, None).unwrap();
    b.alloc(1, 0, 0x200, 60, ALIGN, None).unwrap();
    b.record(
        1,
        &Record::Name(memscope_core::wire::Name {
            addr: 0x200,
            var: "table",
            type_name: "Vec<u8>",
            file: "src/main.rs",
            line: 7,
        }),
    )
    .unwrap();
    b.record(1, &Record::ScopeExit).unwrap();
    b.realloc(1, 0, 0x200, 60, Some(0x300), 120, ALIGN, None)
        .unwrap();
    b.dealloc(1, None, 0x100, 40, ALIGN, None).unwrap();
    b.record(
        1,
        &Record::Mark {
            name: "after-parse",
        },
    )
    .unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    let sc = &v["scopes"][0];
    assert_eq!(sc["name"], "parse");
    assert_eq!(u(sc, "entered"), 1);
    assert_eq!(u(sc, "allocations"), 2);
    assert_eq!(u(sc, "bytes_allocated"), 100);
    // The named block grew to 120 after the scope closed; it still belongs to it.
    assert_eq!(u(sc, "leaked_bytes"), 120);
    let n = &v["names"][0];
    assert_eq!(n["var"], "table");
    assert_eq!(n["resolved"], true);
    assert_eq!(u(n, "size_at_naming"), 60);
    assert_eq!(u(n, "max_size"), 120);
    assert_eq!(u(n, "reallocs"), 1);
    assert_eq!(n["freed"], false);
    assert_eq!(v["marks"][0]["name"], "after-parse");
    assert_eq!(u(&v["marks"][0], "live_bytes"), 120);
}

#[test]
fn merge_orders_threads_by_time_not_by_file_position() {
    // Thread 2's frame reaches the file first, but thread 1 freed 0x100
    // (ts 10) before thread 2 got the same address (ts 20); likewise thread
    // 1's realloc released 0x500 (at its previous ts, 30) before thread 2
    // reused it at ts 35, although the realloc's own ts is 40.
    let mut b = builder();
    b.simple_header("host", 1_000_000_000).unwrap();
    b.alloc(2, 20, 0x100, 8, ALIGN, None).unwrap();
    b.alloc(2, 35, 0x500, 8, ALIGN, None).unwrap();
    b.flush(2).unwrap();
    b.alloc(1, 5, 0x100, 16, ALIGN, None).unwrap();
    b.dealloc(1, Some(10), 0x100, 16, ALIGN, None).unwrap();
    b.alloc(1, 30, 0x500, 4, ALIGN, None).unwrap();
    b.realloc(1, 40, 0x500, 4, Some(0x900), 64, ALIGN, None)
        .unwrap();
    b.flush(1).unwrap();
    b.end(1, 0).unwrap();
    b.end(2, 0).unwrap();
    b.end(0, 2).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(u(&v, "errors.total"), 0, "{}", v["errors"]);
    assert_eq!(u(&v, "summary.leaked_bytes"), 8 + 8 + 64);
    // 16 (ts 5) → 0 → 8 (ts 20) → 12 (ts 30) → 8 (release at 30) → 16 (ts 35) → 80 (ts 40)
    assert_eq!(u(&v, "summary.peak_bytes"), 80);
    assert_eq!(u(&v, "integrity.late_events"), 0);
}

#[test]
fn lost_events_make_the_trace_incomplete() {
    let mut b = firmware();
    b.alloc(0, 1, HEAP, 10, ALIGN, None).unwrap();
    b.lose(0, 'a');
    b.lose(0, 'd');
    b.alloc(0, 2, HEAP + 100, 10, ALIGN, None).unwrap(); // carries Lost{2}
    b.end(0, 1).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(u(&v, "summary.lost_events"), 2);
    assert_eq!(v["summary"]["complete"], false);
    assert_eq!(u(&v, "summary.allocations"), 2);
    // The stream's End counted the lost calls too: decoded + lost matches it.
    assert_eq!(v["integrity"]["streams"][0]["end_matches"], true);
}

#[test]
fn missing_end_makes_the_trace_incomplete() {
    let mut b = firmware();
    b.alloc(0, 1, HEAP, 10, ALIGN, None).unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(v["summary"]["complete"], false);
    let reasons = v["summary"]["incomplete_reasons"].to_string();
    assert!(reasons.contains("no End"), "{reasons}");
}

#[test]
fn end_totals_that_disagree_make_the_trace_incomplete() {
    let mut b = firmware();
    b.alloc(0, 1, HEAP, 10, ALIGN, None).unwrap();
    b.raw_frame(
        0,
        &encode(&Record::End(memscope_core::wire::End {
            allocs: 5,
            streams: 1,
            ..Default::default()
        })),
    )
    .unwrap();
    let v = json(&b.finish().unwrap());
    assert_eq!(v["summary"]["complete"], false);
    assert_eq!(v["integrity"]["streams"][0]["end_matches"], false);
}

fn encode(rec: &Record<'_>) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let (n, _) = rec.encode(Default::default(), &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_target_reset_starts_a_new_session() {
    let mut b = firmware();
    b.alloc(0, 1, HEAP, 100, ALIGN, None).unwrap();
    b.alloc(0, 2, HEAP + 100, 100, ALIGN, None).unwrap();
    b.flush(0).unwrap();
    // The target resets: a new encoder, a new header.
    let mut after = firmware();
    after.alloc(0, 1, HEAP, 30, ALIGN, None).unwrap();
    after.end(0, 1).unwrap();
    let mut bytes = b.finish().unwrap();
    bytes.extend(after.finish().unwrap());
    let v = json(&bytes);
    assert_eq!(v["sessions"], 2);
    assert_eq!(v["session"], 2);
    assert_eq!(u(&v, "summary.peak_bytes"), 30);
    assert_eq!(u(&v, "summary.allocations"), 1);
    assert_eq!(
        v["summary"]["complete"], true,
        "{}",
        v["summary"]["incomplete_reasons"]
    );
    let prev = &v["previous_sessions"][0];
    assert_eq!(u(prev, "summary.peak_bytes"), 200);
    assert_eq!(u(prev, "summary.leaked_bytes"), 200);
    assert_eq!(prev["summary"]["complete"], false);
    assert!(u(&v, "session_offset") > 0);
}

#[test]
fn many_threads_many_events_stay_consistent() {
    // The synthetic workload: every stream's End must match what was decoded,
    // and the merged order must never make a free and an allocation collide.
    let mut out = Vec::new();
    let s = memscope_decode::synth::workload(&mut out, 200_000, 5, 300).unwrap();
    assert_eq!(s.events, 200_000);
    let v = json(&out);
    assert_eq!(
        v["summary"]["complete"], true,
        "{}",
        v["summary"]["incomplete_reasons"]
    );
    assert_eq!(u(&v, "errors.total"), 0, "{}", v["errors"]);
    let total = u(&v, "summary.allocations")
        + u(&v, "summary.deallocations")
        + u(&v, "summary.reallocations");
    assert_eq!(total, 200_000);
    assert_eq!(u(&v, "integrity.late_events"), 0);
    // Live at the end = allocated - freed.
    assert_eq!(
        u(&v, "summary.leaked_bytes"),
        u(&v, "summary.bytes_allocated") - u(&v, "summary.bytes_freed")
    );
    // The live set at the peak is the same whichever way it was collected.
    let one = report_of(&run_file(&out).unwrap()).peak;
    let two = report_of(&run_file_two_pass(&out).unwrap()).peak;
    let live = report_of(&run_live(&out).unwrap()).peak;
    assert_eq!(
        (one.method, two.method, live.method),
        ("one-pass", "two-pass", "incremental")
    );
    let rows = |p: &memscope_decode::report::PeakOut| {
        p.sites
            .iter()
            .map(|r| (r.site, r.bytes, r.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&one), rows(&two));
    assert_eq!(rows(&one), rows(&live));
}
