// Poros dashboard: all data from the hub's own JSON API, refreshed every 10 s; no external assets.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const headers = { Authorization: "Bearer " + token };
let report = null, sortKey = "delivery_rate", sortAsc = true;
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v));
const pct = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " %");
const duration = (s) => (s === null || s === undefined ? "–" : s < 3600 ? Math.round(s / 60) + " min" : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d");

function today() { return new Date().toISOString().slice(0, 10); }
function query() {
  const p = new URLSearchParams();
  if ($("from").value) p.set("from", $("from").value);
  if ($("to").value) p.set("to", $("to").value);
  return p.toString();
}

async function getJson(path) {
  const r = await fetch(path, { headers });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  return r.json();
}

async function load() {
  try {
    const q = query();
    report = await getJson("/api/v1/stats?" + q);
    const trend = await getJson("/api/v1/trend?" + q);
    $("error").hidden = true;
    render();
    drawTrend(trend);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    $("csv").href = "/api/v1/stats?" + q + "&format=csv&token=" + encodeURIComponent(token);
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = "Cannot load figures: " + e.message;
  }
}

function render() {
  const n = report.national;
  $("n-delivery").textContent = pct(n.delivery_rate);
  $("n-delivery-sub").textContent = `${n.delivered} of ${n.due} deliveries with a verified receipt; ${n.pending} pending, ${n.rejected} rejected, ${n.expired} expired`;
  $("n-ontime").textContent = pct(n.on_time_rate);
  $("n-ontime-sub").textContent = `${n.on_time} on time, ${n.late} late (target ${Math.round(report.on_time_secs / 60)} min), ${n.overdue} overdue`;
  $("n-electronic").textContent = pct(n.electronic_rate);
  $("n-electronic-sub").textContent = `paper-only reported: ${n.paper_sent} sent, ${n.paper_received} received`;
  $("n-registered").textContent = pct(n.registered_in_time_rate);
  $("n-registered-sub").textContent = `${n.registered_in_time} of ${n.business_delivered} delivered documents registered within ${report.registration_working_days} working day(s); median delivery to completed ${duration(n.median_completion_secs)}`;
  $("n-outstanding").textContent = String(n.outstanding);
  $("n-outstanding-sub").textContent = "not completed, by days since delivery: " + Object.entries(n.outstanding_by_age || {}).map(([k, v]) => `${k.replaceAll("_", " ")}: ${v}`).join(", ");
  $("n-connected").textContent = `${n.connected}/${n.registered}`;
  $("n-connected-sub").textContent = `${pct(n.connected_rate)} of registered agencies connected in the period; ${n.connected_now} online now`;
  $("n-sent").textContent = String(n.sent);
  $("n-sent-sub").textContent = `${report.from} – ${report.to}`;
  const sel = $("group"), cur = sel.value;
  const groups = [...new Set(report.agencies.map((a) => a.group))].sort();
  sel.innerHTML = '<option value="">all</option>' + groups.map((g) => `<option value="${g}">${g}</option>`).join("");
  sel.value = groups.includes(cur) ? cur : "";
  $("alert-note").textContent = `highlighted: below ${report.alert_below_percent} % delivery or electronic exchange`;
  renderTable();
}

function renderTable() {
  const g = $("group").value, s = $("search").value.trim().toLowerCase();
  let rows = report.agencies.filter((a) => (!g || a.group === g) && (!s || a.scope.toLowerCase().includes(s) || (a.name || "").toLowerCase().includes(s)));
  rows.sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
    return sortAsc ? c : -c;
  });
  const lim = report.alert_below_percent;
  const low = (v) => v !== null && v !== undefined && v < lim;
  $("agencies").querySelector("tbody").innerHTML = rows.map((a) => `
    <tr class="${low(a.delivery_rate) || low(a.electronic_rate) ? "alert" : ""}" data-agency="${a.scope}">
      <td>${a.scope}</td><td>${escapeHtml(a.name || "")}</td><td>${a.state}</td>
      <td class="num">${a.sent}</td><td class="num">${a.due}</td>
      <td class="num" data-k="delivery_rate">${pct(a.delivery_rate)}</td><td class="num">${pct(a.on_time_rate)}</td>
      <td class="num">${a.rejected}</td><td class="num">${a.pending}</td><td class="num">${a.overdue}</td>
      <td class="num" data-k="electronic_rate">${pct(a.electronic_rate)}</td>
      <td class="num" data-k="registered_in_time_rate">${pct(a.registered_in_time_rate)}</td>
      <td class="num" data-k="median_completion_secs">${duration(a.median_completion_secs)}</td>
      <td class="num" data-k="outstanding" title="${Object.entries(a.outstanding_by_age || {}).map(([k, v]) => `${k}: ${v}`).join(", ")}">${a.outstanding}</td>
      <td>${a.connected ? "●" : "○"}</td>
    </tr>`).join("");
  document.querySelectorAll("th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.k === sortKey);
    th.classList.toggle("asc", th.dataset.k === sortKey && sortAsc);
  });
}

function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

function drawTrend(points) {
  const svg = $("trend"), W = 900, H = 180, P = 24;
  const xs = (i) => P + (i * (W - 2 * P)) / Math.max(1, points.length - 1);
  const ys = (v) => H - P - (v / 100) * (H - 2 * P);
  let out = "";
  for (const v of [0, 50, 100]) out += `<line x1="${P}" x2="${W - P}" y1="${ys(v)}" y2="${ys(v)}" stroke="#e3e7ec"/><text x="2" y="${ys(v) + 4}" font-size="10" fill="#7a8796">${v}</text>`;
  const pts = points.map((p, i) => (p.delivery_rate === null ? null : `${xs(i)},${ys(p.delivery_rate)}`)).filter(Boolean);
  if (pts.length) out += `<polyline fill="none" stroke="#1f6fc5" stroke-width="2" points="${pts.join(" ")}"/>`;
  points.forEach((p, i) => { if (p.delivery_rate !== null) out += `<circle cx="${xs(i)}" cy="${ys(p.delivery_rate)}" r="2.5" fill="#1f6fc5"><title>${p.day}: ${p.delivery_rate} % (${p.delivered}/${p.due})</title></circle>`; });
  out += `<text x="${P}" y="${H - 4}" font-size="10" fill="#7a8796">${points[0] ? points[0].day : ""}</text><text x="${W - P - 60}" y="${H - 4}" font-size="10" fill="#7a8796">${points.length ? points[points.length - 1].day : ""}</text>`;
  svg.innerHTML = out;
}

document.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
  if (sortKey === th.dataset.k) sortAsc = !sortAsc; else { sortKey = th.dataset.k; sortAsc = true; }
  renderTable();
}));
$("group").addEventListener("change", renderTable);
$("search").addEventListener("input", renderTable);
$("apply").addEventListener("click", load);
$("to").value = today();
$("from").value = today().slice(0, 8) + "01";
load();
setInterval(load, 10000);
