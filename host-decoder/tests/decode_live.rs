//! Live sources: a target reset in the middle of a live byte stream starts a
//! new session, exactly as it does in a file.

mod common;
use common::*;
use memscope_core::wire::Header;
use memscope_decode::pipeline::{self, Options};
use memscope_decode::source::tcp::TcpRtt;
use memscope_decode::source::Source;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;

const HEAP: u64 = 0x2000_0000;

fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

/// Serves `bytes` once on a local port, in uneven writes with pauses, so
/// that frames (and the reset's header) straddle the reader's reads.
fn serve(bytes: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut rest = &bytes[..];
        let mut step = 1;
        while !rest.is_empty() {
            let n = step.min(rest.len());
            s.write_all(&rest[..n]).unwrap();
            s.flush().unwrap();
            rest = &rest[n..];
            step = step * 7 % 4093 + 1;
            if step % 5 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    });
    addr
}

#[test]
fn a_target_reset_over_tcp_gives_two_sessions_not_mixed() {
    // Session 1: a host-style trace, several threads, every event freed or
    // leaked as the workload decides.
    let mut bytes = Vec::new();
    memscope_decode::synth::workload(&mut bytes, 20_000, 3, 100).unwrap();
    let first_len = bytes.len() as u64;
    // The target resets: a firmware trace with its own header.
    let mut fw = builder();
    fw.header(Header::new(4, 1_000_000, "fw"), Some((HEAP, 1024)))
        .unwrap();
    fw.alloc(0, 1, HEAP, 30, ALIGN, None).unwrap();
    fw.alloc(0, 2, HEAP + 32, 12, ALIGN, None).unwrap();
    fw.dealloc(0, Some(3), HEAP + 32, 12, ALIGN, None).unwrap();
    fw.end(0, 1).unwrap();
    bytes.extend(fw.finish().unwrap());

    let from_file = json(&bytes);
    let addr = serve(bytes);
    let mut src = Source::live(
        format!("tcp:{addr}"),
        Box::new(TcpRtt::connect(&addr).unwrap()),
    );
    let run = pipeline::run(&mut src, &Options::default()).unwrap();
    assert_eq!(run.sessions.len(), 2);
    let v = serde_json::to_value(report_of(&run)).unwrap();
    assert_eq!(v["sessions"], 2);
    assert_eq!(v["session"], 2);
    // The current session holds only the firmware's events.
    assert_eq!(u(&v, "summary.allocations"), 2);
    assert_eq!(u(&v, "summary.deallocations"), 1);
    assert_eq!(u(&v, "summary.peak_bytes"), 42);
    assert_eq!(u(&v, "summary.leaked_bytes"), 30);
    assert_eq!(u(&v, "session_offset"), first_len);
    assert_eq!(
        v["summary"]["complete"], true,
        "{}",
        v["summary"]["incomplete_reasons"]
    );
    // The previous session holds exactly the workload's events, no errors
    // (a mixed-up session would show frees of unknown addresses).
    let prev = &v["previous_sessions"][0];
    let total = u(prev, "summary.allocations")
        + u(prev, "summary.deallocations")
        + u(prev, "summary.reallocations");
    assert_eq!(total, 20_000);
    assert_eq!(u(prev, "errors.total"), 0, "{}", prev["errors"]);
    // Live: the same numbers as the file (the file reads twice for the peak).
    for key in ["peak_bytes", "allocations", "leaked_bytes"] {
        assert_eq!(v["summary"][key], from_file["summary"][key], "{key}");
        assert_eq!(
            prev["summary"][key], from_file["previous_sessions"][0]["summary"][key],
            "previous {key}"
        );
    }
}
