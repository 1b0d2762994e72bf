//! The live view: while a live source (`gdb`, `tcp`, `rtt`, stdin) streams,
//! one line on stderr says where the heap stands — live bytes now, the peak so
//! far, allocations, events lost — rewritten in place at most
//! [`REFRESH`] apart. It is drawn only when stderr is a terminal: a redirected
//! stderr (a log, CI) gets nothing, so no carriage returns end up in files.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Shortest time between two redraws (at most ten per second).
pub const REFRESH: Duration = Duration::from_millis(100);

/// What the line shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Bytes live now.
    pub current_bytes: u64,
    /// Blocks live now.
    pub current_blocks: u64,
    /// Most bytes live at once so far.
    pub peak_bytes: u64,
    /// Allocations so far (including reallocations).
    pub allocations: u64,
    /// Events the target reported lost.
    pub lost: u64,
    /// Sessions so far (more than one after a target reset).
    pub session: usize,
}

/// `1536` → `1.5 KiB`: short enough for one line.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The line, without control characters.
pub fn format_line(f: &Figures) -> String {
    let mut line = format!(
        "live {} in {} blocks | peak {} | {} allocations | lost {}",
        bytes(f.current_bytes),
        f.current_blocks,
        bytes(f.peak_bytes),
        f.allocations,
        f.lost
    );
    if f.session > 1 {
        line.push_str(&format!(" | session {}", f.session));
    }
    line
}

/// Draws [`format_line`] in place on a terminal, throttled.
pub struct LiveView<W: Write> {
    out: Option<W>,
    last: Option<Instant>,
    drawn: bool,
}

impl LiveView<std::io::Stderr> {
    /// On stderr when `enabled` and stderr is a terminal; silent otherwise.
    pub fn stderr(enabled: bool) -> Self {
        let err = std::io::stderr();
        let terminal = err.is_terminal();
        LiveView::new(err, enabled && terminal)
    }
}

impl<W: Write> LiveView<W> {
    /// Draws to `out` only when `terminal` (the caller's check of `out`).
    pub fn new(out: W, terminal: bool) -> Self {
        LiveView {
            out: terminal.then_some(out),
            last: None,
            drawn: false,
        }
    }

    /// Whether anything will ever be drawn.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.out.is_some()
    }

    /// Whether a redraw is due at `now` (callers skip gathering figures otherwise).
    #[inline]
    pub fn due(&self, now: Instant) -> bool {
        self.out.is_some() && self.last.is_none_or(|t| now.duration_since(t) >= REFRESH)
    }

    /// Redraws the line if one is due.
    pub fn update(&mut self, now: Instant, figures: &Figures) {
        if !self.due(now) {
            return;
        }
        self.last = Some(now);
        if let Some(out) = &mut self.out {
            // `\r` back to column 0, ESC[2K clears the old line (a shorter
            // line would otherwise leave the old one's tail). A failed write
            // to stderr only loses the view.
            let _ = write!(out, "\r\x1b[2K{}", format_line(figures));
            let _ = out.flush();
            self.drawn = true;
        }
    }

    /// Clears the line so that the report starts on a clean line.
    pub fn finish(&mut self) {
        if let (Some(out), true) = (&mut self.out, self.drawn) {
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            current_bytes: 1536,
            current_blocks: 3,
            peak_bytes: 5 * 1024 * 1024,
            allocations: 1234,
            lost: 7,
            session: 1,
        }
    }

    #[test]
    fn the_line_is_compact_and_says_what_matters() {
        assert_eq!(
            format_line(&figures()),
            "live 1.5 KiB in 3 blocks | peak 5.0 MiB | 1234 allocations | lost 7"
        );
        let f = Figures {
            current_bytes: 100,
            session: 2,
            ..figures()
        };
        assert_eq!(
            format_line(&f),
            "live 100 B in 3 blocks | peak 5.0 MiB | 1234 allocations | lost 7 | session 2"
        );
    }

    #[test]
    fn draws_in_place_at_most_ten_times_a_second() {
        let mut buf = Vec::new();
        let t0 = Instant::now();
        {
            let mut v = LiveView::new(&mut buf, true);
            v.update(t0, &figures());
            // Within the refresh interval: no redraw.
            v.update(t0 + Duration::from_millis(50), &Figures::default());
            v.update(
                t0 + REFRESH,
                &Figures {
                    lost: 8,
                    ..figures()
                },
            );
            v.finish();
        }
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(
            s,
            format!(
                "\r\x1b[2K{}\r\x1b[2K{}\r\x1b[2K",
                format_line(&figures()),
                format_line(&Figures {
                    lost: 8,
                    ..figures()
                })
            )
        );
    }

    #[test]
    fn silent_when_not_a_terminal() {
        let mut buf = Vec::new();
        {
            let mut v = LiveView::new(&mut buf, false);
            assert!(!v.is_active());
            v.update(Instant::now(), &figures());
            v.finish();
        }
        assert!(buf.is_empty());
        // Under the test harness stderr is captured, not a terminal... unless
        // the developer runs the tests on one; either way the decision is the
        // terminal check's.
        let v = LiveView::stderr(true);
        assert_eq!(v.is_active(), std::io::stderr().is_terminal());
        assert!(!LiveView::stderr(false).is_active());
    }
}
