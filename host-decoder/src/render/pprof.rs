//! pprof's `profile.proto`, gzipped, encoded by hand (five message types do
//! not justify a protobuf code generator). `go tool pprof` and
//! speedscope/Pyroscope read it.
//!
//! Sample types: `alloc_objects`/count and `alloc_space`/bytes (the whole
//! trace), `inuse_objects`/count and `inuse_space`/bytes (live at the end,
//! as a Go heap profile taken then), and `peak_objects`/count and
//! `peak_space`/bytes (live at the exact moment the heap was largest, which
//! a Go heap profile cannot show: `go tool pprof -sample_index=peak_space`).
//! When the trace cannot tell the peak's live set by site, the peak types
//! are all zero and the profile's comments say so (`pprof -comments`).
//! Stacks start at the first user frame; inlined frames share their
//! caller's location, as pprof expects.

use crate::render::profile::{frame_name, Profile, NO_STACK_RECORDED};
use flate2::{write::GzEncoder, Compression};
use std::collections::HashMap;
use std::io::{self, Write};

/// Protobuf wire helpers.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.varint(u64::from(field) << 3);
            self.varint(v);
        }
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.varint(u64::from(field) << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn packed(&mut self, field: u32, vs: &[u64]) {
        let mut m = Msg::default();
        for &v in vs {
            m.varint(v);
        }
        self.bytes(field, &m.0);
    }
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, u64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.table.push(s.to_owned());
        let i = self.table.len() as u64 - 1;
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// `Function` messages, one per (name, file), with ids from 1.
#[derive(Default)]
struct Functions {
    ids: HashMap<(String, String), u64>,
    msgs: Vec<Msg>,
}

impl Functions {
    fn id(&mut self, name: &str, file: &str, strings: &mut Strings) -> u64 {
        let key = (name.to_owned(), file.to_owned());
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.msgs.len() as u64 + 1;
        let mut m = Msg::default();
        m.uint(1, id);
        m.uint(2, strings.id(name));
        m.uint(3, strings.id(name));
        // The empty file is string 0, which `uint` leaves out: no file.
        m.uint(4, strings.id(file));
        self.msgs.push(m);
        self.ids.insert(key, id);
        id
    }
}

/// The uncompressed `Profile` message.
pub fn encode(p: &Profile) -> Vec<u8> {
    let mut strings = Strings::default();
    strings.id("");
    let mut out = Msg::default();
    for (ty, unit) in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
        ("peak_objects", "count"),
        ("peak_space", "bytes"),
    ] {
        let mut vt = Msg::default();
        vt.uint(1, strings.id(ty));
        vt.uint(2, strings.id(unit));
        out.bytes(1, &vt.0);
    }
    let mut functions = Functions::default();
    // (address, its frames) → location id.
    let mut locations: HashMap<(u64, Vec<(u64, i64)>), u64> = HashMap::new();
    let mut location_msgs: Vec<Msg> = Vec::new();
    let mut samples: Vec<Msg> = Vec::new();
    for s in &p.sites {
        // Groups of frames sharing an address: inlined ones, then their caller.
        let mut groups: Vec<(u64, Vec<(u64, i64)>)> = Vec::new();
        let mut cur: Vec<(u64, i64)> = Vec::new();
        let frames = s.user_frames();
        for f in frames {
            let name = frame_name(f);
            let fid = functions.id(&name, f.file.as_deref().unwrap_or(""), &mut strings);
            cur.push((fid, i64::from(f.line.unwrap_or(0))));
            if !f.inlined {
                groups.push((f.addr, std::mem::take(&mut cur)));
            }
        }
        if !cur.is_empty() {
            let addr = frames.last().map_or(0, |f| f.addr);
            groups.push((addr, cur));
        }
        if groups.is_empty() {
            let fid = functions.id(NO_STACK_RECORDED, "", &mut strings);
            groups.push((0, vec![(fid, 0)]));
        }
        let mut ids = Vec::with_capacity(groups.len());
        for g in groups {
            let id = *locations.entry(g.clone()).or_insert_with(|| {
                let id = location_msgs.len() as u64 + 1;
                let mut m = Msg::default();
                m.uint(1, id);
                m.uint(3, g.0);
                for &(fid, line) in &g.1 {
                    let mut l = Msg::default();
                    l.uint(1, fid);
                    l.uint(2, line as u64);
                    m.bytes(4, &l.0);
                }
                location_msgs.push(m);
                id
            });
            ids.push(id);
        }
        let mut sm = Msg::default();
        sm.packed(1, &ids);
        sm.packed(
            2,
            &[
                s.allocs + s.reallocs,
                s.bytes,
                s.leaked_blocks,
                s.leaked_bytes,
                s.peak_blocks,
                s.peak_bytes,
            ],
        );
        samples.push(sm);
    }
    for s in samples {
        out.bytes(2, &s.0);
    }
    for l in location_msgs {
        out.bytes(4, &l.0);
    }
    for f in functions.msgs {
        out.bytes(5, &f.0);
    }
    // period_type / period: one sample per call site, no sampling.
    let mut pt = Msg::default();
    pt.uint(1, strings.id("space"));
    pt.uint(2, strings.id("bytes"));
    let default_type = strings.id("alloc_space");
    if p.ticks_per_second > 0 {
        let ns = u128::from(p.end_ts.saturating_sub(p.first_ts)) * 1_000_000_000
            / u128::from(p.ticks_per_second);
        out.uint(10, ns as u64);
    }
    out.bytes(11, &pt.0);
    out.uint(12, 1);
    // Comments (`go tool pprof -comments`): what each sample type means here.
    let mut comments = vec![
        "alloc_*: every allocation of the trace; inuse_*: live at the end of the trace (leaked); peak_*: live at the exact peak".to_owned(),
    ];
    if p.peak_known {
        // Saturating: a hostile trace's sizes can sum past u64::MAX.
        let total = p
            .sites
            .iter()
            .map(|s| s.peak_bytes)
            .fold(0u64, u64::saturating_add);
        comments.push(format!("peak: {total} bytes live"));
    } else {
        comments.push(
            "peak_* are zero: this trace does not tell which sites held the peak's live set"
                .to_owned(),
        );
    }
    for c in comments {
        let id = strings.id(&c);
        out.varint(13 << 3);
        out.varint(id);
    }
    out.uint(14, default_type);
    // The string table goes last so every string above is in it.
    let mut tail = Msg::default();
    for s in &strings.table {
        tail.bytes(6, s.as_bytes());
    }
    out.0.extend_from_slice(&tail.0);
    out.0
}

/// Writes the gzipped profile.
pub fn write(p: &Profile, out: impl Write) -> io::Result<()> {
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&encode(p))?;
    gz.finish()?.flush()
}
