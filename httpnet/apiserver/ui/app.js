// dtc's admin page: read-only, drawn from the JSON API (/v1/stats, /v1/transactions).
// No framework, no build step, nothing fetched from elsewhere. Text from the API is
// only ever put in the page as text (textContent), never as markup.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "dtc-token";

// api fetches a path of the API as JSON, with the token the operator entered (if any)
// as a bearer token: harmless when the API asks for none.
async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch(path, { headers, cache: "no-store" });
  let body = null;
  try { body = JSON.parse(await resp.text(), exactInts); } catch (e) { body = null; }
  if (!resp.ok) {
    const err = new Error(body && body.error ? `${resp.status} ${body.error.code}: ${body.error.message}` : `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// exactInts keeps a priority (an int64) as the digits the API sent: a JavaScript number
// holds integers exactly only up to 2^53, and priorities are larger. It needs the
// reviver's source text (Chromium 114, Firefox 135); without it the number is rounded.
function exactInts(key, value, context) {
  return key === "priority" && context && typeof context.source === "string" ? context.source : value;
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = err.status === 401 || err.status === 403
    ? `${err.message} — enter the API token above`
    : String(err.message || err);
}

const fmtInt = (n) => (n === undefined || n === null) ? "–" : Number(n).toLocaleString("en-US");
function fmtDur(seconds) {
  if (!isFinite(seconds)) return "–";
  if (seconds < 0.001) return (seconds * 1e6).toFixed(0) + " µs";
  if (seconds < 1) return (seconds * 1e3).toFixed(seconds < 0.01 ? 2 : 1) + " ms";
  return seconds.toFixed(2) + " s";
}
// fmtTime writes an API time as "2006-01-02 15:04:05.000" (UTC, milliseconds).
const fmtTime = (iso) => iso ? new Date(iso).toISOString().replace("T", " ").replace("Z", "") : "";
function offsetMs(iso, from) {
  const d = Date.parse(iso) - Date.parse(from);
  return (d >= 0 ? "+" : "") + d.toLocaleString("en-US") + " ms";
}

// ---------------------------------------------------------------- router

let timer = null;
let generation = 0; // bumped on every navigation: late answers of an old view are dropped

function route() {
  generation++;
  if (timer) { clearTimeout(timer); timer = null; }
  showError(null);
  $("partial").hidden = true;
  const hash = location.hash || "#/";
  for (const v of ["overview", "list", "txn"]) $("view-" + v).hidden = true;
  if (hash.startsWith("#/txn/")) {
    $("view-txn").hidden = false;
    const id = decodeURIComponent(hash.slice("#/txn/".length));
    loop((gen) => renderTxn(id, gen));
  } else if (hash.startsWith("#/list")) {
    $("view-list").hidden = false;
    const q = new URLSearchParams(hash.slice("#/list".length).replace(/^\?/, ""));
    $("list-state").value = q.get("state") || "";
    $("list-text").value = q.get("q") || "";
    const after = q.get("after") || "";
    loop((gen) => renderList(gen, after));
  } else {
    $("view-overview").hidden = false;
    loop(renderOverview);
  }
}

// loop runs render now and again every POLL_MS, until the view changes. render
// returns false to stop (a transaction that is over).
function loop(render) {
  const gen = generation;
  const tick = async () => {
    let again = true;
    try {
      again = (await render(gen)) !== false;
      if (gen === generation) showError(null);
    } catch (err) {
      if (gen === generation) showError(err);
    }
    if (gen === generation && again) timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

// ---------------------------------------------------------------- header

function renderNode(stats) {
  const c = stats.cluster;
  $("node").textContent = (c ? "node " + c.node_id + " of cluster " + c.name + " · " : "") +
    (stats.node.url || location.host) + " · up since " + fmtTime(stats.node.started_at);
  const r = $("ready");
  r.textContent = stats.ready ? "ready" : "recovering";
  r.className = "badge " + (stats.ready ? "ready" : "notready");
  renderCluster(c);
}

// renderCluster shows the cluster's nodes (cluster mode only), each linking to its own
// admin page: the counts on this page are this node's, the lists the whole cluster's.
function renderCluster(c) {
  $("cluster").hidden = !c;
  if (!c) return;
  $("cluster-name").textContent = c.name;
  $("cluster-scope").textContent = `the counts and charts below are node ${c.node_id}'s own (its ${c.owned.length} of ${c.shards} shards); ` +
    "the transaction lists cover the whole cluster";
  const shards = (l) => l.length ? l.join(", ") : "none";
  $("table-cluster").tBodies[0].replaceChildren(...c.nodes.map((n) => el("tr", { "data-node": n.id, class: n.id === c.node_id ? "self" : "" },
    el("td", {}, el("code", {}, n.id)),
    el("td", {}, n.id === c.node_id ? "this page" : el("a", { href: n.addr.replace(/\/$/, "") + "/ui/" }, n.addr + "/ui/")),
    el("td", {}, shards(n.shards)),
    el("td", {}, n.lease_left_seconds === undefined ? "?" : n.lease_left_seconds + " s"),
    el("td", {}, fmtTime(n.started_at)))));
  $("cluster-note").textContent = (c.unowned.length ? `shards with no owner right now: ${shards(c.unowned)}. ` : "") + (c.error || "");
}

// showPartial warns when a listing could not ask part of the cluster.
function showPartial(...pages) {
  const missing = pages.flatMap((p) => p.unreachable || []);
  const box = $("partial");
  box.hidden = missing.length === 0;
  box.textContent = missing.length ? "incomplete listing: " + [...new Set(missing.map((u) =>
    (u.node ? "node " + u.node : "unowned") + " (shards " + u.shards.join(", ") + "): " + u.error))].join("; ") : "";
}

// ---------------------------------------------------------------- overview

const CAUSES = ["nack", "conflict", "timeout", "error", "deadlock", "wound", "client", "recovery"];
const abortedTotal = (a) => CAUSES.reduce((sum, c) => sum + (a[c] || 0), 0);

async function renderOverview(gen) {
  const [stats, inflight, indoubt, heuristic] = await Promise.all([
    api("/v1/stats"),
    api("/v1/transactions?state=preparing&limit=50"),
    api("/v1/transactions?state=in-doubt&limit=50"),
    api("/v1/transactions?state=heuristic&limit=50"),
  ]);
  if (gen !== generation) return;
  renderNode(stats);
  showPartial(inflight, indoubt, heuristic);
  const t = stats.totals;
  $("count-begun").textContent = fmtInt(t.begun);
  $("count-committed").textContent = fmtInt(t.committed);
  $("count-aborted").textContent = fmtInt(abortedTotal(t.aborted));
  for (const c of CAUSES) $("count-aborted-" + c).textContent = fmtInt(t.aborted[c]);
  $("count-hazards").textContent = fmtInt(t.heuristic_hazards);
  $("count-inflight").textContent = stats.gauges ? fmtInt(stats.gauges.inflight) : "?";
  $("count-in-doubt").textContent = stats.gauges ? fmtInt(stats.gauges.in_doubt) : "?";

  // Rates: over the last 10 samples (seconds), from the server's ring.
  const s = stats.samples;
  const rate = (f) => {
    if (s.length < 2) return "";
    const a = s[Math.max(0, s.length - 11)], b = s[s.length - 1];
    const dt = (Date.parse(b.at) - Date.parse(a.at)) / 1000;
    return dt > 0 ? ((f(b.totals) - f(a.totals)) / dt).toFixed(1) + " /s" : "";
  };
  $("rate-begun").textContent = rate((x) => x.begun);
  $("rate-committed").textContent = rate((x) => x.committed);
  $("rate-aborted").textContent = rate((x) => abortedTotal(x.aborted));

  drawThroughput(stats);
  drawLatency(stats.latency);
  fillTable($("table-inflight"), inflight.transactions, "nothing is collecting votes");
  fillTable($("table-indoubt"), indoubt.transactions, "nothing in doubt");
  fillTable($("table-heuristic"), heuristic.transactions, "no heuristic hazards");
}

function drawThroughput(stats) {
  const svg = $("chart-throughput");
  svg.replaceChildren();
  const s = stats.samples, W = 600, H = 180, pad = 18;
  const pts = [];
  for (let i = 1; i < s.length; i++) {
    const dt = (Date.parse(s[i].at) - Date.parse(s[i - 1].at)) / 1000;
    if (dt <= 0) continue;
    pts.push({
      at: Date.parse(s[i].at),
      committed: (s[i].totals.committed - s[i - 1].totals.committed) / dt,
      aborted: (abortedTotal(s[i].totals.aborted) - abortedTotal(s[i - 1].totals.aborted)) / dt,
    });
  }
  const span = s.length > 1 ? (Date.parse(s[s.length - 1].at) - Date.parse(s[0].at)) / 1000 : 0;
  $("window").textContent = span >= 60 ? (span / 60).toFixed(1) + " min" : Math.round(span) + " s";
  const top = Math.max(1, ...pts.map((p) => Math.max(p.committed, p.aborted)));
  for (const f of [0, 0.5, 1]) {
    const y = pad + (H - 2 * pad) * (1 - f);
    svg.append(svgEl("line", { x1: 0, x2: W, y1: y, y2: y, class: "grid" }));
    const label = svgEl("text", { x: 2, y: y - 3 });
    label.textContent = (top * f).toFixed(top * f < 10 ? 1 : 0);
    svg.append(label);
  }
  if (pts.length < 2) return;
  const t0 = pts[0].at, t1 = pts[pts.length - 1].at;
  const x = (at) => ((at - t0) / Math.max(1, t1 - t0)) * W;
  const y = (v) => pad + (H - 2 * pad) * (1 - v / top);
  for (const k of ["committed", "aborted"]) {
    const d = pts.map((p, i) => (i ? "L" : "M") + x(p.at).toFixed(1) + " " + y(p[k]).toFixed(1)).join(" ");
    svg.append(svgEl("path", { d, class: k }));
  }
}

function drawLatency(l) {
  const svg = $("chart-latency");
  svg.replaceChildren();
  $("latency-count").textContent = fmtInt(l.count);
  $("latency-mean").textContent = l.count ? fmtDur(l.sum_seconds / l.count) : "–";
  // The buckets from the first to the last that holds anything (at least 8 wide).
  const b = l.buckets.concat([{ le_seconds: Infinity, count: l.over }]);
  let lo = b.findIndex((x) => x.count > 0), hi = b.length - 1 - [...b].reverse().findIndex((x) => x.count > 0);
  if (lo < 0) { lo = 0; hi = 7; }
  while (hi - lo < 7 && hi < b.length - 1) hi++;
  while (hi - lo < 7 && lo > 0) lo--;
  const shown = b.slice(lo, hi + 1), W = 600, H = 180, pad = 14;
  const top = Math.max(1, ...shown.map((x) => x.count));
  const bw = W / shown.length;
  shown.forEach((x, i) => {
    const h = (H - 2 * pad) * (x.count / top);
    const r = svgEl("rect", { x: i * bw + 2, y: H - pad - h, width: bw - 4, height: Math.max(h, x.count ? 1 : 0), class: "bar" });
    const tip = svgEl("title");
    tip.textContent = `≤ ${fmtDur(x.le_seconds)}: ${x.count}`;
    r.append(tip);
    svg.append(r);
    if (x.count) {
      const n = svgEl("text", { x: i * bw + bw / 2 - 8, y: H - pad - h - 3 });
      n.textContent = fmtInt(x.count);
      svg.append(n);
    }
  });
  const axis = $("latency-axis");
  axis.replaceChildren(...shown.map((x) => el("span", {}, isFinite(x.le_seconds) ? "≤" + fmtDur(x.le_seconds) : "more")));
}

function fillTable(table, txns, emptyText) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!txns.length) {
    body.append(el("tr", { class: "empty" }, el("td", { colspan: 5 }, emptyText)));
    return;
  }
  for (const v of txns) {
    const parts = (v.participants || []).map((p) => {
      const s = p.url + (p.vote ? " " + p.vote : "") + (p.hazard ? " HAZARD" : p.phase2_error ? " (phase 2: " + p.phase2_error + ")" : "");
      return el("div", {}, el("code", {}, s));
    });
    body.append(el("tr", { "data-id": v.id },
      el("td", {}, el("a", { href: "#/txn/" + encodeURIComponent(v.id) }, el("code", {}, v.id))),
      el("td", {}, el("span", { class: "badge " + v.state }, v.state), v.phase2_done ? "" : " …"),
      el("td", {}, ...parts),
      el("td", {}, fmtTime(v.began_at)),
      el("td", {}, v.reason || "")));
  }
}

// ---------------------------------------------------------------- list

let listNext = ""; // cursor of the next page, for the "more" button

async function renderList(gen, after) {
  const state = $("list-state").value, text = $("list-text").value.trim().toLowerCase();
  const q = new URLSearchParams({ limit: "200" });
  if (state) q.set("state", state);
  if (after) q.set("after", after);
  const page = await api("/v1/transactions?" + q);
  if (gen !== generation) return;
  showPartial(page);
  const match = (v) => !text || v.id.toLowerCase().includes(text) ||
    (v.participants || []).some((p) => p.url.toLowerCase().includes(text));
  const shown = page.transactions.filter(match);
  fillTable($("table-list"), shown, "no transaction matches");
  listNext = page.next || "";
  $("list-more").hidden = !listNext;
  $("list-note").textContent = `${shown.length} shown of ${page.transactions.length} on this page` +
    (after ? ` (ids after ${after})` : "") + (listNext ? " · more exist" : "");
}

function listFilterChanged(after) {
  const q = new URLSearchParams();
  if (typeof after === "string" && after) q.set("after", after);
  if ($("list-state").value) q.set("state", $("list-state").value);
  if ($("list-text").value.trim()) q.set("q", $("list-text").value.trim());
  const h = "#/list" + (q.toString() ? "?" + q : "");
  if (location.hash !== h) location.hash = h; else route();
}

// ---------------------------------------------------------------- one transaction

async function renderTxn(id, gen) {
  const v = await api("/v1/transactions/" + encodeURIComponent(id));
  if (gen !== generation) return false;
  $("txn-id").textContent = v.id;
  $("txn-wire").textContent = v.txn_id;
  const st = $("txn-state");
  st.textContent = v.state + (v.phase2_done ? "" : v.state === "committed" || v.state === "aborted" ? " · phase 2 in progress" : "");
  st.className = "badge " + v.state;
  $("txn-flags").textContent = (v.recovered ? " · recovered after a restart" : "") + (v.heuristic_hazard ? " · HEURISTIC HAZARD" : "");
  $("txn-reason").textContent = v.reason || "";
  $("txn-cause").textContent = v.abort_cause ? "abort cause: " + v.abort_cause : "";
  $("txn-priority").textContent = v.priority ? (v.abort_cause ? " · " : "") + "priority: " + v.priority + " (smaller is older)" : "";

  const events = [{ at: v.began_at, kind: "begin", cls: "", what: "begun", why: `prepare sent to ${(v.participants || []).length} participant(s)` }];
  const decision = v.state === "committed" ? "commit" : "rollback";
  (v.participants || []).forEach((p, i) => {
    if (p.voted_at) events.push({ at: p.voted_at, kind: "vote", cls: p.vote === "ACK" ? "ok" : "bad",
      what: `#${i + 1} voted ${p.vote}`, why: p.url + (p.reason ? " — " + p.reason : "") });
    if (p.answered_at) events.push({ at: p.answered_at, kind: p.hazard ? "hazard" : "ack", cls: p.hazard ? "bad" : "ok",
      what: p.hazard ? `#${i + 1} contradicted the decision` : `#${i + 1} acknowledged ${decision}`,
      why: p.url + (p.hazard ? " — " + p.hazard : "") + (p.phase2_requests ? ` (after ${p.phase2_requests} request${p.phase2_requests > 1 ? "s" : ""})` : "") });
  });
  if (v.decided_at) events.push({ at: v.decided_at, kind: "decision", cls: v.state === "committed" ? "ok" : "bad",
    what: `decision ${v.state === "committed" ? "COMMIT" : "ABORT"} durable`, why: v.reason || "" });
  if (v.ended_at) events.push({ at: v.ended_at, kind: "end", cls: "ok", what: "ended", why: "every participant answered phase 2" });
  events.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || order(a.kind) - order(b.kind));
  (v.participants || []).forEach((p, i) => {
    if (v.decided_at && !p.acked && !p.hazard) events.push({ kind: "pending", cls: "pending",
      what: `#${i + 1} has not acknowledged ${decision} yet`,
      why: p.url + ` — ${p.phase2_requests || 0} request(s)` + (p.phase2_error ? ", last: " + p.phase2_error : "") });
    if (!v.decided_at && !p.vote) events.push({ kind: "pending", cls: "pending", what: `#${i + 1} has not voted yet`, why: p.url });
  });
  $("timeline").replaceChildren(...events.map((e) => el("li", { class: e.cls, "data-kind": e.kind },
    el("span", { class: "when" }, e.at ? fmtTime(e.at) + " (" + offsetMs(e.at, v.began_at) + ")" : "now"),
    el("span", { class: "what" }, e.what), e.why ? el("span", { class: "why" }, " · " + e.why) : null)));

  const body = $("table-parts").tBodies[0];
  body.replaceChildren(...(v.participants || []).map((p, i) => el("tr", {},
    el("td", {}, i + 1), el("td", {}, el("code", {}, p.url)), el("td", {}, p.vote || (v.decided_at ? "none (decided without it)" : "…")), el("td", {}, p.reason || ""),
    el("td", {}, p.voted_at ? offsetMs(p.voted_at, v.began_at) : ""),
    el("td", {}, p.hazard ? "HAZARD: " + p.hazard : p.acked ? "acknowledged" : v.decided_at ? "pending" + (p.phase2_error ? ": " + p.phase2_error : "") : ""),
    el("td", {}, p.answered_at ? offsetMs(p.answered_at, v.began_at) : ""))));
  return !v.phase2_done; // a finished transaction does not change: stop polling
}

function order(kind) {
  return { begin: 0, vote: 1, decision: 2, ack: 3, hazard: 3, end: 4 }[kind] ?? 5;
}

// ---------------------------------------------------------------- start

function start() {
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  $("list-form").addEventListener("submit", (e) => { e.preventDefault(); listFilterChanged(); });
  $("list-state").addEventListener("change", () => listFilterChanged());
  $("list-text").addEventListener("input", () => listFilterChanged());
  $("list-more").addEventListener("click", () => listFilterChanged(listNext));
  window.addEventListener("hashchange", route);
  route();
}

start();
