//! Frames: bytes from a source cut into frames by memscope-core's
//! [`Deframer`], with damage reported by byte offset, and numbered frames
//! put back in their streams' order by [`sequence`] (missing, repeated and
//! out-of-order frames reported by stream, number and offset).

pub mod sequence;

use memscope_core::frame::{Damage, Deframer, FrameEvent};
use sequence::{Issue, Out, Sequencer};
use std::io::{self, Read};

/// Largest encoded frame accepted. A microcontroller writes one event per
/// frame; memscope-std cuts a thread's ring into frames of at most 32 KiB of
/// payload (longer only if its ring, 512 KiB, held no record boundary).
/// Anything longer is damage (frames run together after a lost delimiter).
pub const MAX_FRAME: usize = 1 << 20;

/// A stretch of input that did not yield a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamagedSpan {
    /// Byte offset of its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Why.
    pub reason: Damage,
}

/// What [`read_frames`] hands to its callback.
pub enum Piece<'a> {
    /// An intact frame: stream id, record bytes, byte offset.
    Frame(u32, &'a [u8], u64),
    /// Skipped bytes.
    Damaged(DamagedSpan),
    /// Sent once, after the first frame whose CRC checked out: the input is
    /// a memscope stream, however much of it is damaged.
    Verified,
    /// What the frame numbers showed (a frame missing, repeated, out of
    /// order), before the frame it concerns.
    Sequence(Issue),
    /// The stream's delta base is unknown from here until its next Sync
    /// record: frames of it are missing, or the next frame continues an
    /// older base.
    Desync(u32),
    /// Frames of some stream are held back waiting for an earlier one of
    /// theirs (`true`), or no longer are (`false`).
    Waiting(bool),
}

/// Whether to go on reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read on.
    Continue,
    /// Stop now (the caller has what it needs).
    Stop,
}

/// Reads `input` to its end (or until `each` says stop), handing every frame
/// and every damaged span to `each` in input order. `progress` gets the byte
/// offset after each chunk. Returns the bytes read; an I/O error carries the
/// offset where it happened.
pub fn read_frames(
    mut input: impl Read,
    mut progress: impl FnMut(u64),
    mut each: impl FnMut(Piece<'_>) -> Flow,
) -> Result<u64, (u64, io::Error)> {
    let mut frame_buf = vec![0u8; MAX_FRAME];
    // One producer checks all its frames or none: after a checked frame, one
    // without a CRC is a flipped "checked" bit, not a frame to trust.
    let mut deframer = Deframer::new(&mut frame_buf).sticky_checksums();
    // Read in pieces that stay in a core's L2 cache (1 MiB here, shared with
    // the frame being put together and the events decoded from it) between
    // the kernel's copy and the deframer's pass. 128 KiB took 0.94 of the
    // time of 1 MiB on the 2-thread churn trace, 0.89 on the 1-thread one
    // (15 interleaved runs each; zstd traces unchanged); 64 KiB gave it back.
    let mut chunk = vec![0u8; 1 << 17];
    let mut verified = false;
    let mut sequencer = Sequencer::new();
    let mut waiting = false;
    let mut hand_on = |p: Piece<'_>| each(p) == Flow::Continue;
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((deframer.offset(), e)),
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let at = deframer.offset();
            let (used, ev) = deframer.push(rest);
            rest = &rest[used..];
            let go_on = match ev {
                Some(FrameEvent::Frame {
                    stream,
                    records,
                    offset,
                }) => sequencer.frame(stream, records, offset, at + used as u64, &mut |o| {
                    hand_on(piece(o))
                }),
                Some(FrameEvent::Damaged {
                    offset,
                    len,
                    reason,
                }) => {
                    sequencer.damaged();
                    hand_on(Piece::Damaged(DamagedSpan {
                        offset,
                        len,
                        reason,
                    }))
                }
                None => true,
            };
            if !go_on {
                return Ok(deframer.offset());
            }
            if sequencer.holding() != waiting {
                waiting = !waiting;
                if !hand_on(Piece::Waiting(waiting)) {
                    return Ok(deframer.offset());
                }
            }
            if !verified && deframer.checksums_seen() {
                verified = true;
                if !hand_on(Piece::Verified) {
                    return Ok(deframer.offset());
                }
            }
        }
        progress(deframer.offset());
    }
    let end = deframer.offset();
    // Frames still waiting for the frames before them came before the cut.
    if !sequencer.finish(&mut |o| hand_on(piece(o))) {
        return Ok(end);
    }
    if let Some(FrameEvent::Damaged {
        offset,
        len,
        reason,
    }) = deframer.finish()
    {
        hand_on(Piece::Damaged(DamagedSpan {
            offset,
            len,
            reason,
        }));
    }
    Ok(end)
}

/// A [`Sequencer`] output as a [`Piece`].
fn piece(out: Out<'_>) -> Piece<'_> {
    match out {
        Out::Frame(stream, records, offset) => Piece::Frame(stream, records, offset),
        Out::Issue(issue) => Piece::Sequence(issue),
        Out::Desync(stream) => Piece::Desync(stream),
    }
}
