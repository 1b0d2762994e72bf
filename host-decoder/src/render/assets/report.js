// memscope report: draws the dashboard from the JSON embedded in the page.
// Every string from the trace goes into the page through textContent or an
// attribute set by setAttribute, never through innerHTML.
"use strict";
(function () {
  const started = performance.now();
  const D = JSON.parse(document.getElementById("memscope-data").textContent);
  const R = D.report;
  const SVG = "http://www.w3.org/2000/svg";
  const app = document.getElementById("app");

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    if (n < 1024) return n + " B";
    let v = n, i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + " " + u[i];
  }
  // 1234567 → "1,234,567" (toLocaleString is ten times slower, which shows
  // when a 5000-row table redraws).
  const num = (n) => Number.isInteger(Number(n)) ? String(n).replace(/\B(?=(\d{3})+$)/g, ",") : Number(n).toLocaleString("en-US");
  function section(title, wide) {
    const s = el("section", wide ? { class: "wide" } : {}, el("h2", { text: title }));
    main.append(s);
    return s;
  }
  const inferredBadge = () => el("span", { class: "inferred", title: "inferred by memscope, not recorded in the trace", text: "inferred" });

  // A sortable, filterable table. cols: [{k: title, n: numeric, f: row => value, show: row => text}]
  function table(parent, cols, rows, opts) {
    opts = opts || {};
    const wrap = el("div", { class: "scroll" });
    const ctl = el("div", { class: "controls" });
    let filter = "";
    let sortCol = cols.findIndex((c) => c.sort) >= 0 ? cols.findIndex((c) => c.sort) : -1;
    let asc = false;
    const info = el("span", { class: "note" });
    if (opts.filter !== false) {
      const inp = el("input", { type: "search", placeholder: "filter…", "aria-label": "filter" });
      inp.addEventListener("input", () => { filter = inp.value.toLowerCase(); draw(); });
      ctl.append(inp);
    }
    ctl.append(info);
    const t = el("table");
    const head = el("tr");
    cols.forEach((c, i) => {
      const th = el("th", { class: c.n ? "n" : "", text: c.k });
      th.addEventListener("click", () => { if (sortCol === i) asc = !asc; else { sortCol = i; asc = !c.n; } draw(); });
      head.append(th);
    });
    t.append(el("thead", {}, head));
    const body = el("tbody");
    t.append(body);
    wrap.append(t);
    parent.append(ctl, wrap);
    const limit = opts.limit || 300;
    // Each row's searchable text (its text columns, and what opts.search
    // adds: a site's whole stack), built once: typing in the filter box then
    // only scans strings (the 10^5-site page has 5000 rows).
    const textCols = cols.filter((c) => !c.n);
    const hay = new Map();
    const hayOf = (r) => {
      let h = hay.get(r);
      if (h == null) {
        h = textCols.map((c) => String(c.show ? c.show(r) : c.f(r))).join("\u0001").toLowerCase() + (opts.search ? "\u0001" + opts.search(r).toLowerCase() : "");
        hay.set(r, h);
      }
      return h;
    };
    function draw() {
      [...head.children].forEach((th, i) => { th.classList.toggle("sorted", i === sortCol); th.classList.toggle("asc", i === sortCol && asc); });
      let rs = rows;
      if (filter) rs = rs.filter((r) => hayOf(r).includes(filter));
      if (sortCol >= 0) {
        const f = cols[sortCol].f;
        rs = rs.slice().sort((a, b) => { const x = f(a), y = f(b); const o = x < y ? -1 : x > y ? 1 : 0; return asc ? o : -o; });
      }
      body.replaceChildren();
      for (const r of rs.slice(0, limit)) {
        const tr = el("tr", opts.expand ? { class: "site" } : {});
        for (const c of cols) {
          const td = el("td", { class: c.n ? "n" : "loc" });
          if (c.cell) c.cell(td, r); else td.textContent = c.show ? c.show(r) : c.f(r);
          tr.append(td);
        }
        body.append(tr);
        if (opts.expand) {
          let open = null;
          tr.addEventListener("click", () => {
            if (open) { open.remove(); open = null; return; }
            open = el("tr", {}, el("td", { colspan: cols.length }, opts.expand(r)));
            tr.after(open);
          });
        }
      }
      info.textContent = (rs.length > limit ? "showing " + limit + " of " : "") + num(rs.length) + " rows" + (opts.note ? " · " + opts.note : "");
    }
    draw();
  }

  // Header.
  // The title names the program by its file name: a recorded program's full
  // path says where it was built (a home or build directory), which a page
  // that gets shared or screenshotted need not show; it stays one hover away.
  const h = R.header;
  const fullName = h && h.program ? h.program : R.input.name;
  const shortName = fullName.split(/[\\/]/).filter((p) => p !== "").pop() || fullName;
  document.title = "memscope — " + shortName;
  app.append(el("header", {},
    el("h1", { id: "title", title: fullName, text: "memscope — " + shortName }),
    el("div", { class: "sub", text: [R.input.name, h ? h.target : "no header", "session " + R.session + " of " + R.sessions, R.tool.name + " " + R.tool.version].join(" · ") })));
  if (R.sessions > 1) app.append(el("div", { class: "sessions", id: "sessions-note", text: "This trace holds " + R.sessions + " sessions (the target was reset); this page shows session " + R.session + ", from byte " + num(R.session_offset) + ". memscope-decode --session N --html … draws another." }));
  const main = el("main");
  app.append(main);

  // Summary.
  const S = R.summary;
  const sum = section("Summary", true);
  const cards = el("div", { class: "cards" });
  function card(key, label, value, text, cls) {
    cards.append(el("div", { class: "card", id: "card-" + key }, el("div", { class: "v " + (cls || ""), "data-value": String(value), text: text }), el("div", { class: "k", text: label })));
  }
  card("peak-bytes", "peak (exact)", S.peak_bytes, bytes(S.peak_bytes));
  card("peak-blocks", "blocks at the peak", S.peak_blocks, num(S.peak_blocks));
  card("leaked-bytes", "leaked (live at end)", S.leaked_bytes, bytes(S.leaked_bytes), S.leaked_bytes ? "bad" : "ok");
  card("leaked-blocks", "blocks leaked", S.leaked_blocks, num(S.leaked_blocks));
  card("allocations", "allocations", S.allocations, num(S.allocations));
  card("bytes-allocated", "bytes allocated", S.bytes_allocated, bytes(S.bytes_allocated));
  card("errors", "heap errors", S.errors, num(S.errors), S.errors ? "bad" : "ok");
  card("threads", "threads", S.threads, num(S.threads));
  card("lost-events", "events lost", S.lost_events, num(S.lost_events), S.lost_events ? "bad" : "");
  sum.append(cards);
  sum.append(el("p", { class: S.complete ? "ok" : "bad", id: "completeness", text: S.complete ? "Complete: every stream ended with totals matching what was decoded." : "Incomplete: " + S.incomplete_reasons.join("; ") }));

  // Timeline: the session's live bytes (band: least to most in each bucket,
  // line: where each bucket ended) and one line per thread (the most bytes
  // the thread held in each bucket), each series switchable.
  const TL = R.timeline;
  const tls = section("Memory over time", true);
  if (!TL || !TL.buckets.length) tls.append(el("p", { class: "note", text: "No heap event." }));
  else {
    const fmtx = (x) => TL.axis === "ticks" ? (x / TL.ticks_per_second).toPrecision(4) + " s" : num(Math.round(x)) + " ev";
    const threadName = (stream) => { const t = R.threads.find((t) => t.stream === stream); return t && t.name ? t.name : "stream " + stream; };
    const PALETTE = ["#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#364fc7", "#a61e4d", "#495057"];
    // Every series on the session's x axis (offsets from TL.start): [x0, x1, value] steps.
    const series = [{ key: "total", name: "all threads", color: "var(--acc)", on: true, band: true,
      steps: TL.buckets.map((b, i) => [i * TL.bucket_width, (i + 1) * TL.bucket_width, b.last, b.min, b.max]) }];
    const TT = (R.thread_timelines && R.thread_timelines.threads) || [];
    TT.forEach((th, k) => {
      const off = th.start - TL.start;
      const steps = th.buckets.map((b, i) => [off + i * th.bucket_width, off + (i + 1) * th.bucket_width, b.max]);
      series.push({ key: "stream-" + th.stream, stream: th.stream, name: threadName(th.stream), color: PALETTE[k % PALETTE.length],
        on: k < 8, steps, max: Math.max(0, ...th.buckets.map((b) => b.max)) });
    });
    const ctl = el("div", { class: "controls" });
    const reset = el("button", { text: "reset zoom" });
    ctl.append(reset, el("span", { class: "note", text: "drag across the chart to zoom · x axis: " + (TL.axis === "ticks" ? "seconds from the first event" : "event number (the trace has no clock)") + " · band: least to most live bytes in each of " + TL.buckets.length + " buckets" + (TT.length ? " · thread lines: the most bytes each thread held in each bucket (its allocations still live)" : "") }));
    tls.append(ctl);
    const legend = el("div", { class: "controls legend", id: "timeline-legend" });
    for (const se of series) {
      const box = el("input", { type: "checkbox", id: "tl-" + se.key, "data-series": se.key });
      box.checked = se.on;
      box.addEventListener("change", () => { se.on = box.checked; drawTL(); });
      const lab = el("label", { for: "tl-" + se.key }, el("span", { class: "swatch" }), se.name + (se.max != null ? " (most " + bytes(se.max) + ")" : ""));
      lab.firstChild.style.background = se.color;
      if (se.max != null) lab.setAttribute("data-max", String(se.max));
      legend.append(el("span", {}, box, lab));
    }
    if (TT.length > 8) legend.append(el("span", { class: "note", text: "the first 8 threads are drawn; tick others to add them" }));
    if (R.thread_timelines && R.thread_timelines.streams_not_followed) legend.append(el("span", { class: "note", text: "threads past the first 64 streams are not followed" }));
    if (TL.axis !== "ticks" && R.threads.length) legend.append(el("span", { class: "note", text: "per-thread lines need a clock: this trace has none" }));
    if (series.length > 1 || R.threads.length) tls.append(legend);
    const W = 1000, H = 220, L = 70, B = 24;
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, id: "timeline", role: "img" });
    const readout = el("div", { class: "note", id: "timeline-readout", text: "\u00a0" });
    tls.append(svg, readout);
    const full = [0, TL.buckets.length * TL.bucket_width];
    let view = full.slice();
    function drawTL() {
      svg.replaceChildren();
      const [x0, x1] = view;
      const shown = series.filter((se) => se.on);
      const vis = (st) => st[1] > x0 && st[0] < x1;
      let ymax = 1;
      for (const se of shown) for (const st of se.steps) if (vis(st)) ymax = Math.max(ymax, se.band ? st[4] : st[2]);
      const X = (x) => L + (Math.min(Math.max(x, x0), x1) - x0) / Math.max(1, x1 - x0) * (W - L - 10);
      const Y = (y) => 8 + (1 - y / ymax) * (H - B - 8);
      for (let k = 0; k <= 4; k++) {
        const y = ymax * k / 4;
        svg.append(sv("line", { x1: L, x2: W - 10, y1: Y(y), y2: Y(y), stroke: "#eee" }), sv("text", { x: L - 4, y: Y(y) + 4, "text-anchor": "end", "font-size": 11 }, bytes(Math.round(y))));
        const x = x0 + (x1 - x0) * k / 4;
        svg.append(sv("text", { x: X(x), y: H - 6, "text-anchor": "middle", "font-size": 11 }, fmtx(x)));
      }
      for (const se of shown) {
        let band = "", line = "", first = true;
        for (const st of se.steps) {
          if (!vis(st)) continue;
          const xa = X(st[0]), xb = X(st[1]);
          if (se.band) band += `M${xa},${Y(st[4])}H${xb}V${Y(st[3])}H${xa}Z`;
          line += (first ? "M" : "L") + `${xa},${Y(st[2])}H${xb}`;
          first = false;
        }
        if (band) svg.append(sv("path", { d: band, fill: "var(--band)", "data-band": se.key }));
        const path = sv("path", { d: line || "M0,0", fill: "none", stroke: se.color, "stroke-width": se.band ? 1.5 : 1.2, "data-series": se.key });
        path.append(sv("title", {}, se.name));
        svg.append(path);
      }
      // The exact peak of the session, whichever series are shown.
      if (TL.peak_offset != null && TL.peak_offset >= x0 && TL.peak_offset <= x1) {
        const px = X(TL.peak_offset);
        svg.append(sv("line", { class: "chart-peak", x1: px, x2: px, y1: 8, y2: H - B, id: "peak-marker" }));
        svg.append(sv("text", { x: px + 4, y: 18, "font-size": 11, fill: "var(--warn)" }, "peak " + bytes(S.peak_bytes)));
      }
      for (const m of R.marks) {
        const mx = TL.axis === "ticks" ? m.ts - TL.start : null;
        if (mx == null || mx < x0 || mx > x1) continue;
        const g = sv("line", { x1: X(mx), x2: X(mx), y1: H - B - 6, y2: H - B, stroke: "#333" });
        g.append(sv("title", {}, m.name + ": " + bytes(m.live_bytes)));
        svg.append(g);
      }
    }
    drawTL();
    reset.addEventListener("click", () => { view = full.slice(); drawTL(); });
    let drag = null, sel = null;
    const toX = (ev) => { const r = svg.getBoundingClientRect(); return (ev.clientX - r.left) / r.width * W; };
    const invX = (px) => view[0] + (px - L) / (W - L - 10) * (view[1] - view[0]);
    svg.addEventListener("mousedown", (ev) => { drag = toX(ev); sel = sv("rect", { x: drag, y: 0, width: 0, height: H - B, fill: "rgba(47,111,222,.15)" }); svg.append(sel); });
    svg.addEventListener("mousemove", (ev) => {
      const px = toX(ev);
      if (drag != null) { sel.setAttribute("x", Math.min(px, drag)); sel.setAttribute("width", Math.abs(px - drag)); return; }
      // Readout: each shown series at the pointer.
      const x = invX(px);
      if (x < view[0] || x > view[1]) return;
      const parts = [fmtx(x)];
      for (const se of series) {
        if (!se.on) continue;
        const st = se.steps.find((st) => st[0] <= x && x < st[1]);
        if (st) parts.push(se.name + " " + bytes(st[2]) + (se.band ? " (" + bytes(st[3]) + " to " + bytes(st[4]) + " in this bucket)" : ""));
      }
      readout.textContent = parts.join(" · ");
    });
    window.addEventListener("mouseup", (ev) => {
      if (drag == null) return;
      const a = invX(Math.min(drag, toX(ev))), b = invX(Math.max(drag, toX(ev)));
      drag = null;
      if (b - a > TL.bucket_width) view = [Math.max(0, a), b];
      drawTL();
    });
  }

  // Flamegraph (icicle): callers on top, callees below; or bottom-up, the
  // allocating frames on top and their callers below (heaptrack's view).
  let T = D.tree;
  const fl = section("Flamegraph of bytes", true);
  {
    const ctl = el("div", { class: "controls" });
    let weight = "alloc";
    const labels = { alloc: "allocated (whole trace)", peak: "live at the peak", leak: "leaked (live at the end)", calls: "allocation calls" };
    const amount = (n) => weight === "calls" ? num(n) + " calls" : bytes(n);
    for (const k of ["alloc", "peak", "leak", "calls"]) {
      const r = el("input", { type: "radio", name: "flame-weight", value: k, id: "fw-" + k });
      if (k === weight) r.checked = true;
      r.addEventListener("change", () => { weight = k; focus = 0; drawFlame(); });
      ctl.append(r, el("label", { for: "fw-" + k, text: labels[k] }));
    }
    const dir = el("select", { id: "flame-direction", "aria-label": "direction" },
      el("option", { value: "top", text: "top-down (callers first)" }), el("option", { value: "bottom", text: "bottom-up (allocating frames first)" }));
    dir.addEventListener("change", () => { T = dir.value === "bottom" ? D.tree_bottom_up : D.tree; kids = kidsOf(T); focus = 0; drawFlame(); });
    ctl.append(dir);
    const resetF = el("button", { text: "reset zoom" });
    // Search, as in inferno's flamegraphs: matching frames turn magenta and
    // the note says what share of the weight runs through them.
    const find = el("input", { type: "search", placeholder: "highlight frames…", "aria-label": "highlight frames", id: "flame-search" });
    let needle = "";
    find.addEventListener("input", () => { needle = find.value.toLowerCase(); drawFlame(); });
    ctl.append(resetF, find);
    const info = el("span", { class: "note", id: "flame-info" });
    ctl.append(info);
    fl.append(ctl);
    const kidsOf = (t) => { const k = t.parent.map(() => []); for (let i = 1; i < t.parent.length; i++) k[t.parent[i]].push(i); return k; };
    let kids = kidsOf(T);
    let focus = 0;
    resetF.addEventListener("click", () => { focus = 0; drawFlame(); });
    const holder = el("div", { class: "flame" });
    fl.append(holder);
    if (!D.peak_known) fl.append(el("p", { class: "note", text: "The live set at the peak is not known per site for this trace." }));
    function drawFlame() {
      const w = T[weight];
      const W = 1000, RH = 17;
      const total = w[focus];
      const rects = [];
      let depth = 0;
      // Ancestors of the focus, full width.
      const anc = [];
      for (let n = focus; n !== 0; n = T.parent[n]) anc.unshift(n);
      if (focus !== 0) anc.unshift(0);
      anc.forEach((n, d) => rects.push([n, 0, W, d]));
      depth = anc.length ? anc.length - 1 : 0;
      const stack = [[focus, 0, W, depth]];
      if (focus === 0) rects.push([0, 0, W, 0]);
      while (stack.length) {
        const [n, x, width, d] = stack.pop();
        let cx = x;
        const ks = kids[n].filter((k) => w[k] > 0).sort((a, b) => w[b] - w[a]);
        for (const k of ks) {
          const kw = total ? w[k] / total * W : 0;
          if (kw >= 0.5) { rects.push([k, cx, kw, d + 1]); stack.push([k, cx, kw, d + 1]); }
          cx += kw;
        }
      }
      const maxd = Math.max(...rects.map((r) => r[3])) + 1;
      const svg = sv("svg", { viewBox: `0 0 ${W} ${maxd * RH}`, id: "flamegraph" });
      for (const [n, x, width, d] of rects) {
        const name = D.frames[T.name[n]];
        const g = sv("g");
        const hue = 20 + (T.name[n] * 37) % 40;
        const hit = needle && name.toLowerCase().includes(needle);
        g.append(sv("rect", { x, y: d * RH, width, height: RH - 1, fill: hit ? "#e040c0" : `hsl(${hue},85%,${n === focus ? 55 : 68}%)`, class: hit ? "match" : "" }));
        g.append(sv("title", {}, name + " — " + amount(w[n]) + (w[0] ? " (" + (100 * w[n] / w[0]).toFixed(1) + "%)" : "")));
        if (width > 40) {
          const t = sv("text", { x: x + 3, y: d * RH + 12 }, name.length > width / 6.5 ? name.slice(0, Math.max(0, Math.floor(width / 6.5) - 1)) + "…" : name);
          g.append(t);
        }
        g.addEventListener("click", () => { focus = n; drawFlame(); });
        svg.append(g);
      }
      holder.replaceChildren(svg);
      let matched = "";
      if (needle) {
        // Weight through matching frames, each counted once: a match below a match adds nothing.
        let m = 0;
        const walk = [0];
        while (walk.length) {
          const n = walk.pop();
          if (n !== 0 && D.frames[T.name[n]].toLowerCase().includes(needle)) { m += w[n]; continue; }
          for (const k of kids[n]) walk.push(k);
        }
        matched = " · matched " + amount(m) + (w[0] ? " (" + (100 * m / w[0]).toFixed(1) + "%)" : "");
        info.setAttribute("data-matched", String(m));
      } else info.removeAttribute("data-matched");
      info.textContent = amount(w[0]) + " in all · " + num(T.parent.length) + " nodes · click a frame to zoom" + matched;
    }
    drawFlame();
  }

  // Ticks → a readable time (ticks when the trace has no clock).
  const TPS = R.histograms.ticks_per_second;
  const duration = (t) => !TPS ? Math.round(t) + " ticks" : t / TPS < 1e-3 ? (t / TPS * 1e6).toPrecision(3) + " µs" : (t / TPS).toPrecision(3) + " s";

  // Call sites.
  const cs = section("Call sites", true);
  const stackView = (r) => {
    const d = el("div", { class: "stack" });
    d.textContent = r[6].map((f, i) => (i ? "  called from " : "") + D.frames[f]).join("\n");
    return d;
  };
  const loc = (r) => D.frames[r[6][0]];
  table(cs, [
    { k: "first user frame (click a row for its stack)", f: loc },
    { k: "calls", n: 1, f: (r) => r[1], show: (r) => num(r[1]) },
    { k: "bytes allocated", n: 1, f: (r) => r[2], show: (r) => bytes(r[2]), sort: 1 },
    { k: "live at peak", n: 1, f: (r) => r[3], show: (r) => bytes(r[3]) },
    { k: "leaked", n: 1, f: (r) => r[4], show: (r) => bytes(r[4]) },
    { k: "most live at once", n: 1, f: (r) => r[5], show: (r) => bytes(r[5]) },
    { k: "avg size", n: 1, f: (r) => r[1] ? r[2] / r[1] : 0, show: (r) => r[1] ? bytes(Math.round(r[2] / r[1])) : "" },
    { k: "blocks at peak", n: 1, f: (r) => r[7], show: (r) => num(r[7]) },
    { k: R.temporaries.lifetime_bound === "lower" ? "avg lifetime (freed; lower bound)" : "avg lifetime (freed)", n: 1, f: (r) => r[9] ? r[10] / r[9] : -1, show: (r) => r[9] ? duration(r[10] / r[9]) : "none freed" },
  ], D.sites, { expand: stackView, search: (r) => r[6].map((f) => D.frames[f]).join(" "), note: D.sites_total > D.sites.length ? "the " + D.sites.length + " largest of " + num(D.sites_total) + " sites" : "all " + num(D.sites_total) + " sites" });

  // Histograms.
  function histogram(title, buckets, fmt) {
    const s = section(title);
    const bs = buckets.filter((b) => b.count > 0);
    if (!bs.length) { s.append(el("p", { class: "note", text: "empty" })); return s; }
    const W = 520, H = 160, B = 34;
    const max = Math.max(...bs.map((b) => b.count));
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}` });
    const bw = W / bs.length;
    bs.forEach((b, i) => {
      const hgt = (H - B) * b.count / max;
      const g = sv("g");
      g.append(sv("rect", { x: i * bw + 1, y: H - B - hgt, width: bw - 2, height: hgt, fill: "var(--acc)" }));
      g.append(sv("title", {}, fmt(b.low) + " – " + fmt(b.high) + ": " + num(b.count)));
      svg.append(g);
      if (i % Math.ceil(bs.length / 8) === 0) svg.append(sv("text", { x: i * bw + bw / 2, y: H - B + 14, "text-anchor": "middle", "font-size": 10 }, fmt(b.low)));
    });
    s.append(svg);
    return s;
  }
  histogram("Allocation sizes", R.histograms.sizes, bytes);
  const lt = histogram("Lifetimes of freed blocks", R.histograms.lifetimes, duration);
  lt.append(el("p", { class: "note", text: R.temporaries.lifetime_bound === "lower" ? "Lifetimes are lower bounds: most frees carry the previous event's timestamp." : "Lifetimes are exact." }));

  // A site's recorded stack from the report, first user frame first.
  const siteStack = (r) => {
    const st = R.stacks[r.site];
    const d = el("div", { class: "stack" });
    d.textContent = st ? st.frames.slice(st.first_user_frame).map((f, i) => (i ? "  called from " : "") + (f.function || "0x" + f.addr.toString(16)) + (f.file ? " (" + f.file + (f.line ? ":" + f.line : "") + ")" : "")).join("\n") : "no stack recorded";
    return d;
  };

  // Live at the peak (DHAT's "at t-gmax").
  const pk = section("Live at the peak");
  pk.append(el("p", {}, el("span", { id: "peak-total", "data-value": String(R.peak.bytes), text: bytes(R.peak.bytes) }), " in " + num(R.peak.blocks) + " blocks" + (R.peak.seconds != null ? ", " + R.peak.seconds.toPrecision(4) + " s after the first allocation" : "") + " · exact (" + R.peak.method + ")"));
  table(pk, [
    { k: "site (click for its stack)", f: (r) => r.location },
    { k: "bytes", n: 1, f: (r) => r.bytes, show: (r) => bytes(r.bytes), sort: 1 },
    { k: "blocks", n: 1, f: (r) => r.count, show: (r) => num(r.count) },
  ], R.peak.sites, { expand: siteStack, note: R.peak.sites_omitted ? R.peak.sites_omitted + " more sites (--top)" : "" });

  // Leaks.
  const lk = section("Leaks (live at the end)");
  lk.append(el("p", {}, el("span", { id: "leak-total", "data-value": String(R.leaks.bytes), text: bytes(R.leaks.bytes) }), " in " + num(R.leaks.blocks) + " blocks"));
  table(lk, [
    { k: "site (click for its stack)", f: (r) => r.location },
    { k: "bytes", n: 1, f: (r) => r.bytes, show: (r) => bytes(r.bytes), sort: 1 },
    { k: "blocks", n: 1, f: (r) => r.count, show: (r) => num(r.count) },
  ], R.leaks.sites, { expand: siteStack, note: R.leaks.sites_omitted ? R.leaks.sites_omitted + " more sites (--top)" : "" });

  // Temporary allocations (heaptrack's: freed before their thread allocated anything else).
  const T2 = R.temporaries;
  const tmp = section("Temporary allocations");
  tmp.append(el("p", {}, el("span", { id: "temporaries-total", "data-value": String(T2.count), text: num(T2.count) }),
    " blocks (" + bytes(T2.bytes) + ") were freed before their thread allocated anything else" +
    (T2.short_lived != null ? "; " + num(T2.short_lived) + " lived less than " + duration(T2.short_lived_threshold_ticks) : "") +
    (T2.lifetime_bound === "lower" ? " (lifetimes are lower bounds)" : "") + "."));
  table(tmp, [
    { k: "site (click for its stack)", f: (r) => r.location },
    { k: "temporaries", n: 1, f: (r) => r.count, show: (r) => num(r.count), sort: 1 },
  ], T2.sites, { expand: siteStack });

  // Realloc growth.
  const gr = section("Realloc growth");
  table(gr, [
    { k: "first allocated at", f: (r) => r.location },
    { k: "chains", n: 1, f: (r) => r.chains, show: (r) => num(r.chains) },
    { k: "reallocs", n: 1, f: (r) => r.reallocs, show: (r) => num(r.reallocs), sort: 1 },
    { k: "longest chain", n: 1, f: (r) => r.max_chain, show: (r) => num(r.max_chain) + " (" + bytes(r.max_chain_sizes[0]) + " → " + bytes(r.max_chain_sizes[1]) + ")" },
    { k: "moved", n: 1, f: (r) => r.moved, show: (r) => num(r.moved) },
    { k: "bytes copied", n: 1, f: (r) => r.copied_bytes, show: (r) => bytes(r.copied_bytes) },
  ], R.growth, { expand: siteStack, note: "a realloc that moves copies its block: reserve capacity up front where a chain is long" });

  // Frees on another thread than the allocation's.
  const X = R.cross_thread_frees;
  const xt = section("Cross-thread frees");
  xt.append(el("p", {}, el("span", { id: "cross-thread-total", "data-value": String(X.count), text: num(X.count) }), " blocks (" + bytes(X.bytes) + ") were freed by another thread than the one that allocated them."));
  const streamName = (id) => { const t = R.threads.find((t) => t.stream === id); return t && t.name ? t.name + " (" + id + ")" : "stream " + id; };
  table(xt, [
    { k: "allocated by", f: (r) => streamName(r[0]) },
    { k: "freed by", f: (r) => streamName(r[1]) },
    { k: "blocks", n: 1, f: (r) => r[2], show: (r) => num(r[2]), sort: 1 },
    { k: "bytes", n: 1, f: (r) => r[3], show: (r) => bytes(r[3]) },
  ], X.pairs, { filter: false });

  // Breakdowns.
  const th = section("Threads");
  table(th, [
    { k: "stream", n: 1, f: (r) => r.stream },
    { k: "name", f: (r) => r.name || "" },
    { k: "allocations", n: 1, f: (r) => r.allocations, show: (r) => num(r.allocations) },
    { k: "bytes", n: 1, f: (r) => r.bytes_allocated, show: (r) => bytes(r.bytes_allocated), sort: 1 },
    { k: "frees of others'", n: 1, f: (r) => r.foreign_frees },
    { k: "leaked", n: 1, f: (r) => r.leaked_bytes, show: (r) => bytes(r.leaked_bytes) },
  ], R.threads);
  const sc = section("Scopes");
  table(sc, [
    { k: "scope", f: (r) => r.name },
    { k: "entered", n: 1, f: (r) => r.entered, show: (r) => num(r.entered) },
    { k: "allocations", n: 1, f: (r) => r.allocations, show: (r) => num(r.allocations) },
    { k: "bytes", n: 1, f: (r) => r.bytes_allocated, show: (r) => bytes(r.bytes_allocated), sort: 1 },
    { k: "leaked", n: 1, f: (r) => r.leaked_bytes, show: (r) => bytes(r.leaked_bytes) },
  ], R.scopes);
  const nm = section("Named variables");
  table(nm, [
    { k: "variable", f: (r) => r.var },
    { k: "type", f: (r) => r.type_name },
    { k: "where", f: (r) => r.file + ":" + r.line },
    { k: "size when named", n: 1, f: (r) => r.size_at_naming, show: (r) => bytes(r.size_at_naming) },
    { k: "largest", n: 1, f: (r) => r.max_size, show: (r) => bytes(r.max_size), sort: 1 },
    { k: "reallocs", n: 1, f: (r) => r.reallocs },
    { k: "freed", f: (r) => r.resolved ? (r.freed ? "yes" : "no (live at end)") : "address not live when named" },
  ], R.names);

  // Errors.
  const er = section("Heap errors");
  er.append(el("p", { id: "error-total", "data-value": String(R.errors.total), class: R.errors.total ? "bad" : "ok", text: R.errors.total ? num(R.errors.total) + " errors: " + Object.entries(R.errors.counts).map(([k, v]) => k.replace(/_/g, " ") + " " + v).join(", ") : "No heap error found." }));
  if (R.errors.unknown_frees_explained_by_loss && R.errors.counts.unknown_free) er.append(el("p", { class: "note", text: "Frees of unknown addresses are expected here: events were lost, damaged, or the trace started late." }));
  const stackOf = (id) => { const s = R.stacks[id]; return s ? s.frames.slice(s.first_user_frame).map((f) => f.function || "0x" + f.addr.toString(16)).join(" ← ") : "no stack"; };
  table(er, [
    { k: "kind", f: (r) => r.kind },
    { k: "what", f: (r) => r.message },
    { k: "stream", n: 1, f: (r) => r.stream },
  ], R.errors.examples, { expand: (r) => el("div", { class: "stack", text: "call: " + stackOf(r.stack) + (r.alloc_stack != null ? "\nallocated: " + stackOf(r.alloc_stack) : "") + (r.first_free_stack != null ? "\nfirst freed: " + stackOf(r.first_free_stack) : "") }) });

  // Heap map (firmware heaps announce their region).
  if (R.fragmentation.length) {
    const hm = section("Heap map", true);
    for (const f of R.fragmentation) {
      hm.append(el("div", { text: "at the " + f.at + ": region 0x" + f.start.toString(16) + " + " + bytes(f.len) + " · used " + bytes(f.used_bytes) + " in " + num(f.blocks) + " blocks · largest free gap " + bytes(f.largest_gap) + " · fragmentation " + (f.fragmentation * 100).toFixed(1) + "%" }));
      const bar = el("div", { class: "heapmap", "data-at": f.at });
      for (const sp of f.map) {
        const d = el("div", { title: (sp.used ? "block" : "gap") + " at +0x" + sp.offset.toString(16) + ", " + bytes(sp.len) });
        d.style.width = (100 * sp.len / f.len) + "%";
        d.style.background = sp.used ? "var(--acc)" : "#e9ecf2";
        bar.append(d);
      }
      hm.append(bar);
      if (f.map_truncated) hm.append(el("p", { class: "note", text: f.map_truncated + " more spans not drawn" }));
    }
  }

  // Inferred.
  const inf = section("Inferred", true);
  inf.append(el("p", { class: "note" }, inferredBadge(), "Everything in this section is inferred from patterns in the trace, not recorded; confidence and evidence are given."));
  if (!R.inferred.length) inf.append(el("p", { class: "note", text: "Nothing inferred." }));
  const infList = el("div");
  inf.append(infList);
  function drawInferred(all) {
    infList.replaceChildren();
    for (const x of all ? R.inferred : R.inferred.slice(0, 10)) {
      infList.append(el("div", { class: "inferred-item" }, inferredBadge(), el("strong", { text: x.claim }), el("span", { class: "note", text: " (" + x.kind + ", confidence " + Math.round(x.confidence * 100) + "%) — " + x.evidence.join("; ") + (x.suggestion ? " → " + x.suggestion : "") })));
    }
    if (!all && R.inferred.length > 10) infList.append(el("button", { text: "show all " + R.inferred.length, on: { click: () => drawInferred(true) } }));
  }
  drawInferred(false);

  // Integrity.
  const ig = section("Integrity");
  const I = R.integrity;
  ig.append(el("p", { text: num(I.damaged_spans) + " damaged spans (" + bytes(I.damaged_bytes) + "), " + num(I.record_errors) + " records not decoded, " + num(I.skipped_unsynced) + " skipped unsynced, " + num(S.lost_events) + " events lost by the producer." }));
  table(ig, [
    { k: "offset", n: 1, f: (r) => r.offset },
    { k: "bytes", n: 1, f: (r) => r.len },
    { k: "why", f: (r) => r.reason },
  ], I.damage, { filter: false });
  // Symbolization.
  const sy = section("Symbols");
  const Y = R.symbolization;
  const nStacks = Object.keys(R.stacks || {}).length;
  sy.append(el("p", { text: Y.loaded.length ? "Debug information from: " + Y.loaded.join(", ") : nStacks ? "No debug information loaded: frames are addresses." : "The trace records no call stacks: no debug information was needed." }));
  for (const w of Y.warnings) sy.append(el("p", { class: "bad symbol-warning", text: w }));

  document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - started)));
  document.body.setAttribute("data-ready", "1");
})();
