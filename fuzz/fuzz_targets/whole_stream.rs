//! memscope-decode's library on arbitrary bytes, in memory as far as it
//! goes: the pipeline (frames, records, merge of per-thread streams, state,
//! analyses, sessions after a reset), the report model, and every renderer
//! and export (terminal, JSON, HTML, DHAT, pprof, folded stacks, flamegraph
//! SVG, Chrome trace), the budget check and the diff.
//!
//! Besides "never panics" (nor aborts on an allocation: libFuzzer's
//! `-rss_limit_mb` and `-malloc_limit_mb` catch unbounded allocation), it
//! checks that the JSON report parses and that the HTML dashboard's embedded
//! data holds no `<` (hostile names cannot close the `<script>`).
//!
//! Input: one control byte (bit 0: decode as a rereadable file, with the
//! second pass over the peak; bit 1: force the second pass; bit 3: also
//! write the exports and the diff; bit 2: with them the flamegraph SVG, the
//! slowest), then the trace bytes. The report, its terminal and JSON
//! renderings and the budget check run on every input; the exports, which
//! cost several times more, on those with bit 3.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memscope_decode::budget::{self, Budget};
use memscope_decode::diff;
use memscope_decode::pipeline::{self, Options, Run};
use memscope_decode::render::profile::{self, Weight};
use memscope_decode::render::{chrome, dhat, folded, html, json, pprof, terminal};
use memscope_decode::report;
use memscope_decode::source::Source;
use memscope_decode::symbolize::Symbolizer;
use std::io::Cursor;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, trace)) = data.split_first() else {
        return;
    };
    let opts = Options {
        second_pass: ctl & 2 != 0,
        ..Options::default()
    };
    let run = if ctl & 1 != 0 {
        let path = temp_file(trace);
        let mut src = Source::open(&path).expect("own temporary file");
        pipeline::run(&mut src, &opts)
    } else {
        let mut src = Source::live("fuzz", Box::new(Cursor::new(trace.to_vec())));
        pipeline::run(&mut src, &opts)
    };
    // Refusing the input (not a trace, a future version) is a fine answer;
    // the error must still print.
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            let _ = e.to_string();
            let _ = e.exit_code();
            return;
        }
    };
    render(&run, ctl & 8 != 0, ctl & 4 != 0);
});

fn render(run: &Run, exports: bool, svg: bool) {
    let mut syms: Vec<Symbolizer> = run.sessions.iter().map(|_| Symbolizer::none()).collect();
    let r = report::build(run, &mut syms, &report::Options::default());
    let _ = terminal::render(&r);
    let mut out = Vec::new();
    json::write(&r, &mut out).expect("JSON to memory");
    serde_json::from_slice::<serde_json::Value>(&out).expect("the JSON report parses");
    let _ = budget::check(
        &r,
        &Budget {
            max_peak: Some(1),
            no_leaks: true,
            max_leaked: Some(1),
            max_allocations: Some(1),
            no_errors: true,
            require_complete: true,
            no_failed: true,
        },
    );
    if !exports {
        return;
    }
    let (Some(last), Some(sym)) = (run.sessions.last(), syms.last_mut()) else {
        return;
    };
    let p = profile::build(last, sym);
    let mut page = Vec::new();
    html::write(&r, &p, &mut page).expect("HTML to memory");
    let page = String::from_utf8(page).expect("HTML is UTF-8");
    let marker = "id=\"memscope-data\">";
    let start = page.find(marker).expect("data block") + marker.len();
    let end = start + page[start..].find("</script>").expect("data block closes");
    assert!(
        !page[start..end].contains('<'),
        "the embedded report data holds a '<'"
    );
    dhat::write(&p, "fuzz", None, std::io::sink()).expect("DHAT to memory");
    pprof::write(&p, std::io::sink()).expect("pprof to memory");
    for w in [Weight::Allocated, Weight::Peak, Weight::Leaked] {
        folded::write(&p, w, std::io::sink()).expect("folded to memory");
    }
    if svg {
        // inferno may refuse an empty profile; it must not panic.
        let _ = folded::write_svg(&p, Weight::Allocated, "fuzz", std::io::sink());
    }
    chrome::write(&r, std::io::sink()).expect("Chrome trace to memory");
    // Diff of the first session against the last.
    let first = &run.sessions[0];
    let mut sym0 = Symbolizer::none();
    let a = diff::site_totals(first, &mut sym0);
    let b = diff::site_totals(last, sym);
    let d = diff::diff(
        &a,
        &b,
        first.analyses.peak.peak_bytes,
        last.analyses.peak.peak_bytes,
        20,
    );
    let _ = diff::render(&d, "first", "last");
}

/// The trace as a file, so the pipeline reads it twice like a real file (one
/// file per fuzzing process, rewritten each run).
fn temp_file(bytes: &[u8]) -> PathBuf {
    let dir = std::env::var_os("MEMSCOPE_FUZZ_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("memscope-fuzz-{}.bin", std::process::id()));
    std::fs::write(&path, bytes).expect("temporary file");
    path
}
