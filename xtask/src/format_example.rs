//! The worked example of docs/FORMAT.md, produced by memscope-core's own
//! encoder so the document cannot drift from the code.
//!
//! The example is a firmware stream (Cortex-M4, stream 0): the header frame
//! that `memscope_core::Stream` sends first (Header + HeapRegion), two allocs
//! and a free, each one frame as `Stream` writes them, and an End record in a
//! frame that carries a CRC. Every frame is encoded with the same calls
//! `Stream` makes (`Record::encode`, `StreamEncoder::prepare`/`commit`,
//! `encode_frame` / `FrameEncoder`).
//!
//! The field-by-field breakdown is written from the layout the document
//! describes, then checked byte for byte against the encoder's output, and the
//! wire bytes are decoded back with `Deframer` and `Records`: if the layout
//! and the code ever disagree, `cargo xtask format-example` fails and so does
//! the test that compares docs/FORMAT.md with this output.

use crate::failure::Failure;
use crate::workspace;
use memscope_core::frame::{encode_frame, FrameEncoder, FrameEvent};
use memscope_core::varint;
use memscope_core::wire::{
    ext, kind, Alloc, Dealloc, Delta, End, Header, HeapRegion, Record, Records, FORMAT_VERSION,
    MAGIC,
};
use memscope_core::StreamEncoder;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const PROGRAM: &str = "blinky";
const TARGET: &str = "thumbv7em-none-eabihf";
/// A 64 MHz cycle counter.
const TICKS_PER_SECOND: u64 = 64_000_000;
const HEAP: HeapRegion = HeapRegion {
    start: 0x2000_1000,
    len: 0x4000,
};
const BLOCK_A: u64 = 0x2000_1008;
const BLOCK_B: u64 = 0x2000_1028;

/// The marker lines around the generated part of docs/FORMAT.md.
const BEGIN: &str = "<!-- format-example: begin";
const END: &str = "<!-- format-example: end -->";
const DOC: &str = "docs/FORMAT.md";

/// `cargo xtask format-example`.
pub fn print() -> Result<(), Failure> {
    print!("{}", render().map_err(Failure::new)?);
    Ok(())
}

/// `cargo xtask format-example --update-doc`.
pub fn update_doc() -> Result<(), Failure> {
    let path = workspace::root().join(DOC);
    let doc = std::fs::read_to_string(&path)
        .map_err(|e| Failure::new(format!("cannot read {DOC}: {e}")))?;
    let (before, _, after) = split_doc(&doc).map_err(Failure::new)?;
    let body = render().map_err(Failure::new)?;
    let new = format!("{before}```text\n{body}```\n{after}");
    if new == doc {
        println!("{DOC}: the worked example is already up to date");
        return Ok(());
    }
    std::fs::write(&path, new).map_err(|e| Failure::new(format!("cannot write {DOC}: {e}")))?;
    println!("{DOC}: worked example rewritten from memscope-core's output");
    Ok(())
}

/// Splits the document into the text up to and including the begin marker
/// line, the generated block, and the text from the end marker on.
fn split_doc(doc: &str) -> Result<(&str, &str, &str), String> {
    let missing = |m: &str| format!("{DOC} has no `{m}` marker line around the worked example");
    let begin = doc.find(BEGIN).ok_or_else(|| missing(BEGIN))?;
    let block_start = begin + doc[begin..].find('\n').ok_or_else(|| missing(BEGIN))? + 1;
    let end = block_start + doc[block_start..].find(END).ok_or_else(|| missing(END))?;
    Ok((&doc[..block_start], &doc[block_start..end], &doc[end..]))
}

/// Bytes with what they mean, in order: the breakdown of one payload.
#[derive(Default)]
struct Annotated {
    fields: Vec<(Vec<u8>, String)>,
}

impl Annotated {
    fn raw(&mut self, bytes: &[u8], meaning: impl Into<String>) {
        self.fields.push((bytes.to_vec(), meaning.into()));
    }

    fn uint(&mut self, v: u64, meaning: impl Into<String>) {
        let mut buf = [0u8; varint::MAX_U64];
        let n = varint::write_u64(&mut buf, v).expect("ten bytes hold any u64");
        self.raw(&buf[..n], meaning);
    }

    fn zigzag(&mut self, v: i64, meaning: impl Into<String>) {
        self.uint(varint::zigzag(v), meaning);
    }

    /// A postcard string: length varint, then the UTF-8 bytes.
    fn str(&mut self, field: &str, s: &str) {
        self.uint(s.len() as u64, format!("{field}: length {}", s.len()));
        self.raw(s.as_bytes(), format!("{field}: {s:?}"));
    }

    /// An extension record around `body`.
    fn ext(&mut self, ext_kind: u64, name: &str, body: Annotated) {
        self.raw(&[kind::EXT], "tag 0x00: kind 0, extension record");
        self.uint(ext_kind, format!("extension kind {ext_kind}: {name}"));
        let len = body.bytes().len();
        self.uint(
            len as u64,
            format!("body length {len} (a postcard-serialized {name})"),
        );
        for (bytes, meaning) in body.fields {
            self.fields.push((bytes, format!("  {meaning}")));
        }
    }

    fn head(&mut self, stream: u32, checked: bool) {
        let head = (u64::from(stream) << 1) | u64::from(checked);
        let crc = if checked {
            "a CRC-16 closes the payload"
        } else {
            "no CRC"
        };
        self.uint(
            head,
            format!(
                "head {head} = stream {stream} << 1 | {}: {crc}",
                u8::from(checked)
            ),
        );
    }

    fn bytes(&self) -> Vec<u8> {
        self.fields
            .iter()
            .flat_map(|(b, _)| b.iter().copied())
            .collect()
    }
}

struct ExampleFrame {
    title: String,
    wire: Vec<u8>,
    payload: Annotated,
    /// What the encoder was given, in order: what decoding must give back.
    records: Vec<Record<'static>>,
}

fn encode_err(what: &str) -> impl Fn(memscope_core::wire::EncodeError) -> String + '_ {
    move |e| format!("memscope-core could not encode {what}: {e:?}")
}

/// Encodes `rec` as the next record of `enc`'s stream and commits it, as
/// `Stream` does once a frame is in the ring. Returns the bytes and every
/// record they hold: `synced` says the encoder puts a Sync first, which a
/// fresh encoder does (from the base 0, 0), then every `SYNC_INTERVAL`
/// records; `check` proves the claim against the decoder.
fn next_record(
    enc: &mut StreamEncoder,
    rec: Record<'static>,
    synced: bool,
) -> Result<(Vec<u8>, Vec<Record<'static>>), String> {
    let mut buf = [0u8; 128];
    let p = enc
        .prepare(&rec, &mut buf)
        .map_err(encode_err("a record"))?;
    enc.commit(p);
    let mut records = Vec::new();
    if synced {
        records.push(Record::Sync(Delta::default()));
    }
    records.push(rec);
    Ok((buf[..p.len].to_vec(), records))
}

fn frame(stream: u32, checked: bool, records: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = [0u8; 512];
    let n = if checked {
        let n = {
            let mut f = FrameEncoder::new(&mut out, stream, true);
            f.push(records);
            f.finish().map_err(|_| "frame too large".to_string())?
        };
        out[n] = 0;
        n + 1
    } else {
        encode_frame(stream, false, &[records], &mut out)
            .map_err(|_| "frame too large".to_string())?
    };
    Ok(out[..n].to_vec())
}

fn tag_meaning(tag: u8, what: &str, align: u64, extra: &str) -> String {
    format!(
        "tag 0x{tag:02x}: kind {} ({what}), bits 3-5 align code {} (align {align}), no stack{extra}",
        tag & 7,
        (tag >> 3) & 7
    )
}

/// The example, encoded and checked.
fn build() -> Result<Vec<ExampleFrame>, String> {
    let mut frames = Vec::new();

    // Frame 1: what `Stream` sends before the first event.
    let header = Header {
        target: TARGET,
        ..Header::new(4, TICKS_PER_SECOND, PROGRAM)
    };
    let mut rec = [0u8; 256];
    let (n1, _) = Record::Header(header)
        .encode(Delta::default(), &mut rec)
        .map_err(encode_err("the header"))?;
    let (n2, _) = Record::HeapRegion(HEAP)
        .encode(Delta::default(), &mut rec[n1..])
        .map_err(encode_err("the heap region"))?;
    let mut p = Annotated::default();
    p.head(0, false);
    let mut body = Annotated::default();
    body.raw(&MAGIC, "magic: \"MSCP\" (4 raw bytes, a fixed-size array)");
    body.uint(
        FORMAT_VERSION.into(),
        format!("version: {FORMAT_VERSION} (u16 varint)"),
    );
    body.raw(&[4], "pointer_width: 4 bytes (u8: one raw byte)");
    body.uint(
        TICKS_PER_SECOND,
        format!("ticks_per_second: {TICKS_PER_SECOND} (u64 varint)"),
    );
    body.str("program", PROGRAM);
    body.uint(
        0,
        "build_id: length 0 (not known; else the GNU build-id bytes)",
    );
    body.str("target", TARGET);
    p.ext(ext::HEADER, "Header", body);
    let mut body = Annotated::default();
    body.uint(
        HEAP.start,
        format!("start: 0x{:x} (u64 varint)", HEAP.start),
    );
    body.uint(HEAP.len, format!("len: {} (u64 varint)", HEAP.len));
    p.ext(ext::HEAP_REGION, "HeapRegion", body);
    frames.push(ExampleFrame {
        title: "stream 0: Header and HeapRegion, the first frame `Stream` sends".into(),
        wire: frame(0, false, &rec[..n1 + n2])?,
        payload: p,
        records: vec![Record::Header(header), Record::HeapRegion(HEAP)],
    });

    let mut enc = StreamEncoder::new();

    // Frame 2: the first event; the encoder puts a Sync before it.
    let alloc_a = Alloc {
        ts: 1_200,
        addr: Some(BLOCK_A),
        size: 24,
        align: 4,
        zeroed: false,
        stack: None,
    };
    let (bytes, records) = next_record(&mut enc, Record::Alloc(alloc_a), true)?;
    let mut p = Annotated::default();
    p.head(0, false);
    p.raw(
        &[kind::SYNC],
        "tag 0x05: kind 5, Sync (new absolute base for the deltas)",
    );
    p.uint(0, "ts: 0 (absolute)");
    p.uint(0, "addr: 0x0 (absolute)");
    let tag = kind::ALLOC | (2 << 3);
    p.raw(&[tag], tag_meaning(tag, "alloc", 4, ", not failed"));
    p.uint(1_200, "dts: +1200 ticks from the base 0 -> ts 1200");
    p.zigzag(
        BLOCK_A as i64,
        format!("addr: zigzag(+0x{BLOCK_A:x}) from the base 0 -> 0x{BLOCK_A:x}"),
    );
    p.uint(24, "size: 24");
    frames.push(ExampleFrame {
        title: "stream 0: alloc of 24 bytes (align 4) at 0x20001008, ts 1200".into(),
        wire: frame(0, false, &bytes)?,
        payload: p,
        records,
    });

    // Frame 3: a second alloc, 32 bytes further on: small deltas.
    let alloc_b = Alloc {
        ts: 1_750,
        addr: Some(BLOCK_B),
        size: 100,
        align: 8,
        zeroed: false,
        stack: None,
    };
    let (bytes, records) = next_record(&mut enc, Record::Alloc(alloc_b), false)?;
    let mut p = Annotated::default();
    p.head(0, false);
    let tag = kind::ALLOC | (3 << 3);
    p.raw(&[tag], tag_meaning(tag, "alloc", 8, ", not failed"));
    p.uint(550, "dts: +550 ticks -> ts 1750");
    p.zigzag(
        (BLOCK_B - BLOCK_A) as i64,
        format!(
            "addr: zigzag(+0x{:x}) = 0x{:x} -> 0x{BLOCK_B:x}",
            BLOCK_B - BLOCK_A,
            varint::zigzag((BLOCK_B - BLOCK_A) as i64)
        ),
    );
    p.uint(100, "size: 100");
    frames.push(ExampleFrame {
        title: "stream 0: alloc of 100 bytes (align 8) at 0x20001028, ts 1750".into(),
        wire: frame(0, false, &bytes)?,
        payload: p,
        records,
    });

    // Frame 4: the first block is freed. No clock read: the free carries the
    // stream's previous timestamp, as `Stream` records it.
    let free_a = Dealloc {
        ts: enc.last_ts(),
        ts_exact: false,
        addr: BLOCK_A,
        size: 24,
        align: 4,
        stack: None,
    };
    let (bytes, records) = next_record(&mut enc, Record::Dealloc(free_a), false)?;
    let mut p = Annotated::default();
    p.head(0, false);
    let tag = kind::DEALLOC | (2 << 3);
    p.raw(
        &[tag],
        tag_meaning(
            tag,
            "dealloc",
            4,
            ", bit 7 clear: no dts, ts is the stream's previous 1750",
        ),
    );
    let back = BLOCK_A as i64 - BLOCK_B as i64;
    p.zigzag(
        back,
        format!(
            "addr: zigzag(-0x{:x}) = 0x{:x} -> 0x{BLOCK_A:x}",
            -back,
            varint::zigzag(back)
        ),
    );
    p.uint(24, "size: 24");
    frames.push(ExampleFrame {
        title: "stream 0: free of the 24-byte block at 0x20001008".into(),
        wire: frame(0, false, &bytes)?,
        payload: p,
        records,
    });

    // Frame 5: the totals, in a frame with a checksum.
    let end = End {
        allocs: 2,
        deallocs: 1,
        reallocs: 0,
        failed: 0,
        lost: 0,
        streams: 1,
    };
    let (bytes, records) = next_record(&mut enc, Record::End(end), false)?;
    let mut p = Annotated::default();
    p.head(0, true);
    let mut body = Annotated::default();
    body.uint(end.allocs, format!("allocs: {}", end.allocs));
    body.uint(end.deallocs, format!("deallocs: {}", end.deallocs));
    body.uint(end.reallocs, format!("reallocs: {}", end.reallocs));
    body.uint(end.failed, format!("failed: {}", end.failed));
    body.uint(end.lost, format!("lost: {}", end.lost));
    body.uint(
        end.streams.into(),
        format!("streams: {} (u32 varint)", end.streams),
    );
    p.ext(ext::END, "End", body);
    let crc_input = p.bytes();
    let crc = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC).checksum(&crc_input);
    p.raw(
        &crc.to_le_bytes(),
        format!(
            "crc: 0x{crc:04x}, CRC-16/IBM-SDLC of the {} bytes before it, little-endian",
            crc_input.len()
        ),
    );
    frames.push(ExampleFrame {
        title: "stream 0: End with the totals, in a frame with a CRC".into(),
        wire: frame(0, true, &bytes)?,
        payload: p,
        records,
    });

    check(&frames)?;
    Ok(frames)
}

/// The breakdown matches the encoder's bytes, and memscope-core's decoder
/// reads back exactly the records that were encoded.
fn check(frames: &[ExampleFrame]) -> Result<(), String> {
    for (i, f) in frames.iter().enumerate() {
        let mut payload = f.wire[..f.wire.len() - 1].to_vec();
        let n = cobs::decode_in_place(&mut payload)
            .map_err(|e| format!("frame {}: COBS: {e:?}", i + 1))?;
        payload.truncate(n);
        if payload != f.payload.bytes() {
            return Err(format!(
                "frame {}: the documented layout gives {}\nbut memscope-core wrote       {}",
                i + 1,
                hex(&f.payload.bytes()),
                hex(&payload)
            ));
        }
    }
    let wire: Vec<u8> = frames.iter().flat_map(|f| f.wire.iter().copied()).collect();
    let decoded = decode(&wire)?;
    if decoded.len() != frames.len() {
        return Err(format!(
            "decoded {} frames, encoded {}",
            decoded.len(),
            frames.len()
        ));
    }
    for (i, (f, got)) in frames.iter().zip(&decoded).enumerate() {
        if &f.records != got {
            return Err(format!(
                "frame {}: encoded {:?}\nbut memscope-core decoded {:?}",
                i + 1,
                f.records,
                got
            ));
        }
    }
    Ok(())
}

/// Reads `wire` back with memscope-core's `Deframer` and `Records`, keeping a
/// delta base per stream as a reader does.
fn decode(wire: &[u8]) -> Result<Vec<Vec<Record<'static>>>, String> {
    let mut buf = [0u8; 512];
    let mut deframer = memscope_core::frame::Deframer::new(&mut buf);
    let mut bases: BTreeMap<u32, Delta> = BTreeMap::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (used, event) = deframer.push(rest);
        rest = &rest[used..];
        match event {
            Some(FrameEvent::Frame {
                stream, records, ..
            }) => {
                let base = bases.entry(stream).or_default();
                let mut out = Vec::new();
                for r in Records::new(records, base) {
                    out.push(own(r.map_err(|e| format!("decoding: {e}"))?)?);
                }
                frames.push(out);
            }
            Some(FrameEvent::Damaged {
                offset,
                len,
                reason,
            }) => return Err(format!("byte {offset}: {len} bytes damaged ({reason})")),
            None => {}
        }
    }
    Ok(frames)
}

/// The example's records borrow only `'static` strings; give decoded ones the
/// same lifetime so the two compare.
fn own(r: Record<'_>) -> Result<Record<'static>, String> {
    Ok(match r {
        Record::Alloc(a) => Record::Alloc(a),
        Record::Dealloc(d) => Record::Dealloc(d),
        Record::Realloc(r) => Record::Realloc(r),
        Record::Sync(d) => Record::Sync(d),
        Record::Lost { count } => Record::Lost { count },
        Record::HeapRegion(h) => Record::HeapRegion(h),
        Record::End(e) => Record::End(e),
        Record::Header(h)
            if h.program == PROGRAM && h.target == TARGET && h.build_id.is_empty() =>
        {
            Record::Header(Header {
                program: PROGRAM,
                target: TARGET,
                build_id: &[],
                ..h
            })
        }
        other => return Err(format!("unexpected record in the example: {other:?}")),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe(r: &Record<'_>) -> String {
    match r {
        Record::Header(h) => format!(
            "Header {{ magic: \"{}\", version: {}, pointer_width: {}, ticks_per_second: {}, program: {:?}, build_id: [], target: {:?} }}",
            String::from_utf8_lossy(&h.magic),
            h.version,
            h.pointer_width,
            h.ticks_per_second,
            h.program,
            h.target
        ),
        Record::HeapRegion(h) => format!("HeapRegion {{ start: 0x{:x}, len: {} }}", h.start, h.len),
        Record::Sync(d) => format!("Sync {{ ts: {}, addr: 0x{:x} }}", d.ts, d.addr),
        Record::Alloc(a) => format!(
            "Alloc {{ ts: {}, addr: {}, size: {}, align: {}, zeroed: {}, stack: {:?} }}",
            a.ts,
            a.addr.map_or("null".to_string(), |a| format!("0x{a:x}")),
            a.size,
            a.align,
            a.zeroed,
            a.stack
        ),
        Record::Dealloc(d) => format!(
            "Dealloc {{ ts: {}, ts_exact: {}, addr: 0x{:x}, size: {}, align: {}, stack: {:?} }}",
            d.ts, d.ts_exact, d.addr, d.size, d.align, d.stack
        ),
        other => format!("{other:?}"),
    }
}

/// The text `cargo xtask format-example` prints and docs/FORMAT.md embeds.
fn render() -> Result<String, String> {
    let frames = build()?;
    let total: usize = frames.iter().map(|f| f.wire.len()).sum();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} frames, {total} bytes on the wire. Generated by `cargo xtask format-example`.",
        frames.len()
    );
    for (i, f) in frames.iter().enumerate() {
        let _ = writeln!(s, "\nFrame {} of {}: {}", i + 1, frames.len(), f.title);
        let _ = writeln!(
            s,
            "  on the wire ({} bytes: COBS, then the 0x00 delimiter):",
            f.wire.len()
        );
        for chunk in f.wire.chunks(16) {
            let _ = writeln!(s, "    {}", hex(chunk));
        }
        let payload = f.payload.bytes();
        let _ = writeln!(
            s,
            "  payload after COBS decoding ({} bytes):",
            payload.len()
        );
        for (bytes, meaning) in &f.payload.fields {
            let mut first = true;
            for chunk in bytes.chunks(8) {
                let text = if first { meaning.as_str() } else { "" };
                let _ = writeln!(s, "    {:<24} {text}", hex(chunk)).map(|_| ());
                first = false;
            }
        }
        let _ = writeln!(s, "  memscope-core decodes:");
        for r in &f.records {
            let _ = writeln!(s, "    {}", describe(r));
        }
    }
    // Lines padded for alignment must not end in spaces.
    Ok(s.lines().map(|l| l.trim_end().to_string() + "\n").collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_encodes_as_documented_and_decodes_back() {
        let text = render().unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("Frame 5 of 5"));
    }

    /// docs/FORMAT.md shows exactly what memscope-core produces today.
    #[test]
    fn format_md_matches_the_code() {
        let path = workspace::root().join(DOC);
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {DOC}: {e}"));
        let (_, block, _) = split_doc(&doc).unwrap_or_else(|e| panic!("{e}"));
        let expected = format!(
            "```text\n{}```\n",
            render().unwrap_or_else(|e| panic!("{e}"))
        );
        assert!(
            block == expected,
            "the worked example in {DOC} differs from what memscope-core encodes now.\n\
             Run `cargo xtask format-example --update-doc`, read the diff, and fix the prose around it if the format changed.\n\
             --- {DOC}\n{block}\n--- memscope-core\n{expected}"
        );
    }

    #[test]
    fn a_wrong_layout_is_caught() {
        let mut frames = build().unwrap();
        frames[1].payload.fields[2].0 = vec![0x07];
        let err = check(&frames).unwrap_err();
        assert!(err.contains("frame 2"), "{err}");
    }
}

/// The numbers docs/FORMAT.md quotes from memscope-core, checked against it.
#[cfg(test)]
mod quoted_constants {
    use super::*;
    use memscope_core::frame::{max_frame_len, MAX_HEAD_LEN};
    use memscope_core::stream::SYNC_INTERVAL;
    use memscope_core::wire::{MAX_EVENT_LEN, MAX_STACK_DEPTH};

    fn doc() -> String {
        std::fs::read_to_string(workspace::root().join(DOC)).unwrap()
    }

    #[test]
    fn record_kind_table() {
        let doc = doc();
        for (k, name) in [
            (kind::EXT, "extension"),
            (kind::ALLOC, "alloc"),
            (kind::ALLOC_ZEROED, "alloc_zeroed"),
            (kind::DEALLOC, "dealloc"),
            (kind::REALLOC, "realloc"),
            (kind::SYNC, "sync"),
            (kind::LOST, "lost"),
        ] {
            let row = format!("| {k} | {name} |");
            assert!(doc.contains(&row), "{DOC} lacks the row `{row}`");
        }
    }

    #[test]
    fn extension_kind_table() {
        let doc = doc();
        for (k, name) in [
            (ext::HEADER, "Header"),
            (ext::END, "End"),
            (ext::STACK, "Stack"),
            (ext::THREAD, "Thread"),
            (ext::SCOPE_ENTER, "ScopeEnter"),
            (ext::SCOPE_EXIT, "ScopeExit"),
            (ext::NAME, "Name"),
            (ext::MODULE, "Module"),
            (ext::MARK, "Mark"),
            (ext::HEAP_REGION, "HeapRegion"),
        ] {
            let row = format!("| {k} | {name} |");
            assert!(doc.contains(&row), "{DOC} lacks the row `{row}`");
        }
    }

    #[test]
    fn limits_and_version() {
        let doc = doc();
        let quoted = [
            format!("`SYNC_INTERVAL` = {SYNC_INTERVAL} records"),
            format!("`MAX_STACK_DEPTH` = {MAX_STACK_DEPTH} frames"),
            format!(
                "= {} bytes on the wire",
                max_frame_len(MAX_HEAD_LEN + MAX_EVENT_LEN)
            ),
            format!("# The memscope wire format (version {FORMAT_VERSION})"),
        ];
        for q in quoted {
            assert!(
                doc.contains(&q),
                "{DOC} should say `{q}` (memscope-core's value)"
            );
        }
    }
}
