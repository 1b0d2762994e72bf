//! The HTML dashboard in a real browser (headless Chromium): it loads from
//! disk with no JavaScript error and no network request, shows the JSON
//! report's numbers, reacts to sorting, filtering and the flamegraph's weight
//! switch, and runs nothing a trace's names carry.

#[path = "report_common/mod.rs"]
mod common;
use common::*;
use memscope_decode::render::bytes;
use serde_json::json;

fn assert_clean(v: &serde_json::Value) {
    assert_eq!(v["exceptions"], json!([]), "JavaScript errors: {v}");
    assert_eq!(v["console_errors"], json!([]), "console errors: {v}");
    assert_eq!(v["requests"], json!([]), "network requests: {v}");
    assert_eq!(v["dialogs"], json!([]), "dialogs opened: {v}");
}

/// Opens `dir/report.html`, waits until it has drawn itself, and returns
/// what the driver saw (no error, request or dialog: checked) with the value
/// of `eval` in `result`.
fn dashboard_eval(dir: &std::path::Path, eval: &str) -> serde_json::Value {
    let v = browser(json!({
        "url": file_url(&dir.join("report.html")),
        "ready": "document.body.getAttribute('data-ready') === '1'",
        "eval": eval,
    }));
    assert_clean(&v);
    v
}

#[test]
fn dashboard_loads_offline_and_shows_the_report_numbers() {
    let (dir, rep) = decode_workload("html", &["--html", "report.html"]);
    let shot = out_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let v = browser(json!({
        "url": file_url(&dir.join("report.html")),
        "ready": "document.body.getAttribute('data-ready') === '1'",
        "screenshot": shot.display().to_string(),
        "eval": r#"(() => {
            const val = (id) => Number(document.querySelector('#card-' + id + ' .v').dataset.value);
            const out = {};
            // Zoom the timeline by dragging across its middle third.
            const tl = document.getElementById('timeline');
            const axis = () => [...tl.querySelectorAll('text')].map((t) => t.textContent).join('|');
            const before = axis();
            out.peak_marker = !!document.getElementById('peak-marker');
            // One line per thread besides the total, each switchable; the peak stays marked.
            const drawn = () => [...tl.querySelectorAll('path[data-series]')].map((p) => p.dataset.series);
            out.series = drawn();
            out.legend = [...document.querySelectorAll('#timeline-legend label[data-max]')].map((l) => ({text: l.textContent, max: Number(l.dataset.max)}));
            document.getElementById('tl-total').click();
            out.without_total = drawn();
            out.peak_without_total = !!document.getElementById('peak-marker');
            document.getElementById('tl-total').click();
            const firstThread = out.series.find((k) => k !== 'total');
            document.getElementById('tl-' + firstThread).click();
            out.without_first_thread = drawn();
            document.getElementById('tl-' + firstThread).click();
            out.restored = drawn();
            {
                const b = tl.getBoundingClientRect();
                tl.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + b.width * 0.5, clientY: b.top + 40, bubbles: true}));
                out.readout = document.getElementById('timeline-readout').textContent;
            }
            const box = tl.getBoundingClientRect();
            tl.dispatchEvent(new MouseEvent('mousedown', {clientX: box.left + box.width * 0.35, clientY: box.top + 40, bubbles: true}));
            window.dispatchEvent(new MouseEvent('mouseup', {clientX: box.left + box.width * 0.65, clientY: box.top + 40, bubbles: true}));
            out.zoomed = axis() !== before;
            for (const k of ['peak-bytes','peak-blocks','leaked-bytes','leaked-blocks','allocations','bytes-allocated','errors','threads','lost-events']) out[k] = val(k);
            out.flame_rects = document.querySelectorAll('#flamegraph rect').length;
            out.flame_alloc = document.querySelector('#flamegraph title').textContent;
            document.getElementById('fw-leak').click();
            out.flame_leak = document.querySelector('#flamegraph title').textContent;
            document.getElementById('fw-calls').click();
            out.flame_calls = document.querySelector('#flamegraph title').textContent;
            // The call-site table: first section table with a filter box.
            const sites = [...document.querySelectorAll('section')].find((s) => s.querySelector('h2').textContent === 'Call sites');
            const rows = () => [...sites.querySelectorAll('tbody tr')];
            out.site_rows = rows().length;
            out.first_site = rows()[0].children[0].textContent;
            out.first_site_bytes = rows()[0].children[2].textContent;
            out.first_site_avg = rows()[0].children[6].textContent;
            out.site_columns = [...sites.querySelectorAll('th')].map((th) => th.textContent);
            // Highlight the top site's frame in the flamegraph (weight: bytes allocated).
            document.getElementById('fw-alloc').click();
            const find = document.getElementById('flame-search');
            find.value = out.first_site;
            find.dispatchEvent(new Event('input'));
            out.flame_matches = document.querySelectorAll('#flamegraph rect.match').length;
            out.flame_matched = Number(document.getElementById('flame-info').dataset.matched);
            // Bottom-up: the allocating frames under the root, the widest first.
            const dir = document.getElementById('flame-direction');
            dir.value = 'bottom';
            dir.dispatchEvent(new Event('change'));
            out.bottom_root = document.querySelector('#flamegraph title').textContent;
            const level1 = [...document.querySelectorAll('#flamegraph g')].filter((g) => g.querySelector('rect').getAttribute('y') === '17');
            level1.sort((a, b) => Number(b.querySelector('rect').getAttribute('width')) - Number(a.querySelector('rect').getAttribute('width')));
            out.bottom_widest = level1.length ? level1[0].querySelector('title').textContent : null;
            out.bottom_matched = Number(document.getElementById('flame-info').dataset.matched);
            // Sort by calls (descending), then read the column.
            sites.querySelectorAll('th')[1].click();
            out.calls_sorted = rows().map((r) => Number(r.children[1].textContent.replace(/,/g, '')));
            // Filter to one site.
            const inp = sites.querySelector('input[type=search]');
            inp.value = out.first_site;
            inp.dispatchEvent(new Event('input'));
            out.filtered_rows = rows().length;
            // Expand its stack.
            rows()[0].click();
            out.stack = sites.querySelector('.stack') ? sites.querySelector('.stack').textContent : null;
            // The other site lists: peak, leaks, temporaries, growth, cross-thread frees.
            const sec = (title) => [...document.querySelectorAll('section')].find((s) => s.querySelector('h2').textContent === title);
            const dv = (id) => Number(document.getElementById(id).dataset.value);
            out.peak_total = dv('peak-total');
            out.peak_rows = sec('Live at the peak').querySelectorAll('tbody tr').length;
            out.first_peak_site = sec('Live at the peak').querySelector('tbody tr td').textContent;
            const leakRow = sec('Leaks (live at the end)').querySelector('tbody tr');
            leakRow.click();
            out.leak_stack = sec('Leaks (live at the end)').querySelector('.stack').textContent;
            out.temporaries = dv('temporaries-total');
            out.temporary_rows = sec('Temporary allocations').querySelectorAll('tbody tr').length;
            out.growth_rows = sec('Realloc growth').querySelectorAll('tbody tr').length;
            out.cross_thread = dv('cross-thread-total');
            out.cross_thread_rows = sec('Cross-thread frees').querySelectorAll('tbody tr').length;
            return out;
        })()"#,
    }));
    assert_clean(&v);
    let r = &v["result"];
    let s = &rep["summary"];
    for (card, key) in [
        ("peak-bytes", "peak_bytes"),
        ("peak-blocks", "peak_blocks"),
        ("leaked-bytes", "leaked_bytes"),
        ("leaked-blocks", "leaked_blocks"),
        ("allocations", "allocations"),
        ("bytes-allocated", "bytes_allocated"),
        ("errors", "errors"),
        ("threads", "threads"),
        ("lost-events", "lost_events"),
    ] {
        assert_eq!(u(r, card), u(s, key), "{card}");
    }
    assert!(r["peak_marker"].as_bool().unwrap());
    // The total and one line per thread the report follows, in stream order.
    let tt = rep["thread_timelines"]["threads"].as_array().unwrap();
    assert_eq!(tt.len(), 3, "{}", rep["thread_timelines"]);
    let mut want = vec!["total".to_owned()];
    want.extend(tt.iter().map(|t| format!("stream-{}", t["stream"])));
    let drawn = |k: &str| -> Vec<String> { serde_json::from_value(r[k].clone()).unwrap() };
    assert_eq!(drawn("series"), want);
    let legend = r["legend"].as_array().unwrap();
    assert_eq!(legend.len(), tt.len());
    for (l, t) in legend.iter().zip(tt) {
        let max = t["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u(b, "max"))
            .max()
            .unwrap();
        assert_eq!(u(l, "max"), max, "{l}");
        let name = rep["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["stream"] == t["stream"])
            .unwrap()["name"]
            .as_str()
            .unwrap();
        assert!(l["text"].as_str().unwrap().starts_with(name), "{l}");
    }
    assert_eq!(drawn("without_total"), want[1..].to_vec());
    assert!(
        r["peak_without_total"].as_bool().unwrap(),
        "the peak lost its mark"
    );
    let mut rest = want.clone();
    rest.remove(1);
    assert_eq!(drawn("without_first_thread"), rest);
    assert_eq!(drawn("restored"), want);
    let readout = r["readout"].as_str().unwrap();
    assert!(
        readout.contains("all threads") && readout.contains("worker-"),
        "{readout}"
    );
    assert_eq!(r["zoomed"], true, "dragging did not zoom the timeline");
    assert!(u(r, "flame_rects") > 10, "{r}");
    // The flamegraph's root holds every byte of the chosen weight.
    let alloc = r["flame_alloc"].as_str().unwrap();
    assert!(
        alloc.starts_with(&format!("all — {}", bytes(u(s, "bytes_allocated")))),
        "{alloc}"
    );
    let calls = r["flame_calls"].as_str().unwrap();
    let n_calls = u(s, "allocations") + u(s, "reallocations") - u(s, "failed_allocations");
    assert!(
        calls.starts_with(&format!("all — {} calls", with_commas(n_calls))),
        "{calls}"
    );
    let leak = r["flame_leak"].as_str().unwrap();
    assert!(
        leak.starts_with(&format!("all — {}", bytes(u(s, "leaked_bytes")))),
        "{leak}"
    );
    // The table's first row is the report's top site by bytes.
    let top = &rep["hot_sites"]["by_bytes"][0];
    assert_eq!(r["first_site"], top["location"]);
    assert_eq!(r["first_site_bytes"], bytes(u(top, "bytes")));
    assert_eq!(
        r["first_site_avg"],
        bytes((u(top, "bytes") as f64 / u(top, "count") as f64).round() as u64)
    );
    let cols: Vec<String> = serde_json::from_value(r["site_columns"].clone()).unwrap();
    assert!(
        cols.iter().any(|c| c.starts_with("blocks at peak"))
            && cols.iter().any(|c| c.starts_with("avg lifetime")),
        "{cols:?}"
    );
    // Searching the flamegraph for the top site's frame finds its bytes, all of them.
    assert!(u(r, "flame_matches") >= 1, "{r}");
    assert_eq!(u(r, "flame_matched"), u(top, "bytes"));
    // Bottom-up holds the same bytes, and its widest allocating frame is the top site's.
    assert!(
        r["bottom_root"]
            .as_str()
            .unwrap()
            .starts_with(&format!("all — {}", bytes(u(s, "bytes_allocated")))),
        "{r}"
    );
    assert!(
        r["bottom_widest"].as_str().unwrap().starts_with(&format!(
            "{} — {}",
            top["location"].as_str().unwrap(),
            bytes(u(top, "bytes"))
        )),
        "{r}"
    );
    assert_eq!(u(r, "bottom_matched"), u(top, "bytes"));
    assert!(u(r, "site_rows") > 10);
    let calls: Vec<u64> = serde_json::from_value(r["calls_sorted"].clone()).unwrap();
    assert!(calls.windows(2).all(|w| w[0] >= w[1]), "{calls:?}");
    assert_eq!(u(r, "filtered_rows"), 1);
    assert!(r["stack"].as_str().unwrap().contains("called from"), "{r}");
    let len = |v: &serde_json::Value| v.as_array().unwrap().len() as u64;
    assert_eq!(u(r, "peak_total"), u(s, "peak_bytes"));
    assert_eq!(u(r, "peak_rows"), len(&rep["peak"]["sites"]));
    assert_eq!(r["first_peak_site"], rep["peak"]["sites"][0]["location"]);
    // A leak's stack starts at its location.
    let leak_stack = r["leak_stack"].as_str().unwrap();
    assert!(
        leak_stack.starts_with(rep["leaks"]["sites"][0]["location"].as_str().unwrap())
            && leak_stack.contains("called from"),
        "{leak_stack}"
    );
    assert_eq!(u(r, "temporaries"), u(&rep["temporaries"], "count"));
    assert_eq!(u(r, "temporary_rows"), len(&rep["temporaries"]["sites"]));
    assert_eq!(u(r, "growth_rows"), len(&rep["growth"]).min(300));
    assert_eq!(u(r, "cross_thread"), u(&rep["cross_thread_frees"], "count"));
    assert_eq!(
        u(r, "cross_thread_rows"),
        len(&rep["cross_thread_frees"]["pairs"]).min(300)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_from_the_trace_run_nothing_and_read_as_text() {
    let dir = work_dir("xss");
    let rep = decode(&dir, &hostile_host_trace(), &["--html", "report.html"]);
    assert_eq!(rep["scopes"][0]["name"], EVIL);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.to_lowercase().contains("<script>alert"),
        "raw markup in the page"
    );
    assert!(!html.contains("<img"), "raw markup in the page");
    let v = dashboard_eval(&dir, "({text: document.body.textContent, scripts: document.scripts.length, imgs: document.images.length})");
    let r = &v["result"];
    assert_eq!(u(r, "scripts"), 2, "a script element was injected");
    assert_eq!(u(r, "imgs"), 0, "an image element was injected");
    let text = r["text"].as_str().unwrap();
    // Shown, as text: the scope, thread, variable names.
    assert!(text.matches(EVIL).count() >= 3, "{text}");
    assert!(text.contains(EVIL_IMG), "{text}");
    assert!(
        text.contains("/</script><script>alert(3)</script>: no file"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn firmware_dashboard_draws_the_heap_map() {
    let dir = work_dir("fw");
    let rep = decode(&dir, &firmware_trace(), &["--html", "report.html"]);
    let frag = rep["fragmentation"].as_array().unwrap();
    assert_eq!(frag.len(), 2, "{rep}");
    let v = dashboard_eval(&dir, "[...document.querySelectorAll('.heapmap')].map((m) => ({at: m.dataset.at, used: [...m.children].filter((c) => c.title.startsWith('block')).length}))");
    let maps = v["result"].as_array().unwrap();
    assert_eq!(maps.len(), 2);
    for (m, f) in maps.iter().zip(frag) {
        assert_eq!(m["at"], f["at"]);
        assert_eq!(u(m, "used"), u(f, "blocks"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 10^5 call sites: the page aggregates them (a folded call tree, the
/// largest sites in the table) and still draws everything. How long that
/// takes is printed, not asserted.
#[test]
fn a_hundred_thousand_sites_are_aggregated() {
    use memscope_decode::synth::TraceBuilder;
    const SITES: u64 = 100_000;
    let mut b = TraceBuilder::new(Vec::new()).batched(4096);
    b.simple_header("many-sites", 1_000_000_000).unwrap();
    for i in 0..SITES {
        let id = i as u32 + 1;
        b.stack(
            1,
            id,
            &[0x10_0000 + i * 16, 0x9000 + (i % 100) * 16, 0x1000],
        )
        .unwrap();
        b.alloc(1, 1000 + i, 0x1000_0000 + i * 64, 16 + i % 48, 8, Some(id))
            .unwrap();
        if i % 2 == 0 {
            b.dealloc(1, None, 0x1000_0000 + i * 64, 16 + i % 48, 8, Some(id))
                .unwrap();
        }
    }
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let dir = work_dir("many");
    let rep = decode(&dir, &b.finish().unwrap(), &["--html", "report.html"]);
    let size = std::fs::metadata(dir.join("report.html")).unwrap().len();
    let v = browser(json!({
        "url": file_url(&dir.join("report.html")),
        "ready": "document.body.getAttribute('data-ready') === '1'",
        "eval": r#"(() => {
            const sites = [...document.querySelectorAll('section')].find((s) => s.querySelector('h2').textContent === 'Call sites');
            const out = {ms: Number(document.body.dataset.renderMs), note: sites.querySelector('.controls .note').textContent,
                    rects: document.querySelectorAll('#flamegraph rect').length,
                    flame: document.querySelector('#flamegraph title').textContent};
            // How long the interactions take on this page (printed, not asserted).
            const time = (f) => { const t = performance.now(); f(); return Math.round(performance.now() - t); };
            out.weight_ms = time(() => document.getElementById('fw-leak').click());
            out.bottom_up_ms = time(() => { const d = document.getElementById('flame-direction'); d.value = 'bottom'; d.dispatchEvent(new Event('change')); });
            out.search_ms = time(() => { const f = document.getElementById('flame-search'); f.value = '0x9'; f.dispatchEvent(new Event('input')); });
            out.sort_ms = time(() => sites.querySelectorAll('th')[1].click());
            const typeIn = (v) => time(() => { const i = sites.querySelector('input[type=search]'); i.value = v; i.dispatchEvent(new Event('input')); });
            out.filter_ms = typeIn('0x1');
            out.filter_again_ms = typeIn('0x10');
            return out;
        })()"#,
    }));
    assert_clean(&v);
    let r = &v["result"];
    assert!(
        r["note"].as_str().unwrap().contains("of 100,000 sites"),
        "{r}"
    );
    assert!(
        r["flame"].as_str().unwrap().starts_with(&format!(
            "all — {}",
            bytes(u(&rep["summary"], "bytes_allocated"))
        )),
        "{r}"
    );
    eprintln!(
        "10^5 sites: report.html {} KiB, drawn in {} ms, {} flamegraph rectangles; \
         flamegraph weight switch {} ms, bottom-up {} ms, frame search {} ms; \
         call-site table sort {} ms, filter {} ms (next keystroke {} ms)",
        size / 1024,
        r["ms"],
        r["rects"],
        r["weight_ms"],
        r["bottom_up_ms"],
        r["search_ms"],
        r["sort_ms"],
        r["filter_ms"],
        r["filter_again_ms"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The page's title names the program by its file name, so a shared page or
/// a screenshot does not show the directory it was built in; the full path
/// is the title's tooltip and appears nowhere else in the page's text.
#[test]
fn the_title_names_the_program_by_its_file_name() {
    use memscope_decode::synth::TraceBuilder;
    const PROGRAM: &str = "/opt/builds/project/target/release/my-app";
    let mut b = TraceBuilder::new(Vec::new());
    b.simple_header(PROGRAM, 1_000_000_000).unwrap();
    b.thread(1, 7, "main").unwrap();
    b.alloc(1, 1000, 0x10_0000, 64, 8, None).unwrap();
    b.end(1, 0).unwrap();
    b.end(0, 1).unwrap();
    let dir = work_dir("title");
    let rep = decode(&dir, &b.finish().unwrap(), &["--html", "report.html"]);
    assert_eq!(rep["header"]["program"], PROGRAM);
    let v = dashboard_eval(&dir, "({h1: document.getElementById('title').textContent, tooltip: document.getElementById('title').title, title: document.title, text: document.body.innerText})");
    let r = &v["result"];
    let file_name = std::path::Path::new(PROGRAM)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(r["h1"], format!("memscope — {file_name}"));
    assert_eq!(r["title"], format!("memscope — {file_name}"));
    assert_eq!(r["tooltip"], PROGRAM);
    let text = r["text"].as_str().unwrap();
    let dir_part = std::path::Path::new(PROGRAM)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        !text.contains(dir_part),
        "the program's directory shows: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
