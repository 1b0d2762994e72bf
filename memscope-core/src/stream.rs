//! The producer side of one stream: delta base, pending loss count, syncs.

use crate::wire::{self, Delta, EncodeError, Record};

/// Records between two [`Record::Sync`]s. A reader that lost a frame to
/// damage cannot resolve deltas until the next sync; 256 records cost about
/// 0.06 bytes a record in syncs.
pub const SYNC_INTERVAL: u32 = 256;

/// Encodes one stream's records: puts a [`Record::Lost`] with the count of
/// dropped events and, when due, a [`Record::Sync`] before the record, and
/// keeps the delta base. The base only advances on [`commit`](Self::commit),
/// that is once the bytes are really in the ring or channel.
#[derive(Clone, Debug)]
pub struct StreamEncoder {
    delta: Delta,
    /// Records since the last sync; `SYNC_INTERVAL` forces one.
    since_sync: u32,
    lost: u64,
}

/// Bytes [`StreamEncoder::prepare`] wrote, to pass to [`StreamEncoder::commit`].
#[must_use]
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    /// Bytes written.
    pub len: usize,
    delta: Delta,
    synced: bool,
    lost: u64,
}

impl StreamEncoder {
    /// A stream whose first record will be preceded by a sync.
    pub const fn new() -> Self {
        StreamEncoder {
            delta: Delta { ts: 0, addr: 0 },
            since_sync: SYNC_INTERVAL,
            lost: 0,
        }
    }

    /// The timestamp of the last committed record: what a free without its own
    /// clock reading carries.
    #[inline(always)]
    pub fn last_ts(&self) -> u64 {
        self.delta.ts
    }

    /// Events counted as lost and not yet reported in the stream.
    pub fn pending_lost(&self) -> u64 {
        self.lost
    }

    /// Encodes `rec` (with the lost count and sync it needs) into `out`.
    #[inline]
    pub fn prepare(&self, rec: &Record<'_>, out: &mut [u8]) -> Result<Prepared, EncodeError> {
        self.prepare_with(out, |delta, rest| rec.encode(delta, rest))
    }

    /// [`prepare`](Self::prepare) for a heap event (alloc, dealloc, realloc):
    /// encodes with [`Record::encode_event`], so a recorder that prepares
    /// every event this way links no extension-record serializer for it.
    /// Fastest when `out` has at least [`EVENT_ROOM`](crate::wire::EVENT_ROOM)
    /// bytes (no length check per byte).
    #[inline(always)]
    pub fn prepare_event(&self, rec: &Record<'_>, out: &mut [u8]) -> Result<Prepared, EncodeError> {
        let lost = self.lost;
        let synced = self.since_sync >= SYNC_INTERVAL;
        // Inlined into the recorder: the event's fields go straight to bytes.
        let (len, delta) = wire::with_event_room(
            out,
            #[inline(always)]
            |o| {
                if lost > 0 {
                    Record::Lost { count: lost }.encode_event_into(self.delta, o)?;
                }
                let mut delta = self.delta;
                if synced {
                    delta = Record::Sync(delta).encode_event_into(delta, o)?;
                }
                rec.encode_event_into(delta, o)
            },
        )?;
        Ok(Prepared {
            len,
            delta,
            synced,
            lost,
        })
    }

    /// Writes the heap-event record `rec` (alloc, dealloc, realloc) at
    /// `out` alone and adopts its base: [`prepare_event`](Self::prepare_event)
    /// and [`commit`](Self::commit) in one step, for a producer that writes
    /// straight into its ring's free space and keeps the other conditions
    /// itself: it calls this only while no loss waits to be reported
    /// ([`pending_lost`](Self::pending_lost) is 0), and spaces its syncs
    /// itself with [`sync_next`](Self::sync_next) (records written here do
    /// not count towards [`SYNC_INTERVAL`]). Returns the bytes written, or
    /// `None` (nothing written) when `rec` is not a heap event.
    ///
    /// # Safety
    ///
    /// `out` is valid for writes of
    /// [`MAX_HEAP_RECORD_LEN`](crate::wire::MAX_HEAP_RECORD_LEN) bytes, and
    /// the caller puts the bytes written into the stream (the base has moved
    /// past them).
    #[inline(always)]
    pub unsafe fn write_event_in_place(&mut self, rec: &Record<'_>, out: *mut u8) -> Option<usize> {
        debug_assert_eq!(self.lost, 0, "a loss must be reported first");
        // SAFETY: the caller's contract.
        let (len, delta) = unsafe { rec.encode_heap_event_unchecked(self.delta, out) }.ok()?;
        self.delta = delta;
        Some(len)
    }

    /// Puts a [`Record::Sync`] before the next record
    /// [`prepare`](Self::prepare) or [`prepare_event`](Self::prepare_event)
    /// writes, as if [`SYNC_INTERVAL`] records had passed.
    pub fn sync_next(&mut self) {
        self.since_sync = SYNC_INTERVAL;
    }

    #[inline(always)]
    fn prepare_with(
        &self,
        out: &mut [u8],
        encode: impl FnOnce(Delta, &mut [u8]) -> Result<(usize, Delta), EncodeError>,
    ) -> Result<Prepared, EncodeError> {
        let mut len = 0;
        if self.lost > 0 {
            len += Record::Lost { count: self.lost }
                .encode_event(self.delta, out)?
                .0;
        }
        let synced = self.since_sync >= SYNC_INTERVAL;
        let mut delta = self.delta;
        if synced {
            let rest = out.get_mut(len..).ok_or(EncodeError::NoSpace)?;
            let (n, d) = Record::Sync(delta).encode_event(delta, rest)?;
            len += n;
            delta = d;
        }
        let rest = out.get_mut(len..).ok_or(EncodeError::NoSpace)?;
        let (n, delta) = encode(delta, rest)?;
        Ok(Prepared {
            len: len + n,
            delta,
            synced,
            lost: self.lost,
        })
    }

    /// The prepared bytes are in the stream.
    #[inline(always)]
    pub fn commit(&mut self, p: Prepared) {
        self.delta = p.delta;
        self.lost -= p.lost;
        self.since_sync = if p.synced { 1 } else { self.since_sync + 1 };
    }

    /// An event was dropped; the next committed record reports it.
    #[inline]
    pub fn lose(&mut self) {
        self.lost += 1;
    }
}

impl Default for StreamEncoder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::wire::{Alloc, Dealloc, Realloc, MAX_HEAP_RECORD_LEN};

    /// The in-place write (a raw pointer, no length checks) writes exactly
    /// the bytes and moves the base exactly as `prepare_event` + `commit`,
    /// within `MAX_HEAP_RECORD_LEN` bytes even for the longest record. The
    /// room is a heap block of exactly that size, so Miri would catch a write
    /// past it.
    #[test]
    fn in_place_writes_what_prepare_and_commit_write() {
        let far = u64::MAX - 7;
        let records = [
            Record::Alloc(Alloc {
                ts: 10,
                addr: Some(0x1000),
                size: 24,
                align: 8,
                zeroed: false,
                stack: None,
            }),
            Record::Dealloc(Dealloc {
                ts: 10,
                ts_exact: false,
                addr: 0x1000,
                size: 24,
                align: 8,
                stack: None,
            }),
            // The longest: every varint at its widest, a stack id of u32::MAX,
            // an explicit (large) alignment.
            Record::Realloc(Realloc {
                ts: u64::MAX,
                old_addr: far,
                old_size: u64::MAX,
                new_addr: Some(0),
                new_size: u64::MAX,
                align: 1 << 62,
                stack: Some(u32::MAX),
            }),
            Record::Alloc(Alloc {
                ts: u64::MAX,
                addr: Some(far),
                size: u64::MAX,
                align: 1 << 40,
                zeroed: true,
                stack: Some(u32::MAX),
            }),
        ];
        let mut reference = StreamEncoder::new();
        // Past the first record's sync, which only the general path writes.
        let mut scratch = [0u8; 256];
        let first = reference.prepare_event(&records[0], &mut scratch).unwrap();
        reference.commit(first);
        let mut in_place = reference.clone();
        let mut longest = 0;
        for rec in &records {
            let mut want = [0u8; 256];
            let p = reference.prepare_event(rec, &mut want).unwrap();
            let want = &want[..p.len];
            reference.commit(p);
            let mut room = std::vec![0u8; MAX_HEAP_RECORD_LEN].into_boxed_slice();
            // SAFETY: `room` is valid for writes of MAX_HEAP_RECORD_LEN bytes.
            let len = unsafe { in_place.write_event_in_place(rec, room.as_mut_ptr()) }
                .expect("a heap event");
            longest = longest.max(len);
            assert_eq!(&room[..len], want, "{rec:?}");
            assert_eq!(in_place.delta, reference.delta, "{rec:?}");
        }
        // The realloc above: 48 bytes, its varints near their widest.
        assert!(longest >= 48, "{longest}");
    }
}
