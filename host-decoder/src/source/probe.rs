//! RTT through a debug probe with the probe-rs library (cargo feature
//! `probe-rs`, off by default: it is a large dependency).
//!
//! Attaches to the chip by its probe-rs name (`nRF52840_xxAA`,
//! `STM32F411RETx`…), finds the `_SEGGER_RTT` control block from the ELF
//! symbol (or by scanning RAM when the ELF has none), and reads the `memscope`
//! up-channel as a byte stream. When the ELF carries a defmt table, the
//! `defmt` channel (or channel 0) is decoded with defmt-decoder on the side
//! and each log line is handed to a callback (stderr in the CLI), so logs and
//! the heap trace come from one attachment.
//!
//! The stream has no natural end on real hardware: reads return data as it
//! comes, and an error (probe unplugged, target reset into another image)
//! ends it. Built without probe-rs's `cmsisdap_v1` feature, so CMSIS-DAP v1
//! (HID) probes are not supported; v2 probes, ST-Link and J-Link are.

use std::io::{self, Read};
use std::path::Path;
use std::thread;
use std::time::Duration;

use probe_rs::probe::list::Lister;
use probe_rs::rtt::{Rtt, ScanRegion};
use probe_rs::{Permissions, Session};

use super::gdb::find_control_block;

/// Which up-channels carry the memscope trace and the defmt logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channels {
    /// The memscope channel.
    pub memscope: usize,
    /// The defmt channel, when there is one.
    pub defmt: Option<usize>,
}

/// Picks the channels from the up-channel names (index = channel number):
/// memscope's is the one named `memscope`; defmt's is the one named `defmt`,
/// else channel 0 when that is not memscope's and `has_defmt` says the ELF
/// has a defmt table.
pub fn select_channels(names: &[Option<&str>], has_defmt: bool) -> Result<Channels, String> {
    let memscope = names
        .iter()
        .position(|n| *n == Some("memscope"))
        .ok_or_else(|| {
            let listed: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{i}: {}", n.unwrap_or("(unnamed)")))
                .collect();
            format!(
                "no RTT up-channel named \"memscope\" (the target has {}); hand one to memscope_core::rtt::RttSink::attach",
                if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
            )
        })?;
    let defmt = names
        .iter()
        .position(|n| *n == Some("defmt"))
        .or_else(|| (has_defmt && memscope != 0 && !names.is_empty()).then_some(0))
        .filter(|_| has_defmt);
    Ok(Channels { memscope, defmt })
}

/// A defmt log stream: the table is leaked so its stream decoder (which
/// borrows it) can live in the source; one per process.
struct DefmtLogs {
    channel: usize,
    decoder: Box<dyn defmt_decoder::StreamDecoder + Send + Sync + 'static>,
}

/// The memscope RTT channel of a chip behind a debug probe.
pub struct ProbeRtt {
    session: Session,
    rtt: Rtt,
    channels: Channels,
    defmt: Option<DefmtLogs>,
    on_log: Box<dyn FnMut(String) + Send>,
    poll: Duration,
    name: String,
}

fn probe_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("probe-rs: {what}: {e}"))
}

impl ProbeRtt {
    /// Attaches to `chip` through the first probe found, with `elf` (the image
    /// running on it) for the control block address and the defmt table.
    /// `on_log` receives each decoded defmt line.
    pub fn attach(
        chip: &str,
        elf: &Path,
        on_log: Box<dyn FnMut(String) + Send>,
    ) -> io::Result<ProbeRtt> {
        let data = std::fs::read(elf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", elf.display())))?;
        let region = match find_control_block(&data) {
            Ok((addr, _)) => ScanRegion::Exact(addr),
            // No symbol (stripped ELF): scan the chip's RAM for the ID string.
            Err(_) => ScanRegion::Ram,
        };
        let table = defmt_decoder::Table::parse(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: defmt table: {e}", elf.display()),
            )
        })?;

        let lister = Lister::new();
        let probes = lister.list_all();
        let info = probes
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "probe-rs: no debug probe found (is it plugged in, and do you have permission to open it?)"))?;
        let probe = info.open().map_err(|e| probe_err("opening the probe", e))?;
        let mut session = probe
            .attach(chip, Permissions::default())
            .map_err(|e| probe_err(&format!("attaching to {chip}"), e))?;
        let mut rtt = {
            let mut core = session
                .core(0)
                .map_err(|e| probe_err("selecting core 0", e))?;
            probe_rs::rtt::try_attach_to_rtt(&mut core, Duration::from_secs(5), &region)
                .map_err(|e| probe_err("finding the RTT control block", e))?
        };
        let names: Vec<Option<String>> = rtt
            .up_channels()
            .iter()
            .map(|c| c.name().map(str::to_string))
            .collect();
        let names: Vec<Option<&str>> = names.iter().map(|n| n.as_deref()).collect();
        let channels = select_channels(&names, table.is_some()).map_err(|e| {
            io::Error::new(io::ErrorKind::NotFound, format!("probe-rs {chip}: {e}"))
        })?;
        let defmt = match (table, channels.defmt) {
            (Some(table), Some(channel)) => {
                let table: &'static defmt_decoder::Table = Box::leak(Box::new(table));
                Some(DefmtLogs {
                    channel,
                    decoder: table.new_stream_decoder(),
                })
            }
            _ => None,
        };
        Ok(ProbeRtt {
            session,
            rtt,
            channels,
            defmt,
            on_log,
            poll: Duration::from_millis(10),
            name: format!("rtt {chip}"),
        })
    }

    /// Source name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads and decodes whatever the defmt channel holds.
    fn pump_logs(&mut self) -> io::Result<()> {
        let Some(logs) = self.defmt.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 1024];
        let n = {
            let mut core = self
                .session
                .core(0)
                .map_err(|e| probe_err("selecting core 0", e))?;
            match self.rtt.up_channel(logs.channel) {
                Some(ch) => ch
                    .read(&mut core, &mut buf)
                    .map_err(|e| probe_err("reading the defmt channel", e))?,
                None => 0,
            }
        };
        logs.decoder.received(&buf[..n]);
        loop {
            match logs.decoder.decode() {
                Ok(frame) => (self.on_log)(frame.display(false).to_string()),
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    (self.on_log)(
                        "defmt: malformed frame skipped (is the ELF the one running?)".into(),
                    );
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Read for ProbeRtt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.pump_logs()?;
            let n = {
                let mut core = self
                    .session
                    .core(0)
                    .map_err(|e| probe_err("selecting core 0", e))?;
                let ch = self
                    .rtt
                    .up_channel(self.channels.memscope)
                    .ok_or_else(|| probe_err("reading", "the memscope channel disappeared"))?;
                ch.read(&mut core, buf)
                    .map_err(|e| probe_err("reading the memscope channel", e))?
            };
            if n > 0 {
                return Ok(n);
            }
            thread::sleep(self.poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memscope_by_name_defmt_by_name_or_channel_zero() {
        let c = select_channels(&[Some("defmt"), Some("memscope")], true).unwrap();
        assert_eq!(
            c,
            Channels {
                memscope: 1,
                defmt: Some(0)
            }
        );
        let c = select_channels(&[Some("Terminal"), Some("memscope")], true).unwrap();
        assert_eq!(c.defmt, Some(0), "defmt tools use channel 0 by convention");
        let c = select_channels(&[Some("defmt"), Some("memscope")], false).unwrap();
        assert_eq!(
            c.defmt, None,
            "no defmt table in the ELF: nothing to decode with"
        );
        let c = select_channels(&[Some("memscope")], true).unwrap();
        assert_eq!(
            c,
            Channels {
                memscope: 0,
                defmt: None
            }
        );
    }

    #[test]
    fn a_missing_memscope_channel_lists_what_is_there() {
        let e = select_channels(&[Some("defmt"), None], true).unwrap_err();
        assert!(e.contains("0: defmt, 1: (unnamed)"), "{e}");
    }
}
