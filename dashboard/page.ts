import { FINISHED_WITH_HISTORY, STATE_ORDER } from './tracker.js';

/**
 * The dashboard page: one self-contained HTML document (inline CSS and JS, no external requests)
 * that subscribes to `/events` and draws the snapshots it receives; charts are drawn on <canvas>.
 * Elements the browser test looks at carry `data-testid`s.
 */
export function renderPage(opts: { title?: string } = {}): string {
  const title = escapeHtml(opts.title ?? 'Portal');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title} dashboard</title>
<style>${CSS}</style>
</head>
<body>
<header>
  <div class="brand"><span class="logo">◆</span> ${title}</div>
  <div class="conn" data-testid="conn-status" data-state="connecting"><span class="dot"></span><span class="conn-text">connecting</span></div>
  <div class="hstat"><label>backend</label><span class="badge backend" data-testid="header-backend">…</span></div>
  <div class="hstat"><label>host</label><span data-testid="host-kind">…</span></div>
  <div class="hstat"><label>actors active</label><span data-testid="host-active">–</span></div>
  <div class="hstat"><label>activations</label><span data-testid="host-activations">–</span></div>
  <div class="hstat"><label>calls</label><span data-testid="host-calls">–</span></div>
  <div class="hstat"><label>engine ticks</label><span data-testid="engine-ticks">–</span></div>
  <div class="spacer"></div>
  <div class="hstat"><label>updated</label><span data-testid="last-update">–</span></div>
  <a class="hlink" href="metrics" target="_blank">/metrics</a>
</header>
<div class="layout">
  <main id="transfers" data-testid="transfers">
    <div class="counts" data-testid="state-counts"></div>
    <section class="queued" data-testid="queued" hidden>
      <h2>Queued <span data-testid="queued-total"></span> <small class="muted">waiting for a running slot, oldest first</small></h2>
      <div class="qids" data-testid="queued-list"></div>
    </section>
    <div class="empty" data-testid="no-transfers">Waiting for transfers…</div>
    <div id="cards"></div>
    <div class="more muted" data-testid="more-finished" hidden></div>
  </main>
  <aside>
    <h2>Events</h2>
    <ol id="events" data-testid="event-list"></ol>
  </aside>
</div>
<script>${CLIENT.replace('__STATE_ORDER__', JSON.stringify(STATE_ORDER)).replace('__FINISHED_WITH_HISTORY__', String(FINISHED_WITH_HISTORY))}</script>
</body>
</html>`;
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

// CSS and CLIENT are ASCII, their other characters written as escapes (CSS `\21c4`, JavaScript `\u2013`): String.raw
// keeps what scripts/bundle-cli.mjs would escape as written, and the CLI's bundles are ASCII
const CSS = String.raw`
:root { --bg:#0f1419; --panel:#171d25; --panel2:#1e2630; --line:#2a3441; --text:#d7dde5; --muted:#8593a3;
  --accent:#4fa3ff; --green:#3ccf7a; --red:#ff5d5d; --amber:#f5b942; --violet:#b48cff; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
header { display:flex; align-items:center; gap:18px; padding:10px 18px; background:var(--panel); border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; flex-wrap:wrap; }
.brand { font-weight:700; font-size:16px; letter-spacing:.3px; }
.logo { color:var(--accent); }
.spacer { flex:1; }
.hstat { display:flex; flex-direction:column; }
.hstat label { color:var(--muted); font-size:10px; text-transform:uppercase; letter-spacing:.6px; }
.hstat span { font-variant-numeric:tabular-nums; }
.hlink { color:var(--accent); text-decoration:none; }
.badge { display:inline-block; padding:1px 7px; border-radius:9px; background:var(--panel2); border:1px solid var(--line); font-size:11px; white-space:nowrap; }
.badge.backend { color:var(--violet); border-color:#4b3d6b; }
.conn { display:flex; align-items:center; gap:6px; color:var(--muted); }
.dot { width:9px; height:9px; border-radius:50%; background:var(--muted); display:inline-block; flex:none; }
.conn[data-state=live] .dot { background:var(--green); box-shadow:0 0 6px var(--green); }
.conn[data-state=reconnecting] .dot { background:var(--amber); }
.layout { display:grid; grid-template-columns:minmax(0,1fr) 330px; gap:16px; padding:16px; align-items:start; }
aside { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; position:sticky; top:70px; max-height:calc(100vh - 90px); overflow:auto; }
h2 { margin:0 0 8px; font-size:12px; text-transform:uppercase; letter-spacing:.8px; color:var(--muted); }
#events { list-style:none; margin:0; padding:0; }
#events li { display:grid; grid-template-columns:62px 1fr; gap:6px; padding:5px 0; border-bottom:1px solid var(--line); }
#events .time { color:var(--muted); font-variant-numeric:tabular-nums; font-size:11px; }
#events .what { overflow-wrap:anywhere; }
#events li[data-type=failover] .what::before, #events li[data-type=timeout] .what::before { content:"\21c4\20"; color:var(--amber); }
#events li[data-type=corrupt] .what::before, #events li[data-type=transfer-failed] .what::before, #events li[data-type=poll-error] .what::before { content:"\2716\20"; color:var(--red); }
#events li[data-type=edge-offline] .what::before { content:"\25cf\20"; color:var(--red); }
#events li[data-type=edge-given-up] .what::before { content:"\25cf\20"; color:var(--red); }
#events li[data-type=edge-online] .what::before { content:"\25cf\20"; color:var(--green); }
#events li[data-type=transfer-done] .what::before { content:"\2714\20"; color:var(--green); }
#events li[data-type=transfer-started] .what::before, #events li[data-type=hedge] .what::before { content:"\25b8\20"; color:var(--accent); }
.counts { display:flex; flex-wrap:wrap; gap:8px; margin-bottom:12px; }
.counts:empty { display:none; }
.count { text-transform:uppercase; font-size:11px; letter-spacing:.6px; }
.count[data-state=running] { color:var(--accent); border-color:#2d5a8a; }
.count[data-state=done] { color:var(--green); border-color:#24623f; }
.count[data-state=failed], .count[data-state=unreachable] { color:var(--red); border-color:#7a2e2e; }
.count[data-state=queued] { color:var(--amber); border-color:#6b5320; }
.queued { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 14px; margin-bottom:16px; }
.queued h2 small { text-transform:none; letter-spacing:0; font-weight:400; }
.qids { display:flex; flex-wrap:wrap; gap:6px; max-height:120px; overflow:auto; }
.qids .badge { font-family:ui-monospace,"DejaVu Sans Mono",monospace; }
.more { padding:8px 2px 16px; }
.card.compact { display:flex; flex-wrap:wrap; align-items:center; column-gap:16px; padding:6px 16px; margin-bottom:6px; }
.card.compact .card-head { margin-bottom:0; flex:1 1 320px; }
.card.compact .progress-row { flex:1 1 300px; }
.card.compact .pct { font-size:14px; }
.card.compact .terr { flex:1 0 100%; margin-top:2px; }
.card.compact .stats, .card.compact .charts, .card.compact table.edges, .card.compact .phases { display:none; }
.toggle { margin-left:auto; background:none; border:1px solid var(--line); color:var(--muted); border-radius:6px; font:inherit; font-size:11px; padding:1px 8px; cursor:pointer; }
.terr { color:var(--red); font-size:12px; margin-top:6px; overflow-wrap:anywhere; }
.terr:empty { display:none; }
.empty { color:var(--muted); padding:40px; text-align:center; border:1px dashed var(--line); border-radius:8px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-bottom:16px; }
.card-head { display:flex; align-items:center; gap:10px; margin-bottom:10px; }
.card-head .tid { font-weight:600; font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:13px; }
.state { text-transform:uppercase; font-size:10px; letter-spacing:.6px; }
.state[data-state=running] { color:var(--accent); border-color:#2d5a8a; }
.state[data-state=done] { color:var(--green); border-color:#24623f; }
.state[data-state=failed], .state[data-state=unreachable] { color:var(--red); border-color:#7a2e2e; }
.state[data-state=queued] { color:var(--amber); border-color:#6b5320; }
.progress-row { display:flex; align-items:center; gap:12px; }
.bar { position:relative; height:10px; background:var(--panel2); border-radius:5px; overflow:hidden; flex:1; border:1px solid var(--line); }
.bar > i { position:absolute; left:0; top:0; bottom:0; background:linear-gradient(90deg,#2f7fd8,var(--accent)); border-radius:5px; transition:width .4s ease; }
.card[data-state=done] .progress-row .bar > i { background:linear-gradient(90deg,#27a35e,var(--green)); }
.pct { font-size:20px; font-weight:700; min-width:78px; text-align:right; font-variant-numeric:tabular-nums; }
.stats { display:grid; grid-template-columns:repeat(6,minmax(0,1fr)); gap:8px; margin:10px 0 0; }
.stats + .charts { margin-top:12px; }
.stat .sub { display:block; color:var(--muted); font-size:11px; }
.stat { background:var(--panel2); border-radius:6px; padding:6px 9px; }
.stat label { display:block; color:var(--muted); font-size:10px; text-transform:uppercase; letter-spacing:.6px; }
.stat span { font-size:14px; font-variant-numeric:tabular-nums; }
.stat.warn span { color:var(--amber); }
.stat.bad span { color:var(--red); }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
.chart { background:var(--panel2); border-radius:6px; padding:6px 8px 4px; }
.chart h3 { margin:0 0 2px; font-size:11px; color:var(--muted); font-weight:500; text-transform:uppercase; letter-spacing:.6px; }
.chart canvas { width:100%; height:150px; display:block; }
.phases { color:var(--muted); font-size:11px; margin-top:4px; }
table.edges { width:100%; border-collapse:collapse; margin-top:12px; }
table.edges th { text-align:left; color:var(--muted); font-weight:500; font-size:10px; text-transform:uppercase; letter-spacing:.6px; padding:4px 6px; border-bottom:1px solid var(--line); }
table.edges td { padding:5px 6px; border-bottom:1px solid var(--line); font-variant-numeric:tabular-nums; white-space:nowrap; }
table.edges tr[data-online=false] td { color:var(--muted); }
table.edges tr[data-online=false] .ename { text-decoration:line-through; }
.ename { font-family:ui-monospace,"DejaVu Sans Mono",monospace; }
.eurl { color:var(--muted); font-size:11px; }
.online-dot { margin-right:6px; vertical-align:middle; }
tr[data-online=true] .online-dot { background:var(--green); box-shadow:0 0 5px var(--green); }
tr[data-online=false] .online-dot { background:var(--red); }
.status-text[data-online=true] { color:var(--green); }
.status-text[data-online=false] { color:var(--red); font-weight:600; }
.load { display:flex; align-items:center; gap:6px; min-width:130px; }
.load .bar { height:8px; }
.load .bar > i { background:var(--accent); transition:none; }
.health .bar > i { transition:none; }
.load[data-level=full] .bar > i { background:var(--amber); }
tr[data-online=false] .load .bar > i { background:var(--muted); }
.health .bar { width:70px; flex:none; height:8px; display:inline-block; vertical-align:middle; margin-right:6px; }
.health .bar > i { background:var(--green); }
.health[data-level=mid] .bar > i { background:var(--amber); }
.health[data-level=low] .bar > i { background:var(--red); }
.flag { margin-right:4px; }
.flag.metered { color:var(--amber); border-color:#6b5320; }
.flag.battery { color:var(--red); border-color:#7a2e2e; }
.muted { color:var(--muted); }
@media (max-width: 1000px) { .stats { grid-template-columns:repeat(3,minmax(0,1fr)); } .layout { grid-template-columns:1fr; } aside { position:static; max-height:none; } .charts { grid-template-columns:1fr; } }
`;

const CLIENT = String.raw`
"use strict";
(function () {
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var cards = new Map();
  var latest = null;
  /** Finished transfers drawn as cards; the others are counted below them. */
  var MAX_FINISHED_CARDS = __FINISHED_WITH_HISTORY__;
  var ORDER = __STATE_ORDER__;

  function fmtBytes(n) {
    if (!isFinite(n)) return "\u2013";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
  }
  function fmtRate(n) { return fmtBytes(n) + "/s"; }
  function fmtMs(ms) {
    if (!isFinite(ms)) return "\u2013";
    if (ms < 1) return (ms * 1000).toFixed(0) + " \u00b5s";
    if (ms < 100) return ms.toFixed(ms < 10 ? 2 : 1) + " ms";
    return ms.toFixed(0) + " ms";
  }
  function fmtSec(s) {
    if (s === null || !isFinite(s)) return "\u2013";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    return Math.floor(s / 60) + " m " + Math.round(s % 60) + " s";
  }
  function clock(t) { var d = new Date(t); return d.toLocaleTimeString([], { hour12: false }); }
  function short(id) { return id.length > 18 ? id.slice(0, 8) + "\u2026" + id.slice(-6) : id; }
  function el(tag, cls, testid, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (testid) e.setAttribute("data-testid", testid);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function stat(label, testid) {
    var s = el("div", "stat"); s.appendChild(el("label", "", "", label));
    var v = el("span", "", testid, "\u2013"); s.appendChild(v); return { box: s, value: v };
  }
  function setText(e, t) { if (e.textContent !== t) e.textContent = t; }

  function makeCard(t) {
    var card = el("section", "card", "transfer-card");
    card.setAttribute("data-transfer-id", t.id);
    var head = el("div", "card-head");
    var tid = el("span", "tid", "transfer-id", short(t.id)); tid.title = t.id;
    var state = el("span", "badge state", "transfer-state", t.state);
    var be = el("span", "badge backend", "transfer-backend", "");
    var toggle = el("button", "toggle", "card-toggle", "details");
    toggle.type = "button";
    head.appendChild(tid); head.appendChild(state); head.appendChild(be); head.appendChild(toggle);
    var terr = el("div", "terr", "transfer-error", "");
    var prow = el("div", "progress-row");
    var bar = el("div", "bar", "transfer-progress-bar"); var fill = el("i"); bar.appendChild(fill);
    var pct = el("span", "pct", "transfer-progress", "0.0 %");
    prow.appendChild(bar); prow.appendChild(pct);
    var s = {};
    var rowsOfStats = [
      [["bytes", "transfer-bytes"], ["throughput", "transfer-throughput"], ["eta", "transfer-eta"], ["chunks done", "transfer-chunks"], ["in flight", "transfer-inflight"], ["pending", "transfer-pending"]],
      [["dispatched", "counter-dispatched"], ["failovers", "counter-failovers"], ["corrupt", "counter-corrupt"], ["timeouts", "counter-timeouts"], ["hedges", "counter-hedges"], ["tick p50 / p99", "transfer-tick"]],
    ];
    var statRows = rowsOfStats.map(function (row) {
      var box = el("div", "stats");
      row.forEach(function (x) { var st = stat(x[0], x[1]); box.appendChild(st.box); s[x[1]] = st; });
      return box;
    });
    var avg = el("small", "sub", "transfer-avg", "");
    s["transfer-throughput"].box.appendChild(avg);
    var size = el("small", "sub", "transfer-size", "");
    s["transfer-bytes"].box.appendChild(size);
    var charts = el("div", "charts");
    var c1 = el("div", "chart"); c1.appendChild(el("h3", "", "", "Throughput"));
    var thr = el("canvas", "", "throughput-chart"); c1.appendChild(thr);
    var c2 = el("div", "chart"); c2.appendChild(el("h3", "", "", "Tick time"));
    var tick = el("canvas", "", "tick-chart"); c2.appendChild(tick);
    var phases = el("div", "phases", "tick-phases", "");
    c2.appendChild(phases);
    charts.appendChild(c1); charts.appendChild(c2);
    var table = el("table", "edges", "edge-table");
    var thead = el("thead"); var hr = el("tr");
    ["edge", "status", "load (queue / max)", "health", "bandwidth", "rtt", "chunks", "flags"].forEach(function (h) { hr.appendChild(el("th", "", "", h)); });
    thead.appendChild(hr); table.appendChild(thead);
    var tbody = el("tbody"); table.appendChild(tbody);
    card.appendChild(head); card.appendChild(prow); card.appendChild(terr); statRows.forEach(function (r) { card.appendChild(r); }); card.appendChild(charts); card.appendChild(table);
    var c = { open: null, toggle: toggle, terr: terr, avg: avg, size: size, card: card, state: state, backend: be, fill: fill, pct: pct, s: s, thr: thr, tick: tick, phases: phases, tbody: tbody, rows: new Map() };
    toggle.addEventListener("click", function () {
      c.open = compactOf(c); // a compact card opens, an open one closes
      if (latest) render(latest);
    });
    cards.set(t.id, c);
    return c;
  }

  function makeRow(e) {
    var tr = el("tr", "", "edge-row");
    tr.setAttribute("data-edge-id", e.id);
    var name = el("td");
    name.appendChild(el("span", "dot online-dot"));
    name.appendChild(el("span", "ename", "edge-name", short(e.id)));
    name.title = e.id + "  " + e.url;
    var status = el("td"); var stx = el("span", "status-text", "edge-status", ""); status.appendChild(stx);
    var load = el("td"); var lw = el("div", "load", "edge-load"); var lb = el("div", "bar"); var lf = el("i"); lb.appendChild(lf);
    var lt = el("span", "", "edge-load-text", ""); lw.appendChild(lb); lw.appendChild(lt); load.appendChild(lw);
    var health = el("td", "health", "edge-health"); var hb = el("span", "bar"); var hf = el("i"); hb.appendChild(hf);
    var ht = el("span", "", "edge-health-text", ""); health.appendChild(hb); health.appendChild(ht);
    var bw = el("td", "", "edge-bandwidth"); var rtt = el("td", "", "edge-rtt"); var ch = el("td", "", "edge-chunks");
    var flags = el("td", "", "edge-flags");
    [name, status, load, health, bw, rtt, ch, flags].forEach(function (td) { tr.appendChild(td); });
    return { tr: tr, stx: stx, lw: lw, lf: lf, lt: lt, health: health, hf: hf, ht: ht, bw: bw, rtt: rtt, ch: ch, flags: flags, flagKey: "" };
  }

  function updateRow(r, e) {
    var on = e.online ? "true" : "false";
    if (r.tr.getAttribute("data-online") !== on) r.tr.setAttribute("data-online", on);
    r.stx.setAttribute("data-online", on);
    setText(r.stx, e.givenUp ? "given up" : e.online ? "online" : "offline");
    var why = e.reason || "";
    if (r.stx.title !== why) r.stx.title = why;
    var load = Math.max(0, Math.min(1, e.load));
    r.lf.style.width = (load * 100).toFixed(1) + "%";
    r.lw.setAttribute("data-level", e.load >= 1 ? "full" : e.load >= 0.75 ? "high" : "ok");
    setText(r.lt, e.queueDepth + " / " + e.maxParallel);
    var h = Math.max(0, Math.min(1, e.health));
    r.hf.style.width = (h * 100).toFixed(1) + "%";
    r.health.setAttribute("data-level", h >= 0.7 ? "ok" : h >= 0.4 ? "mid" : "low");
    r.health.setAttribute("data-value", String(e.health));
    setText(r.ht, h.toFixed(2));
    setText(r.bw, e.bandwidth > 0 ? fmtRate(e.bandwidth) : "\u2013");
    setText(r.rtt, e.rtt > 0 ? fmtMs(e.rtt) : "\u2013");
    setText(r.ch, String(e.chunks));
    var key = (e.metered ? "m" : "") + (e.batteryLow ? "b" : "");
    if (key !== r.flagKey || !r.flags.firstChild) {
      r.flagKey = key;
      r.flags.textContent = "";
      if (e.metered) r.flags.appendChild(el("span", "badge flag metered", "edge-flag-metered", "METERED"));
      if (e.batteryLow) r.flags.appendChild(el("span", "badge flag battery", "edge-flag-battery", "BATTERY LOW"));
      if (!key) r.flags.appendChild(el("span", "muted", "", "\u2014"));
    }
  }

  function finished(state) { return state === "done" || state === "failed" || state === "cancelled"; }
  /** Finished transfers show one line (id, state, progress, error) until opened; the others all of it until closed. */
  function compactOf(c) { return c.open === null ? finished(c.card.getAttribute("data-state")) : !c.open; }

  function updateCard(c, t) {
    c.card.setAttribute("data-state", t.state);
    var compact = compactOf(c);
    c.card.classList.toggle("compact", compact);
    setText(c.toggle, compact ? "details" : "less");
    setText(c.terr, t.error && t.state !== "running" ? t.error : "");
    c.state.setAttribute("data-state", t.state);
    setText(c.state, t.polled ? t.state : t.state + " (not polled)");
    setText(c.backend, t.backend || "\u2013");
    c.fill.style.width = (t.progress * 100).toFixed(2) + "%";
    c.pct.setAttribute("data-value", String(t.progress));
    setText(c.pct, (t.progress * 100).toFixed(1) + " %");
    if (compact) return;
    var s = c.s, k = t.counters || {};
    setText(s["transfer-bytes"].value, fmtBytes(t.bytesDone));
    setText(c.size, "of " + fmtBytes(t.fileSize));
    s["transfer-bytes"].value.setAttribute("data-value", String(t.bytesDone));
    setText(s["transfer-throughput"].value, fmtRate(t.throughput));
    setText(c.avg, "avg " + fmtRate(t.avgThroughput));
    setText(s["transfer-eta"].value, t.state === "done" ? "done" : fmtSec(t.etaSec));
    setText(s["transfer-chunks"].value, t.complete + " / " + t.total);
    setText(s["transfer-inflight"].value, String(t.inFlight));
    setText(s["transfer-pending"].value, String(t.pending));
    ["dispatched", "failovers", "corrupt", "timeouts", "hedges"].forEach(function (n) {
      var st = s["counter-" + n]; var v = k[n] || 0;
      setText(st.value, String(v)); st.value.setAttribute("data-value", String(v));
      st.box.className = "stat" + (v > 0 && (n === "failovers" || n === "timeouts") ? " warn" : v > 0 && n === "corrupt" ? " bad" : "");
    });
    setText(s["transfer-tick"].value, fmtMs(t.tickMsP50) + " / " + fmtMs(t.tickMsP99));
    if (t.lastTickMs) {
      setText(c.phases, "last tick: " + Object.keys(t.lastTickMs).map(function (p) { return p + " " + fmtMs(t.lastTickMs[p]); }).join(" \u00b7 "));
    } else setText(c.phases, "");
    var seen = new Set();
    t.edges.forEach(function (e, i) {
      var r = c.rows.get(e.id);
      if (!r) { r = makeRow(e); c.rows.set(e.id, r); }
      if (c.tbody.children[i] !== r.tr) c.tbody.insertBefore(r.tr, c.tbody.children[i] || null);
      updateRow(r, e); seen.add(e.id);
    });
    c.rows.forEach(function (r, id) { if (!seen.has(id)) { r.tr.remove(); c.rows.delete(id); } });
    var h = t.history;
    drawChart(c.thr, h.t, [{ values: h.throughput, color: "#4fa3ff", label: "bytes/s", fill: true }], fmtRate);
    var series = [{ values: h.tickP50, color: "#3ccf7a", label: "p50" }, { values: h.tickP99, color: "#f5b942", label: "p99" }];
    if (h.tickLast.some(function (v) { return v !== null; })) series.push({ values: h.tickLast, color: "#b48cff", label: "last" });
    drawChart(c.tick, h.t, series, fmtMs);
  }

  function drawChart(cv, ts, series, fmt) {
    var dpr = window.devicePixelRatio || 1;
    var w = cv.clientWidth || 300, hgt = cv.clientHeight || 150;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(hgt * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(hgt * dpr); }
    var g = cv.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    var padL = 64, padR = 8, padT = 16, padB = 18;
    var pw = w - padL - padR, ph = hgt - padT - padB;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && isFinite(v) && v > max) max = v; }); });
    max = niceMax(max);
    var t1 = ts.length ? ts[ts.length - 1] : Date.now();
    var span = Math.max(10000, ts.length ? t1 - ts[0] : 10000);
    var t0 = t1 - span;
    g.font = "10px system-ui, sans-serif";
    g.strokeStyle = "#2a3441"; g.fillStyle = "#8593a3"; g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    for (var i = 0; i <= 4; i++) {
      var y = padT + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(padL, Math.round(y) + 0.5); g.lineTo(padL + pw, Math.round(y) + 0.5); g.stroke();
      g.fillText(max > 0 ? fmt((max * i) / 4) : (i === 0 ? fmt(0) : ""), padL - 6, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    for (var j = 0; j <= 4; j++) {
      var sec = (span / 1000) * (1 - j / 4);
      g.fillText(j === 4 ? "now" : "-" + sec.toFixed(0) + "s", padL + (pw * j) / 4, padT + ph + 4);
    }
    var X = function (t) { return padL + ((t - t0) / span) * pw; };
    var Y = function (v) { return padT + ph - (max > 0 ? (v / max) * ph : 0); };
    series.forEach(function (s) {
      var pts = [];
      for (var k = 0; k < ts.length; k++) { var v = s.values[k]; if (v !== null && isFinite(v)) pts.push([X(ts[k]), Y(v)]); }
      if (!pts.length) return;
      if (s.fill) {
        var grad = g.createLinearGradient(0, padT, 0, padT + ph);
        grad.addColorStop(0, s.color + "66"); grad.addColorStop(1, s.color + "08");
        g.fillStyle = grad; g.beginPath(); g.moveTo(pts[0][0], padT + ph);
        pts.forEach(function (p) { g.lineTo(p[0], p[1]); });
        g.lineTo(pts[pts.length - 1][0], padT + ph); g.closePath(); g.fill();
      }
      g.strokeStyle = s.color; g.lineWidth = 1.6; g.lineJoin = "round"; g.beginPath();
      pts.forEach(function (p, n) { if (n) g.lineTo(p[0], p[1]); else g.moveTo(p[0], p[1]); });
      g.stroke();
    });
    g.textAlign = "right"; g.textBaseline = "top";
    var lx = padL + pw;
    for (var m = series.length - 1; m >= 0; m--) {
      var s = series[m]; var last = null;
      for (var q = s.values.length - 1; q >= 0; q--) if (s.values[q] !== null && isFinite(s.values[q])) { last = s.values[q]; break; }
      var txt = s.label + (last !== null ? " " + fmt(last) : "");
      g.fillStyle = s.color; g.fillText(txt, lx, 2);
      lx -= g.measureText(txt).width + 14;
    }
  }
  function niceMax(v) {
    if (!(v > 0)) return 0;
    var p = Math.pow(10, Math.floor(Math.log10(v))); var n = v / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
  }

  /** An event's line; every one names its transfer (many run at once). */
  function describe(e) {
    var t = "transfer " + short(e.transfer);
    switch (e.type) {
      case "transfer-started": return t + " started";
      case "transfer-done": return t + " done in " + fmtSec(e.seconds) + (e.verified ? " (sha256 verified)" : "");
      case "transfer-failed": return t + " failed: " + e.error;
      case "failover": return t + ": " + e.count + " chunk failover" + (e.count > 1 ? "s" : "") + " (" + e.total + " total)";
      case "corrupt": return t + ": " + e.count + " corrupt chunk" + (e.count > 1 ? "s" : "") + " rejected (" + e.total + " total)";
      case "timeout": return t + ": " + e.count + " chunk timeout" + (e.count > 1 ? "s" : "") + " (" + e.total + " total)";
      case "hedge": return t + ": " + e.count + " endgame hedge" + (e.count > 1 ? "s" : "");
      case "edge-offline": return t + ": edge " + short(e.edge) + " went offline";
      case "edge-online": return t + ": edge " + short(e.edge) + " is online";
      case "edge-given-up": return t + ": edge " + short(e.edge) + " given up: " + e.reason;
      case "poll-error": return "status of " + t + " failed: " + e.message;
      default: return t + ": " + e.type;
    }
  }
  var lastEventSeq = 0;
  function renderEvents(evs) {
    var ol = $("#events");
    var fresh = evs.filter(function (e) { return e.seq > lastEventSeq; });
    fresh.forEach(function (e) {
      var li = el("li", "", "event-item"); li.setAttribute("data-type", e.type);
      li.setAttribute("data-transfer", e.transfer || ""); li.title = e.transfer || "";
      li.appendChild(el("span", "time", "", clock(e.at)));
      li.appendChild(el("span", "what", "", describe(e)));
      ol.insertBefore(li, ol.firstChild);
      lastEventSeq = e.seq;
    });
    while (ol.children.length > 200) ol.removeChild(ol.lastChild);
  }

  function render(snap) {
    latest = snap;
    setText($("[data-testid=header-backend]"), snap.backend);
    setText($("[data-testid=host-kind]"), snap.host.kind);
    var st = snap.host.stats;
    setText($("[data-testid=host-active]"), st ? String(st.active) : "\u2013");
    setText($("[data-testid=host-activations]"), st ? String(st.activations) : "\u2013");
    setText($("[data-testid=host-calls]"), st ? String(st.calls) : "\u2013");
    setText($("[data-testid=engine-ticks]"), snap.engine && typeof snap.engine.ticks === "number" ? String(snap.engine.ticks) : "\u2013");
    var lu = $("[data-testid=last-update]"); setText(lu, clock(snap.at)); lu.setAttribute("data-seq", String(snap.seq));
    var queued = snap.queued || { total: 0, ids: [] };
    var counts = snap.counts || {};
    $("[data-testid=no-transfers]").style.display = snap.transfers.length || queued.total ? "none" : "";
    renderCounts(counts);
    renderQueued(queued);
    // in the snapshot's order (running first, finished last); at most MAX_FINISHED_CARDS finished ones, the rest counted
    var box = $("#cards");
    var seen = new Set(), shown = 0, finishedShown = 0, hidden = {};
    snap.transfers.forEach(function (t) {
      if (finished(t.state) && finishedShown >= MAX_FINISHED_CARDS) { hidden[t.state] = (hidden[t.state] || 0) + 1; return; }
      if (finished(t.state)) finishedShown++;
      var c = cards.get(t.id) || makeCard(t);
      if (box.children[shown] !== c.card) box.insertBefore(c.card, box.children[shown] || null);
      shown++;
      updateCard(c, t); seen.add(t.id);
    });
    cards.forEach(function (c, id) { if (!seen.has(id)) { c.card.remove(); cards.delete(id); } });
    var more = $("[data-testid=more-finished]");
    var hiddenStates = Object.keys(hidden);
    more.hidden = hiddenStates.length === 0;
    var n = 0; hiddenStates.forEach(function (k) { n += hidden[k]; });
    more.setAttribute("data-value", String(n));
    setText(more, hiddenStates.length ? n + " more finished transfer" + (n > 1 ? "s" : "") + " not shown (" +
      hiddenStates.map(function (k) { return k + " " + hidden[k]; }).join(", ") + "): GET api/state lists every one" : "");
    renderEvents(snap.events);
  }

  function renderCounts(counts) {
    var box = $("[data-testid=state-counts]");
    var states = ORDER.filter(function (k) { return counts[k] > 0; });
    Object.keys(counts).forEach(function (k) { if (ORDER.indexOf(k) < 0 && counts[k] > 0) states.push(k); });
    var key = states.map(function (k) { return k + counts[k]; }).join(" ");
    if (box.getAttribute("data-key") === key) return;
    box.setAttribute("data-key", key);
    box.textContent = "";
    states.forEach(function (k) {
      var b = el("span", "badge count", "count-" + k, k + " " + counts[k]);
      b.setAttribute("data-state", k); b.setAttribute("data-value", String(counts[k]));
      box.appendChild(b);
    });
  }
  function renderQueued(q) {
    var sec = $("[data-testid=queued]");
    sec.hidden = q.total === 0;
    setText($("[data-testid=queued-total]"), "(" + q.total + ")");
    var list = $("[data-testid=queued-list]");
    var key = q.total + " " + q.ids.join("\u0000");
    if (list.getAttribute("data-key") === key) return;
    list.setAttribute("data-key", key);
    list.textContent = "";
    q.ids.forEach(function (id) {
      var b = el("span", "badge", "queued-id", short(id)); b.title = id; b.setAttribute("data-transfer-id", id);
      list.appendChild(b);
    });
    if (q.total > q.ids.length) list.appendChild(el("span", "muted", "queued-more", "and " + (q.total - q.ids.length) + " more"));
  }

  function setConn(state) {
    var c = $("[data-testid=conn-status]");
    c.setAttribute("data-state", state);
    setText($(".conn-text", c), state);
  }
  function connect() {
    var es = new EventSource("events");
    es.onopen = function () { setConn("live"); };
    es.onmessage = function (m) {
      setConn("live");
      try { render(JSON.parse(m.data)); } catch (err) { console.error("dashboard: bad snapshot", err); }
    };
    es.onerror = function () { setConn(es.readyState === 2 ? "closed" : "reconnecting"); if (es.readyState === 2) setTimeout(connect, 2000); };
  }
  window.addEventListener("resize", function () { if (latest) render(latest); });
  connect();
})();
`;
