// prism dashboard: polls the admin API and draws what it answers. No
// third-party code; everything it needs is served by prism itself.
"use strict";

const HISTORY = 300; // samples kept per series (5 minutes at 1 s)
const POLL_MS = Number(new URLSearchParams(location.search).get("interval_ms")) || 1000;
let token = sessionStorage.getItem("prism-token") || "";
let prev = null;          // the previous summary, for rates
const series = {};        // app id → {conns:[], bytes:[], active:[]}
let filter = { app: "", client: "", min_age: "" };

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  const used = token;
  if (used) o.headers["Authorization"] = "Bearer " + used;
  const r = await fetch(path, o);
  // A request sent before the operator gave a token can answer 401 after
  // they did: only a refusal of the token in use asks for it again.
  if (r.status === 401) {
    if (used === token) $("tokenform").hidden = false;
    throw new Error("unauthorized");
  }
  if (!r.ok) throw new Error(path + ": " + r.status);
  if (used === token) $("tokenform").hidden = true;
  return r.json();
}

function human(n) {
  const u = ["", "k", "M", "G", "T"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : Math.round(n)) + u[i];
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
}

function dur(s) {
  if (s < 60) return s.toFixed(1) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + Math.floor(s % 60) + "s";
  return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
}

function push(arr, v) { arr.push(v); if (arr.length > HISTORY) arr.shift(); }

function spark(canvas, data, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth * dpr, h = canvas.clientHeight * dpr;
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  if (data.length < 2) return;
  const top = Math.max(1, ...data);
  g.strokeStyle = color; g.lineWidth = 1.5 * dpr; g.beginPath();
  const off = HISTORY - data.length; // newest sample at the right edge
  data.forEach((v, i) => {
    const x = ((off + i) / (HISTORY - 1)) * w, y = h - (v / top) * (h - 2 * dpr) - dpr;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

function fillTable(id, rows) {
  const tb = $(id).querySelector("tbody");
  tb.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    cells.forEach((c) => {
      if (c instanceof Node) { const td = el("td"); td.append(c); tr.append(td); }
      else tr.append(el("td", c, typeof c === "number" ? "num" : ""));
    });
    return tr;
  }));
}

function card(a, s, rates) {
  const c = el("div", undefined, "card");
  c.dataset.app = a.id;
  c.append(el("h3", a.id + " (" + a.protocol + ")"));
  c.append(el("div", (a.bound || a.listen || []).join(", ") + " → " + (a.origins || []).join(", "), "sub"));
  const st = el("div", undefined, "stats");
  const stat = (v, label, cls) => { const d = el("div", undefined, "stat"); const b = el("b", v); if (cls) b.className = cls; d.append(b, el("span", label)); st.append(d); };
  stat(rates.conns.toFixed(1), "conn/s");
  stat(bytes(rates.bytes) + "/s", "bytes/s");
  const act = el("b", a.active); act.className = "active";
  const ad = el("div", undefined, "stat"); ad.append(act, el("span", "active")); st.append(ad);
  stat(human(a.started), "sessions");
  stat(human(a.origin_errors), "origin errors", a.origin_errors ? "warn" : "");
  if (a.protocol === "udp") stat(human(a.udp_drops), "UDP drops", a.udp_drops ? "warn" : "");
  else stat(a.tls_mode, "TLS");
  c.append(st);
  for (const [name, color, label] of [["conns", "#4fb3ff", "conn/s"], ["bytes", "#3fb950", "bytes/s"], ["active", "#d29922", "active"]]) {
    c.append(el("div", label + " (last " + Math.round(HISTORY * POLL_MS / 60000) + " min)", "sub"));
    const cv = el("canvas"); c.append(cv);
    requestAnimationFrame(() => spark(cv, s[name], color));
  }
  const ot = el("table");
  ot.append(el("tr"));
  ot.firstChild.append(el("th", "origin"), el("th", "open"));
  for (const o of a.origin_state) { const tr = el("tr"); tr.append(el("td", o.origin), el("td", o.active, "num")); ot.append(tr); }
  c.append(ot);
  return c;
}

function renderSummary(s) {
  $("version").textContent = "version " + s.version;
  $("uptime").textContent = "up " + dur(s.uptime_seconds);
  $("updated").textContent = "updated " + new Date(s.time).toLocaleTimeString();
  const rd = $("ready");
  rd.textContent = s.ready ? "ready" : "not ready: " + s.not_ready;
  rd.className = "pill " + (s.ready ? "ok" : "bad");
  const dt = prev ? (new Date(s.time) - new Date(prev.time)) / 1000 : 0;
  const cards = [];
  for (const a of s.apps) {
    const ser = series[a.id] || (series[a.id] = { conns: [], bytes: [], active: [] });
    const p = prev && prev.apps.find((x) => x.id === a.id);
    const rates = { conns: 0, bytes: 0 };
    if (p && dt > 0) {
      rates.conns = Math.max(0, a.started - p.started) / dt;
      rates.bytes = Math.max(0, a.bytes_from_client + a.bytes_from_origin - p.bytes_from_client - p.bytes_from_origin) / dt;
    }
    push(ser.conns, rates.conns); push(ser.bytes, rates.bytes); push(ser.active, a.active);
    cards.push(card(a, ser, rates));
  }
  $("appcards").replaceChildren(...cards);
  fillTable("records", s.records.map((r) => [r.event, r.status, r.count]));
  fillTable("topclients", s.top_clients.map((t) => [t.key, t.sessions]));
  fillTable("topcountries", s.top_countries.map((t) => [t.key, t.sessions]));
  fillTable("topasns", s.top_asns.map((t) => [t.key, t.sessions]));
  fillTable("jobs", s.jobs.map((j) => {
    const d = j.Delivery; // remote destinations only
    let delivered = "–", lag = "–", dropped = j.Dropped;
    if (d) {
      delivered = d.Delivered;
      const oldest = new Date(d.OldestUndelivered);
      lag = oldest.getUTCFullYear() > 1970 ? dur(Math.max(0, (new Date(s.time) - oldest) / 1000)) : "0s";
      dropped += d.DroppedSpoolFull + d.DroppedMemoryFull + d.DroppedShutdown + d.DroppedCorrupt;
    }
    return [j.Job, j.Dataset, j.Emitted, j.Written, delivered, j.Queued, dropped, j.WriteErrors, lag];
  }));
  prev = s;
}

async function closeSession(id) {
  try { await api("/api/v1/sessions/" + id, { method: "DELETE" }); } catch (e) { /* gone already */ }
  refreshSessions();
}

async function refreshSessions() {
  const q = new URLSearchParams({ limit: "100" });
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  const r = await api("/api/v1/sessions?" + q);
  $("sesscount").textContent = "(" + r.matched + (r.matched > r.sessions.length ? ", first " + r.sessions.length : "") + ")";
  fillTable("sessions", r.sessions.map((x) => {
    const b = el("button", "close");
    b.addEventListener("click", () => closeSession(x.id));
    return [x.id, x.app, x.protocol, x.client, x.origin, x.country || "", x.asn || "", x.sni || "", dur(x.age_seconds), x.bytes_from_client, x.bytes_from_origin, b];
  }));
  $("sessions").querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.session = r.sessions[i].id; });
}

async function tick() {
  try {
    renderSummary(await api("/api/v1/summary"));
    await refreshSessions();
  } catch (e) {
    $("updated").textContent = "update failed: " + e.message;
  }
  setTimeout(tick, POLL_MS);
}

$("tokenform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("prism-token", token);
  $("tokenform").hidden = true;
  refreshSessions().catch(() => {});
});
$("sessfilter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  filter = { app: $("f-app").value.trim(), client: $("f-client").value.trim(), min_age: $("f-age").value.trim() };
  refreshSessions().catch(() => {});
});
tick();
