//! Sources: where trace bytes come from.
//!
//! Every source is just a [`std::io::Read`]: the rest of the pipeline never
//! knows whether the bytes come from a file, stdin, a TCP RTT server, a GDB
//! remote or a debug probe. A [`Source`] adds what the pipeline needs to know
//! about the bytes: a name for messages, the total length when it is known (for
//! the progress bar) and whether it can be read a second time (the exact-peak
//! analysis reads a file twice; a live stream is analysed in one pass).
//!
//! Live sources (`gdb.rs`, `tcp.rs`, `probe.rs`) plug in here: each only has to
//! produce a `Box<dyn Read + Send>` and call [`Source::live`].

pub mod compressed;
pub mod gdb;
#[cfg(feature = "probe-rs")]
pub mod probe;
pub mod tcp;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// An input to decode.
pub struct Source {
    /// Shown in every message about this input (`trace.bin`, `<stdin>`, `tcp:host:port`).
    pub name: String,
    /// Total bytes, when known up front.
    pub len: Option<u64>,
    kind: Kind,
}

enum Kind {
    File(PathBuf),
    Live(Option<Box<dyn Read + Send>>),
}

impl Source {
    /// A file on disk, or stdin when `path` is `-`.
    pub fn open(path: &Path) -> io::Result<Source> {
        if path.as_os_str() == "-" {
            return Ok(Source::live("<stdin>", Box::new(io::stdin())));
        }
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        // Opened once here so a missing or unreadable file fails before any work.
        File::open(path)?;
        Ok(Source {
            name: path.display().to_string(),
            len: meta.is_file().then_some(meta.len()),
            kind: if meta.is_file() {
                Kind::File(path.to_path_buf())
            } else {
                // A FIFO or character device: readable once only.
                Kind::Live(Some(Box::new(File::open(path)?)))
            },
        })
    }

    /// A byte stream that can be read once (stdin, a socket, a probe).
    pub fn live(name: impl Into<String>, reader: Box<dyn Read + Send>) -> Source {
        Source {
            name: name.into(),
            len: None,
            kind: Kind::Live(Some(reader)),
        }
    }

    /// Whether [`reader`](Self::reader) can be called more than once.
    pub fn rereadable(&self) -> bool {
        matches!(self.kind, Kind::File(_))
    }

    /// A reader from the first byte. A live source gives its reader once; the
    /// second call fails.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + Send>> {
        let r: Box<dyn Read + Send> = match &mut self.kind {
            Kind::File(p) => Box::new(File::open(p)?),
            Kind::Live(r) => r
                .take()
                .ok_or_else(|| io::Error::other("a live source can be read only once"))?,
        };
        compressed::decompressing(&self.name, r)
    }
}
