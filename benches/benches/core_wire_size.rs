//! memscope-core: encoded bytes per heap event on a realistic churn.
//!
//! `cargo bench -p memscope-benches --bench core_wire_size`
//!
//! A 1000-slot live window over the real `System` allocator: each step frees
//! a random slot and allocates a new block of 8 B – 4 KiB (log-uniform) in it,
//! so addresses and their distances are what a real heap hands out. Every
//! event goes through `StreamEncoder` (syncs every 256 records, as produced)
//! and the table splits the bytes by field, then adds framing two ways:
//! records batched into ~4 KiB frames (a host writer or an RTT drain), and
//! one frame per record (the microcontroller `Stream` recorder).
//!
//! Timestamps: none (`NoClock`), then `rdtsc >> 6` read after each alloc
//! (frees carry the previous timestamp, as the recorders do).

use memscope_core::frame::{encode_frame, max_frame_len, MAX_HEAD_LEN};
use memscope_core::varint::{len_u64, zigzag};
use memscope_core::wire::{Alloc, Dealloc, Delta, Record};
use memscope_core::StreamEncoder;
use std::alloc::{GlobalAlloc, Layout, System};

const SLOTS: usize = 1000;
const STEPS: usize = 200_000;
const BATCH: usize = 4096;

#[derive(Default)]
struct Fields {
    records: u64,
    bytes: u64,
    tag: u64,
    ts: u64,
    addr: u64,
    size: u64,
}

impl Fields {
    fn per(&self, v: u64) -> f64 {
        v as f64 / self.records.max(1) as f64
    }
    fn row(&self, name: &str) {
        println!(
            "  {name:<7} {:>8} records  {:>5.2} B/record  = tag {:.2} + ts {:.2} + addr {:.2} + size {:.2}",
            self.records,
            self.per(self.bytes),
            self.per(self.tag),
            self.per(self.ts),
            self.per(self.addr),
            self.per(self.size),
        );
    }
}

fn timestamp(rdtsc: bool) -> u64 {
    if !rdtsc {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe {
        core::arch::x86_64::_rdtsc() >> 6
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        (START.get_or_init(Instant::now).elapsed().as_nanos() as u64) >> 4
    }
}

struct Run {
    enc: StreamEncoder,
    base: Delta,
    alloc: Fields,
    free: Fields,
    sync_bytes: u64,
    batch: Vec<u8>,
    batched_frame_bytes: u64,
    per_record_frame_bytes: u64,
    /// Address bytes if distances were counted in 8- and 16-byte units
    /// (lossless only while every address is a multiple: counted in `odd8`/`odd16`).
    addr_units8: u64,
    addr_units16: u64,
    odd8: u64,
    odd16: u64,
}

impl Run {
    fn record(&mut self, rec: Record<'_>) {
        let mut buf = [0u8; 128];
        let p = self.enc.prepare(&rec, &mut buf).unwrap();
        let mut alone = [0u8; 128];
        let (n, next) = rec.encode(self.base, &mut alone).unwrap();
        self.sync_bytes += (p.len - n) as u64;
        // The fields, measured the way the format defines them; their sum
        // must be what the encoder wrote.
        let (f, ts, addr, size) = match rec {
            Record::Alloc(a) => (
                &mut self.alloc,
                len_u64(a.ts.wrapping_sub(self.base.ts)),
                len_u64(zigzag(a.addr.unwrap().wrapping_sub(self.base.addr) as i64)),
                len_u64(a.size),
            ),
            Record::Dealloc(d) => (
                &mut self.free,
                0,
                len_u64(zigzag(d.addr.wrapping_sub(self.base.addr) as i64)),
                len_u64(d.size),
            ),
            _ => unreachable!(),
        };
        assert_eq!(
            1 + ts + addr + size,
            n,
            "field breakdown disagrees with the encoder"
        );
        let a = match rec {
            Record::Alloc(a) => a.addr.unwrap(),
            Record::Dealloc(d) => d.addr,
            _ => unreachable!(),
        };
        let units = |shift: u32| {
            len_u64(zigzag(
                ((a >> shift) as i64).wrapping_sub((self.base.addr >> shift) as i64),
            )) as u64
        };
        self.addr_units8 += units(3);
        self.addr_units16 += units(4);
        self.odd8 += u64::from(a % 8 != 0);
        self.odd16 += u64::from(a % 16 != 0);
        f.records += 1;
        f.bytes += n as u64;
        f.tag += 1;
        f.ts += ts as u64;
        f.addr += addr as u64;
        f.size += size as u64;
        self.base = next;

        let mut frame = [0u8; max_frame_len(MAX_HEAD_LEN + 128)];
        self.per_record_frame_bytes +=
            encode_frame(0, false, &[&buf[..p.len]], &mut frame).unwrap() as u64;
        if self.batch.len() + p.len > BATCH - 16 {
            self.flush();
        }
        self.batch.extend_from_slice(&buf[..p.len]);
        self.enc.commit(p);
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut frame = vec![0u8; max_frame_len(MAX_HEAD_LEN + self.batch.len())];
        self.batched_frame_bytes +=
            encode_frame(1, false, &[&self.batch], &mut frame).unwrap() as u64;
        self.batch.clear();
    }
}

fn churn(rdtsc: bool) {
    let mut run = Run {
        enc: StreamEncoder::new(),
        base: Delta::default(),
        alloc: Fields::default(),
        free: Fields::default(),
        sync_bytes: 0,
        batch: Vec::with_capacity(BATCH),
        batched_frame_bytes: 0,
        per_record_frame_bytes: 0,
        addr_units8: 0,
        addr_units16: 0,
        odd8: 0,
        odd16: 0,
    };
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut slots: Vec<Option<(*mut u8, Layout)>> = vec![None; SLOTS];
    for step in 0..SLOTS + STEPS {
        let i = if step < SLOTS {
            step
        } else {
            (rand() % SLOTS as u64) as usize
        };
        if let Some((p, l)) = slots[i].take() {
            // SAFETY: `p` came from `System.alloc(l)` and is freed once.
            unsafe { System.dealloc(p, l) };
            run.record(Record::Dealloc(Dealloc {
                ts: run.enc.last_ts(),
                ts_exact: false,
                addr: p as u64,
                size: l.size() as u64,
                align: l.align() as u64,
                stack: None,
            }));
        }
        let class = 8usize << (rand() % 10);
        let size = (class + (rand() as usize % class)).min(4096);
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero-sized layout.
        let p = unsafe { System.alloc(l) };
        assert!(!p.is_null());
        let ts = timestamp(rdtsc);
        run.record(Record::Alloc(Alloc {
            ts,
            addr: Some(p as u64),
            size: size as u64,
            align: 8,
            zeroed: false,
            stack: None,
        }));
        slots[i] = Some((p, l));
    }
    for (p, l) in slots.into_iter().flatten() {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) };
    }
    run.flush();

    let events = run.alloc.records + run.free.records;
    let raw = run.alloc.bytes + run.free.bytes;
    println!(
        "timestamps: {}",
        if rdtsc {
            "rdtsc >> 6"
        } else {
            "none (NoClock)"
        }
    );
    run.alloc.row("alloc");
    run.free.row("free");
    println!(
        "  raw records {:.2} B/event; + syncs {:.3} B/event = {:.2} B/event as encoded",
        raw as f64 / events as f64,
        run.sync_bytes as f64 / events as f64,
        (raw + run.sync_bytes) as f64 / events as f64
    );
    println!(
        "  batched in ~4 KiB frames: {:.2} B/event on the wire (framing {:.3} B/event)",
        run.batched_frame_bytes as f64 / events as f64,
        (run.batched_frame_bytes - raw - run.sync_bytes) as f64 / events as f64
    );
    println!(
        "  one frame per record (MCU Stream): {:.2} B/event on the wire (framing {:.2} B/event)",
        run.per_record_frame_bytes as f64 / events as f64,
        (run.per_record_frame_bytes - raw - run.sync_bytes) as f64 / events as f64
    );
    // What other encodings of the same events would take (computed, not the format).
    let addr = (run.alloc.addr + run.free.addr) as f64 / events as f64;
    println!(
        "  what-if: address distances in 8-byte units {:.2} B/event ({} addresses not multiples of 8), \
         16-byte units {:.2} B/event ({} not multiples of 16), against {:.2} now",
        run.addr_units8 as f64 / events as f64,
        run.odd8,
        run.addr_units16 as f64 / events as f64,
        run.odd16,
        addr
    );
    println!(
        "  what-if: a free without its size (GlobalAlloc requires the allocation's layout): {:.2} B/free; \
         an alloc without a timestamp field when the stream has no clock: {:.2} B/alloc",
        run.free.per(run.free.bytes - run.free.size),
        run.alloc.per(run.alloc.bytes - run.alloc.ts),
    );
}

fn main() {
    // `cargo test --benches` runs bench targets too; this one is cheap enough.
    println!(
        "memscope-core wire size: {SLOTS}-slot live window, {STEPS} churn steps, sizes 8 B - 4 KiB, System allocator"
    );
    churn(false);
    churn(true);
}
