// Loads a page in headless Chromium through the DevTools protocol and reports
// what happened, as JSON on stdout: uncaught exceptions, console errors,
// network requests other than the page itself (and what the driver serves),
// JavaScript dialogs (alert…),
// and the value of an expression evaluated once the page is ready.
//
// No npm dependency: the protocol runs over `--remote-debugging-pipe`
// (Chromium reads NUL-terminated JSON messages on fd 3 and writes on fd 4),
// which any Node from 16 on can drive.
//
// usage: node cdp.mjs CONFIG.json
// CONFIG: {"chromium": "/usr/bin/chromium", "url": "file:///…",
//          "files": {"selector": "input[type=file]", "paths": ["…"]},   (optional)
//          "ready": "JS expression, truthy when done",                    (optional)
//          "eval": "JS expression whose JSON value is reported",          (optional)
//          "screenshot": "out.png", "full_page": true, "timeout_ms": 180000,
//          "width": 1280, "height": 900,  (viewport; full_page grows the height to the page's, 4000 at most)
//          "serve": {"/": "DIR", "/trace/": "DIR2"}}                      (optional)
// With "serve", the driver serves those directories over HTTP on 127.0.0.1
// (a free port) and a "url" starting with "/" is resolved against it: pages
// that need http:// (web workers, WebAssembly: the Perfetto UI) load from it.
// Host names other than 127.0.0.1 never resolve, so no test reaches out.
//
// Pages see the same locale (en-US) and time zone (UTC) whatever the machine's
// LANG and TZ: dh_view.html formats numbers with the browser's default locale.
// The timeout only ends a run that hangs (a page whose "ready" never holds):
// Chromium starting on a loaded two-core machine can take tens of seconds, so
// it is minutes, and the report says which stage did not finish.
import { spawn } from "node:child_process";
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const timeout = cfg.timeout_ms || 180000;
const width = cfg.width || 1280;
const height = cfg.height || 900;

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png", ".woff2": "font/woff2" };
let server = null;
if (cfg.serve) {
  // Longest prefix first, so "/trace/" wins over "/".
  const roots = Object.entries(cfg.serve).sort((a, b) => b[0].length - a[0].length);
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://127.0.0.1").pathname);
    const hit = roots.find(([prefix]) => path.startsWith(prefix));
    let file = hit && join(hit[1], normalize("/" + path.slice(hit[0].length)));
    try { if (file && statSync(file).isDirectory()) file = join(file, "index.html"); statSync(file); } catch (_) { file = null; }
    if (!file) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  if (cfg.url.startsWith("/")) cfg.url = `http://127.0.0.1:${server.address().port}${cfg.url}`;
}

const profile = mkdtempSync(join(tmpdir(), "memscope-chromium-"));
const chrome = spawn(cfg.chromium || "/usr/bin/chromium", [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage", "--allow-file-access-from-files",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  `--user-data-dir=${profile}`, "--remote-debugging-pipe", "about:blank",
  "--lang=en-US",
], {
  stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
  // Its own home too: Chromium keeps state there (~/.pki, caches) that two
  // tests running at once must not share, and HOME may be unset.
  env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile,
    LANG: "en_US.UTF-8", LANGUAGE: "en_US", LC_ALL: "en_US.UTF-8", TZ: "UTC" },
});

const out = { exceptions: [], console_errors: [], requests: [], dialogs: [], result: null, timed_out: false, stage: "starting chromium" };
const stage = (what) => { out.stage = what; };
let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  try { chrome.kill("SIGKILL"); } catch (_) {}
  if (server) server.close();
  try { rmSync(profile, { recursive: true, force: true }); } catch (_) {}
  // Exit only once stdout has taken everything: on a pipe, process.exit
  // right after write() cuts the output at 64 KiB.
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(code));
}
setTimeout(() => {
  out.timed_out = true;
  out.exceptions.push(`driver: timed out after ${timeout} ms while ${out.stage}`);
  finish(2);
}, timeout).unref();

let stderr = "";
chrome.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
chrome.on("exit", (c) => { if (!finished) { out.exceptions.push("driver: chromium exited " + c + ": " + stderr); finish(1); } });
const toChrome = chrome.stdio[3];
const fromChrome = chrome.stdio[4];
let nextId = 1;
const pending = new Map();
const waiters = [];
let inbuf = Buffer.alloc(0);
fromChrome.on("data", (chunk) => {
  inbuf = Buffer.concat([inbuf, chunk]);
  let z;
  while ((z = inbuf.indexOf(0)) >= 0) {
    const text = inbuf.subarray(0, z).toString("utf8");
    inbuf = inbuf.subarray(z + 1);
    onMessage(JSON.parse(text));
  }
});
function onMessage(msg) {
  if (msg.id && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    return;
  }
  onEvent(msg.method, msg.params || {}, msg.sessionId);
  for (const w of waiters.slice()) if (w.method === msg.method) { waiters.splice(waiters.indexOf(w), 1); w.resolve(msg.params); }
}
function send(method, params, sessionId) {
  const id = nextId++;
  toChrome.write(JSON.stringify({ id, method, params: params || {}, sessionId }) + "\0");
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
const waitFor = (method) => new Promise((resolve) => waiters.push({ method, resolve }));

let session;
function onEvent(method, p) {
  if (method === "Runtime.exceptionThrown") {
    const e = p.exceptionDetails;
    out.exceptions.push((e.exception && e.exception.description) || e.text);
  } else if (method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert")) {
    out.console_errors.push(p.args.map((a) => a.value ?? a.description).join(" "));
  } else if (method === "Log.entryAdded" && p.entry.level === "error") {
    out.console_errors.push(p.entry.text + (p.entry.url ? " (" + p.entry.url + ")" : ""));
  } else if (method === "Network.requestWillBeSent") {
    const u = p.request.url;
    if (u !== cfg.url && !u.startsWith("data:") && !(server && u.startsWith(`http://127.0.0.1:${server.address().port}/`))) out.requests.push(u);
  } else if (method === "Page.javascriptDialogOpening") {
    out.dialogs.push(p.type + ": " + p.message);
    send("Page.handleJavaScriptDialog", { accept: true }, session).catch(() => {});
  }
}

try {
  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  stage("setting up the page");
  ({ sessionId: session } = await send("Target.attachToTarget", { targetId, flatten: true }));
  for (const d of ["Page", "Runtime", "Network", "Log", "DOM"]) await send(d + ".enable", {}, session);
  await send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false }, session);
  await send("Emulation.setLocaleOverride", { locale: "en-US" }, session);
  await send("Emulation.setTimezoneOverride", { timezoneId: "UTC" }, session);
  stage("loading " + cfg.url);
  const loaded = waitFor("Page.loadEventFired");
  await send("Page.navigate", { url: cfg.url }, session);
  await loaded;
  if (cfg.files) {
    stage("giving the page its files");
    const { root } = await send("DOM.getDocument", {}, session);
    const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector: cfg.files.selector }, session);
    await send("DOM.setFileInputFiles", { nodeId, files: cfg.files.paths }, session);
  }
  const evaluate = async (expr) => {
    const r = await send("Runtime.evaluate", { expression: expr, returnByValue: true, awaitPromise: true }, session);
    if (r.exceptionDetails) throw new Error("evaluating " + expr + ": " + ((r.exceptionDetails.exception && r.exceptionDetails.exception.description) || r.exceptionDetails.text));
    return r.result.value;
  };
  if (cfg.ready) {
    stage("waiting for the page to be ready: " + cfg.ready);
    while (!(await evaluate(cfg.ready))) await new Promise((r) => setTimeout(r, 100));
  }
  // Let late errors and requests arrive.
  await new Promise((r) => setTimeout(r, 300));
  stage("evaluating");
  if (cfg.eval) out.result = await evaluate(cfg.eval);
  if (cfg.screenshot) {
    stage("taking the screenshot");
    const h = cfg.full_page === false ? height : await evaluate("Math.min(4000, document.documentElement.scrollHeight)");
    await send("Emulation.setDeviceMetricsOverride", { width, height: h || height, deviceScaleFactor: 1, mobile: false }, session);
    const { data } = await send("Page.captureScreenshot", { format: "png" }, session);
    writeFileSync(cfg.screenshot, Buffer.from(data, "base64"));
  }
  stage("done");
  finish(0);
} catch (e) {
  out.exceptions.push("driver: " + e.message);
  finish(1);
}
