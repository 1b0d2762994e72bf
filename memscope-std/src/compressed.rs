//! The trace file, optionally zstd-compressed by the writer thread.
//!
//! Off by default. Asked for by the output's name (`MEMSCOPE_OUT=trace.bin.zst`,
//! or `Config::new("trace.bin.zst")`) or by `MEMSCOPE_COMPRESS`: `zstd` (level
//! 1), `zstd:N` (level N, 1–19), or `0` / `none` (never, whatever the name).
//! It needs this crate's `zstd` feature (libzstd, compiled from C by
//! `zstd-sys`); without it a request is refused with one warning and the
//! trace is written uncompressed (`memscope-decode` reads either, by their
//! first bytes).
//!
//! The compressed file is a zstd stream of exactly the bytes an uncompressed
//! trace would hold (docs/FORMAT.md, "Compressed traces"): nothing inside the
//! frames changes. Each [`Output::write_all`] (one writer cycle, every few
//! milliseconds) ends with a zstd flush, so the file always ends on a whole
//! compressed block: a process killed at any moment leaves a file that
//! decodes up to its last cycle. Every `FRAME_INPUT` bytes the zstd frame
//! is closed and a new one begins, so damage in the middle of a long file
//! loses the trace up to the next frame, not all that follows (the decoder
//! resumes at the next frame's magic number).
//!
//! Why zstd at level 1: on the comparison harness's churn traces it writes
//! 4.3 bytes per event where the raw trace takes 6.1 (4.9 for 7.1 with
//! stacks). The records are already delta-coded varints; what is left is
//! mostly the skew of their bytes, which zstd's Huffman coding of literals
//! takes (LZ4, without one, saves 7 %; so does zstd with literal compression
//! off). Level 3 writes 4.0 bytes per event, level 19 3.5, at several times
//! the CPU. Level 1 costs the writer thread about 124 instructions per event
//! (callgrind), about 20 per byte.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Input bytes per zstd frame before a new frame begins (see the module doc).
#[cfg(feature = "zstd")]
const FRAME_INPUT: u64 = 16 << 20;

/// How the trace file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// The frames as they are.
    Raw,
    /// A zstd stream at this level.
    Zstd(i32),
}

/// Default zstd level: the fastest of the standard levels (see the module doc).
const DEFAULT_LEVEL: i32 = 1;

impl Codec {
    /// The codec for `out` given `MEMSCOPE_COMPRESS` (`setting`): the
    /// variable wins over the name; an unreadable value is reported and
    /// ignored.
    pub(crate) fn choose(out: &Path, setting: Option<&str>) -> Codec {
        let by_name = if out.extension().is_some_and(|e| e == "zst") {
            Codec::Zstd(DEFAULT_LEVEL)
        } else {
            Codec::Raw
        };
        let Some(s) = setting.map(str::trim).filter(|s| !s.is_empty()) else {
            return by_name;
        };
        match parse(s) {
            Some(c) => c,
            None => {
                eprintln!(
                    "memscope: MEMSCOPE_COMPRESS={s:?} is not one of zstd, zstd:<1-19>, 0, none; ignored"
                );
                by_name
            }
        }
    }
}

fn parse(s: &str) -> Option<Codec> {
    match s {
        "0" | "none" | "off" | "raw" => Some(Codec::Raw),
        "zstd" | "1" => Some(Codec::Zstd(DEFAULT_LEVEL)),
        _ => {
            let level: i32 = s.strip_prefix("zstd:")?.parse().ok()?;
            (1..=19).contains(&level).then_some(Codec::Zstd(level))
        }
    }
}

/// The output file, written by the writer thread only.
pub(crate) struct Output {
    file: File,
    #[cfg(feature = "zstd")]
    zstd: Option<Zstd>,
}

impl Output {
    /// Creates `path`, compressed as `MEMSCOPE_COMPRESS` and its name ask.
    pub(crate) fn create(path: &Path) -> io::Result<Output> {
        let setting = std::env::var("MEMSCOPE_COMPRESS").ok();
        Output::with_codec(path, Codec::choose(path, setting.as_deref()))
    }

    /// Creates `path`, written with `codec`.
    pub(crate) fn with_codec(path: &Path, codec: Codec) -> io::Result<Output> {
        let file = File::create(path)?;
        match codec {
            Codec::Raw => Ok(Output {
                file,
                #[cfg(feature = "zstd")]
                zstd: None,
            }),
            #[cfg(feature = "zstd")]
            Codec::Zstd(level) => Ok(Output {
                file,
                zstd: Some(Zstd::new(level)?),
            }),
            #[cfg(not(feature = "zstd"))]
            Codec::Zstd(_) => {
                eprintln!(
                    "memscope: {} asks for zstd compression, but memscope-std was built without \
                     its `zstd` feature; writing the trace uncompressed",
                    path.display()
                );
                Ok(Output { file })
            }
        }
    }

    /// Writes one cycle's frames. Compressed, they end with a flush: all of
    /// `bytes` is in the file (in whole compressed blocks) when this returns.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        #[cfg(feature = "zstd")]
        if let Some(z) = &mut self.zstd {
            return z.write(&mut self.file, bytes);
        }
        self.file.write_all(bytes)
    }

    /// Ends the file: closes the zstd frame, flushes.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        #[cfg(feature = "zstd")]
        if let Some(z) = &mut self.zstd {
            z.end_frame(&mut self.file)?;
        }
        self.file.flush()
    }
}

/// A zstd stream in progress.
#[cfg(feature = "zstd")]
struct Zstd {
    enc: zstd::stream::raw::Encoder<'static>,
    /// Compressed bytes on their way to the file.
    out: Vec<u8>,
    /// Input bytes in the current zstd frame.
    in_frame: u64,
}

#[cfg(feature = "zstd")]
impl Zstd {
    fn new(level: i32) -> io::Result<Zstd> {
        let mut enc = zstd::stream::raw::Encoder::new(level)?;
        // Each zstd frame ends with a checksum of its bytes, so that damage
        // libzstd would otherwise decode without noticing is reported with
        // its compressed offset too (the trace's own frames carry a CRC).
        enc.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
        Ok(Zstd {
            enc,
            out: vec![0; zstd::zstd_safe::CCtx::out_size()],
            in_frame: 0,
        })
    }

    fn write(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(bytes);
        while input.pos() < bytes.len() {
            let mut out = OutBuffer::around(&mut self.out[..]);
            self.enc.run(&mut input, &mut out)?;
            let n = out.pos();
            file.write_all(&self.out[..n])?;
        }
        self.in_frame += bytes.len() as u64;
        if self.in_frame >= FRAME_INPUT {
            return self.end_frame(file);
        }
        // Until `flush` returns 0 the block is not all out.
        loop {
            let mut out = OutBuffer::around(&mut self.out[..]);
            let left = self.enc.flush(&mut out)?;
            let n = out.pos();
            file.write_all(&self.out[..n])?;
            if left == 0 {
                return Ok(());
            }
        }
    }

    /// Ends the current zstd frame; the next bytes begin a new one.
    fn end_frame(&mut self, file: &mut File) -> io::Result<()> {
        use zstd::stream::raw::{Operation, OutBuffer};
        loop {
            let mut out = OutBuffer::around(&mut self.out[..]);
            let left = self.enc.finish(&mut out, true)?;
            let n = out.pos();
            file.write_all(&self.out[..n])?;
            if left == 0 {
                break;
            }
        }
        self.enc.reinit()?;
        self.in_frame = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_over_the_name() {
        let zst = Path::new("trace.bin.zst");
        let bin = Path::new("trace.bin");
        assert_eq!(Codec::choose(zst, None), Codec::Zstd(1));
        assert_eq!(Codec::choose(bin, None), Codec::Raw);
        assert_eq!(Codec::choose(bin, Some("zstd")), Codec::Zstd(1));
        assert_eq!(Codec::choose(bin, Some(" zstd:7 ")), Codec::Zstd(7));
        assert_eq!(Codec::choose(zst, Some("0")), Codec::Raw);
        assert_eq!(Codec::choose(zst, Some("none")), Codec::Raw);
        assert_eq!(Codec::choose(zst, Some("")), Codec::Zstd(1));
        // Unreadable: ignored, the name decides.
        assert_eq!(Codec::choose(bin, Some("zstd:99")), Codec::Raw);
        assert_eq!(Codec::choose(zst, Some("lz4")), Codec::Zstd(1));
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn every_write_is_decodable_at_once_and_frames_restart() {
        let dir = std::env::temp_dir().join(format!("memscope-compressed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.bin.zst");
        let mut o = Output::with_codec(&path, Codec::Zstd(1)).unwrap();
        let mut want = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        // Enough cycles to cross FRAME_INPUT once.
        let cycles = (FRAME_INPUT / (256 << 10)) as usize + 3;
        for i in 0..cycles {
            let chunk: Vec<u8> = (0..256 << 10)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Compressible, not trivially: a few bits per byte.
                    (x % 7) as u8
                })
                .collect();
            o.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
            // Without `finish`: what a killed process leaves. Every byte
            // written so far decodes (the stream is only cut short).
            if i == 1 || i == cycles - 1 {
                let file = std::fs::read(&path).unwrap();
                assert_eq!(decode_prefix(&file), want, "after cycle {i}");
            }
        }
        o.finish().unwrap();
        let file = std::fs::read(&path).unwrap();
        let all = zstd::stream::decode_all(&file[..]).unwrap();
        assert_eq!(all, want);
        // The first zstd frame was closed after FRAME_INPUT bytes; another follows.
        let first = zstd::zstd_safe::find_frame_compressed_size(&file).unwrap();
        assert!(first < file.len(), "one frame of {first} bytes");
        assert_eq!(&file[first..first + 4], &[0x28, 0xB5, 0x2F, 0xFD]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Decodes a zstd stream that may end inside a frame: what came before.
    #[cfg(feature = "zstd")]
    fn decode_prefix(file: &[u8]) -> Vec<u8> {
        use zstd::stream::raw::{Decoder, Operation};
        let mut d = Decoder::new().unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0;
        loop {
            let s = d.run_on_buffers(&file[at..], &mut buf).unwrap();
            at += s.bytes_read;
            out.extend_from_slice(&buf[..s.bytes_written]);
            if s.bytes_read == 0 && s.bytes_written == 0 {
                return out;
            }
        }
    }
}
