//! Folded stacks (`outer;…;inner weight`, one line per distinct stack), the
//! input of inferno and of Brendan Gregg's flamegraph.pl, and the flamegraph
//! SVG drawn from them with inferno.

use crate::render::profile::{user_frames_outermost_first, Profile, Weight};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// One line per distinct stack with a non-zero weight, sorted (inferno wants
/// equal stacks adjacent; sorting also makes the output reproducible).
pub fn lines(p: &Profile, w: Weight) -> Vec<String> {
    let mut by_stack: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.sites {
        let v = w.of(s);
        if v == 0 {
            continue;
        }
        let key = user_frames_outermost_first(s)
            .iter()
            .map(|f| clean(f))
            .collect::<Vec<_>>()
            .join(";");
        let e = by_stack.entry(key).or_default();
        *e = e.saturating_add(v);
    }
    by_stack
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect()
}

/// `;` separates frames and a line ends the record: neither may appear in a
/// frame name.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ';' => ':',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Writes the folded file.
pub fn write(p: &Profile, w: Weight, mut out: impl Write) -> io::Result<()> {
    for l in lines(p, w) {
        writeln!(out, "{l}")?;
    }
    out.flush()
}

/// Draws the flamegraph SVG with inferno.
pub fn write_svg(p: &Profile, w: Weight, program: &str, out: impl Write) -> io::Result<()> {
    let lines = lines(p, w);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!(
        "{} — {}",
        if program.is_empty() {
            "memscope"
        } else {
            program
        },
        match w {
            Weight::Allocated => "bytes allocated",
            Weight::Peak => "bytes live at the peak",
            Weight::Leaked => "bytes leaked (live at the end)",
            Weight::Calls => "allocation calls",
        }
    );
    opts.count_name = if w == Weight::Calls { "calls" } else { "bytes" }.to_owned();
    opts.colors =
        inferno::flamegraph::color::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    if lines.is_empty() {
        // inferno refuses an empty profile; say so in the picture instead.
        opts.subtitle = Some("nothing has this weight".to_owned());
        return inferno::flamegraph::from_lines(
            &mut opts,
            ["[nothing with this weight] 1"].iter().copied(),
            out,
        )
        .map_err(io::Error::other);
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(io::Error::other)
}
