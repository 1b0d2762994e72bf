//! Synthetic traces, written with memscope-core's own encoder: the test
//! suite's trace builder ([`TraceBuilder`]) and the benchmark workload
//! ([`workload`], behind the hidden `memscope-decode synth` command).
//! Nothing here is a recorded trace; every byte comes from the same
//! `StreamEncoder` and `encode_frame` a real producer uses.

use memscope_core::frame::{encode_frame, max_frame_len, MAX_HEAD_LEN};
use memscope_core::wire::{self, Alloc, Dealloc, End, Frames, Header, Realloc, Record, Stack};
use memscope_core::StreamEncoder;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Default)]
struct StreamOut {
    enc: StreamEncoder,
    pending: Vec<u8>,
    end: End,
}

/// Writes a trace record by record, one stream per producer, tallying each
/// stream's End totals as a real producer would.
pub struct TraceBuilder<W: Write> {
    out: W,
    streams: BTreeMap<u32, StreamOut>,
    /// Record bytes gathered per frame before it is written.
    batch: usize,
    checked: bool,
    frame: Vec<u8>,
}

impl<W: Write> TraceBuilder<W> {
    /// One record per frame, no checksum.
    pub fn new(out: W) -> Self {
        TraceBuilder {
            out,
            streams: BTreeMap::new(),
            batch: 1,
            checked: false,
            frame: Vec::new(),
        }
    }

    /// Gathers up to `bytes` of records per frame (as a host writer would).
    pub fn batched(mut self, bytes: usize) -> Self {
        self.batch = bytes.max(1);
        self
    }

    /// Adds a CRC-16 to every frame.
    pub fn checked(mut self, checked: bool) -> Self {
        self.checked = checked;
        self
    }

    fn stream(&mut self, stream: u32) -> &mut StreamOut {
        self.streams.entry(stream).or_default()
    }

    /// Encodes `rec` on `stream` (with the Lost and Sync records its encoder adds).
    pub fn record(&mut self, stream: u32, rec: &Record<'_>) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        let s = self.stream(stream);
        let p = s
            .enc
            .prepare(rec, &mut buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        s.pending.extend_from_slice(&buf[..p.len]);
        s.enc.commit(p);
        if s.pending.len() >= self.batch {
            self.flush(stream)?;
        }
        Ok(())
    }

    /// Writes `stream`'s gathered records as one frame.
    pub fn flush(&mut self, stream: u32) -> io::Result<()> {
        let checked = self.checked;
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        if s.pending.is_empty() {
            return Ok(());
        }
        self.frame
            .resize(max_frame_len(MAX_HEAD_LEN + s.pending.len() + 2), 0);
        let n = encode_frame(stream, checked, &[&s.pending], &mut self.frame)
            .map_err(|_| io::Error::other("frame too large"))?;
        s.pending.clear();
        self.out.write_all(&self.frame[..n])
    }

    /// Writes a header (and heap region) on stream 0 as its own frame, outside
    /// any delta (as producers do).
    pub fn header(&mut self, h: Header<'_>, heap: Option<(u64, u64)>) -> io::Result<()> {
        self.flush(0)?;
        let mut buf = [0u8; 1024];
        let (mut n, _) = Record::Header(h)
            .encode(Default::default(), &mut buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        if let Some((start, len)) = heap {
            n += Record::HeapRegion(wire::HeapRegion { start, len })
                .encode(Default::default(), &mut buf[n..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?
                .0;
        }
        self.raw_frame(0, &buf[..n])
    }

    /// A simple header: 64-bit target, `tps` ticks per second.
    pub fn simple_header(&mut self, program: &str, tps: u64) -> io::Result<()> {
        self.header(Header::new(8, tps, program), None)
    }

    /// A frame of already encoded records, outside the stream's encoder.
    pub fn raw_frame(&mut self, stream: u32, records: &[u8]) -> io::Result<()> {
        self.frame
            .resize(max_frame_len(MAX_HEAD_LEN + records.len() + 2), 0);
        let n = encode_frame(stream, self.checked, &[records], &mut self.frame)
            .map_err(|_| io::Error::other("frame too large"))?;
        self.out.write_all(&self.frame[..n])
    }

    /// Raw bytes (damage, garbage).
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    /// A Thread record.
    pub fn thread(&mut self, stream: u32, os_id: u64, name: &str) -> io::Result<()> {
        self.record(stream, &Record::Thread(wire::Thread { os_id, name }))
    }

    /// A Stack record.
    pub fn stack(&mut self, stream: u32, id: u32, frames: &[u64]) -> io::Result<()> {
        self.record(
            stream,
            &Record::Stack(Stack {
                id,
                frames: Frames::Slice(frames),
            }),
        )
    }

    /// A successful alloc.
    pub fn alloc(
        &mut self,
        stream: u32,
        ts: u64,
        addr: u64,
        size: u64,
        align: u64,
        stack: Option<u32>,
    ) -> io::Result<()> {
        self.stream(stream).end.allocs += 1;
        self.record(
            stream,
            &Record::Alloc(Alloc {
                ts,
                addr: Some(addr),
                size,
                align,
                zeroed: false,
                stack,
            }),
        )
    }

    /// An alloc that returned null.
    pub fn alloc_failed(&mut self, stream: u32, ts: u64, size: u64, align: u64) -> io::Result<()> {
        let e = &mut self.stream(stream).end;
        e.allocs += 1;
        e.failed += 1;
        self.record(
            stream,
            &Record::Alloc(Alloc {
                ts,
                addr: None,
                size,
                align,
                zeroed: false,
                stack: None,
            }),
        )
    }

    /// A dealloc carrying the stream's previous timestamp (`ts: None`) or its own.
    pub fn dealloc(
        &mut self,
        stream: u32,
        ts: Option<u64>,
        addr: u64,
        size: u64,
        align: u64,
        stack: Option<u32>,
    ) -> io::Result<()> {
        let s = self.stream(stream);
        s.end.deallocs += 1;
        let last = s.enc.last_ts();
        self.record(
            stream,
            &Record::Dealloc(Dealloc {
                ts: ts.unwrap_or(last),
                ts_exact: ts.is_some(),
                addr,
                size,
                align,
                stack,
            }),
        )
    }

    /// A realloc (`new: None` = it failed).
    #[allow(clippy::too_many_arguments)]
    pub fn realloc(
        &mut self,
        stream: u32,
        ts: u64,
        old: u64,
        old_size: u64,
        new: Option<u64>,
        new_size: u64,
        align: u64,
        stack: Option<u32>,
    ) -> io::Result<()> {
        let e = &mut self.stream(stream).end;
        e.reallocs += 1;
        e.failed += u64::from(new.is_none());
        self.record(
            stream,
            &Record::Realloc(Realloc {
                ts,
                old_addr: old,
                old_size,
                new_addr: new,
                new_size,
                align,
                stack,
            }),
        )
    }

    /// An event that the producer had to drop (`kind`: 'a', 'd' or 'r').
    pub fn lose(&mut self, stream: u32, kind: char) {
        let s = self.stream(stream);
        match kind {
            'a' => s.end.allocs += 1,
            'd' => s.end.deallocs += 1,
            _ => s.end.reallocs += 1,
        }
        s.end.lost += 1;
        s.enc.lose();
    }

    /// The stream's End record with its tallies (`streams` for stream 0).
    pub fn end(&mut self, stream: u32, streams: u32) -> io::Result<()> {
        let mut e = self.stream(stream).end;
        e.streams = streams;
        self.record(stream, &Record::End(e))?;
        self.flush(stream)
    }

    /// Flushes every stream and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.flush(id)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What [`workload`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadSummary {
    /// Heap events (alloc, dealloc, realloc).
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A churn workload like a busy server: `threads` threads, each keeping up to
/// `working_set` blocks live, allocating, reallocating and freeing with a
/// fixed pseudo-random sequence, from 64 distinct stacks per thread; the
/// blocks live at the end are leaks. Threads' events are written in turns of
/// 512 (as a writer thread drains per-thread rings), so the file is not in
/// timestamp order. Memory use is `threads × working_set`, whatever `events`.
pub fn workload(
    out: impl Write,
    events: u64,
    threads: u32,
    working_set: usize,
) -> io::Result<WorkloadSummary> {
    struct T {
        live: Vec<(u64, u64)>,
        free: Vec<u64>,
        bump: u64,
        rng: u64,
        k: u64,
    }
    let threads = threads.max(1);
    let mut b = TraceBuilder::new(CountingWriter {
        inner: out,
        count: 0,
    })
    .batched(240);
    b.simple_header("synthetic-workload", 1_000_000_000)?;
    let ts_of = |t: u32, k: u64| k * u64::from(threads) * 3 + u64::from(t);
    let mut th: Vec<T> = (0..threads)
        .map(|t| T {
            live: Vec::with_capacity(working_set),
            free: Vec::new(),
            bump: 0x1000_0000 + (u64::from(t) << 32),
            rng: 0x9E37_79B9_7F4A_7C15 ^ u64::from(t),
            k: 0,
        })
        .collect();
    for t in 0..threads {
        let s = t + 1;
        b.thread(s, 1000 + u64::from(t), &format!("worker-{t}"))?;
        for id in 0..64u32 {
            let frames: Vec<u64> = (0..8)
                .map(|d| 0x5555_0000 + u64::from(id) * 0x40 + d * 0x1000)
                .collect();
            b.stack(s, id, &frames)?;
        }
    }
    let mut written = 0u64;
    'outer: loop {
        for t in 0..threads {
            let s = t + 1;
            for _ in 0..512 {
                if written >= events {
                    break 'outer;
                }
                written += 1;
                let st = &mut th[t as usize];
                st.rng ^= st.rng << 13;
                st.rng ^= st.rng >> 7;
                st.rng ^= st.rng << 17;
                let r = st.rng;
                st.k += 1;
                let ts = ts_of(t, st.k);
                let stack = Some((r >> 40) as u32 % 64);
                let want_alloc =
                    st.live.len() < working_set / 2 || (r & 1 == 0 && st.live.len() < working_set);
                if st.live.is_empty() || want_alloc {
                    let size = (1u64 << ((r >> 8) % 12)) + (r >> 20) % 16;
                    if r % 16 == 3 && !st.live.is_empty() {
                        let i = (r >> 24) as usize % st.live.len();
                        let (old, old_size) = st.live[i];
                        let new_size = old_size * 2;
                        let new = st.bump;
                        st.bump += new_size.next_multiple_of(16);
                        st.free.push(old);
                        st.live[i] = (new, new_size);
                        b.realloc(s, ts, old, old_size, Some(new), new_size, 8, stack)?;
                    } else {
                        let addr = st.free.pop().unwrap_or_else(|| {
                            let a = st.bump;
                            st.bump += 4096;
                            a
                        });
                        st.live.push((addr, size.min(4000)));
                        b.alloc(s, ts, addr, size.min(4000), 8, stack)?;
                    }
                } else {
                    let i = (r >> 24) as usize % st.live.len();
                    let (addr, size) = st.live.swap_remove(i);
                    if size <= 4000 {
                        st.free.push(addr);
                    }
                    b.dealloc(s, None, addr, size, 8, stack)?;
                }
            }
            b.flush(s)?;
        }
    }
    for t in 0..threads {
        b.end(t + 1, 0)?;
    }
    b.end(0, threads)?;
    let w = b.finish()?;
    Ok(WorkloadSummary {
        events: written,
        bytes: w.count,
    })
}

/// Counts bytes on their way to a writer.
pub struct CountingWriter<W> {
    /// The writer.
    pub inner: W,
    /// Bytes written so far.
    pub count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
