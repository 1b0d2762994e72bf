//! Bytes per event of a trace: `trace_bytes trace.bin` prints the heap events,
//! the record bytes (raw: frame payloads without head and checksum) and the
//! file's bytes (as written: COBS, checksums, delimiters), each per event.
use memscope_core::frame::{Deframer, FrameEvent};
use memscope_core::wire::{Delta, Record, Records};
use std::collections::HashMap;

fn main() {
    let path = std::env::args().nth(1).expect("usage: trace_bytes TRACE");
    let bytes = std::fs::read(&path).expect("readable trace");
    let mut buf = vec![0u8; 1 << 20];
    let mut d = Deframer::new(&mut buf);
    let mut deltas: HashMap<u32, Delta> = HashMap::new();
    let (mut events, mut raw, mut stacks, mut damaged) = (0u64, 0u64, 0u64, 0u64);
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (n, ev) = d.push(rest);
        rest = &rest[n..];
        match ev {
            Some(FrameEvent::Frame {
                stream, records, ..
            }) => {
                raw += records.len() as u64;
                for r in Records::new(records, deltas.entry(stream).or_default()).flatten() {
                    match r {
                        Record::Alloc(_) | Record::Dealloc(_) | Record::Realloc(_) => events += 1,
                        Record::Stack(_) => stacks += 1,
                        _ => {}
                    }
                }
            }
            Some(FrameEvent::Damaged { .. }) => damaged += 1,
            None => {}
        }
    }
    let e = events.max(1) as f64;
    println!(
        "{path}: {events} events, {stacks} stacks, {damaged} damaged; raw {:.2} B/event, written {:.2} B/event",
        raw as f64 / e,
        bytes.len() as f64 / e
    );
}
