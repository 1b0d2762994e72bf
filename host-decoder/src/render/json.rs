//! The JSON report: the [`Report`] model as is (schema in docs/REPORT-SCHEMA.md).

use crate::report::Report;
use std::io::{self, Write};

/// Writes `report` as pretty JSON.
pub fn write(report: &Report, out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, report).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}
