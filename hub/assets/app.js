// Poros dashboard: all data from the hub's own JSON API, refreshed every 10 s; no external assets.
// Every text comes from the translation catalogue (/dashboard/messages/{lang}.json): elements name
// their message with data-i18n, the code calls msg() with a literal ID (so the catalogue test
// sees every ID); numbers, percentages and dates are formatted with Intl for the reader's
// language, and names sort with its collation.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const headers = { Authorization: "Bearer " + token };
const $ = (id) => document.getElementById(id);
// The languages the page speaks are those its switch offers.
const SPOKEN = [...document.querySelectorAll("#lang-switch [data-lang]")].map((b) => b.dataset.lang);
const STORED_LANG = "poros-dashboard-lang";
let report = null, trend = null, updatedAt = null, sortKey = "delivery_rate", sortAsc = true;
let lang = "en", messages = {}, fmt = null;

// The message `id` with its {slots} filled from `vars` (already formatted strings).
function msg(id, vars) {
  const pattern = Object.prototype.hasOwnProperty.call(messages, id) ? messages[id] : id;
  return pattern.replace(/\{([A-Za-z0-9_-]+)\}/g, (slot, name) => (vars && name in vars ? String(vars[name]) : slot));
}

// The reader's language: the one picked with the switch, else the browser's first that Poros
// speaks, else English.
function chosenLang() {
  let stored = null;
  try { stored = localStorage.getItem(STORED_LANG); } catch (e) { /* storage disabled */ }
  if (SPOKEN.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const primary = String(tag).toLowerCase().split(/[-_]/)[0];
    if (SPOKEN.includes(primary)) return primary;
  }
  return "en";
}

function formatters(l) {
  const unit = (u, digits) => new Intl.NumberFormat(l, { style: "unit", unit: u, unitDisplay: "short", maximumFractionDigits: digits });
  const day = (o) => new Intl.DateTimeFormat(l, { ...o, timeZone: "UTC" });
  return {
    int: new Intl.NumberFormat(l, { maximumFractionDigits: 0 }),
    pct: new Intl.NumberFormat(l, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }),
    pct0: new Intl.NumberFormat(l, { style: "percent", maximumFractionDigits: 0 }),
    minutes: unit("minute", 0), hours: unit("hour", 1), days: unit("day", 1),
    date: day({ dateStyle: "medium" }), shortDate: day({ day: "numeric", month: "short" }),
    time: new Intl.DateTimeFormat(l, { timeStyle: "medium" }),
    collator: new Intl.Collator(l),
  };
}

const none = (v) => v === null || v === undefined;
const num = (v) => (none(v) ? "–" : fmt.int.format(v));
const pct = (v) => (none(v) ? "–" : fmt.pct.format(v / 100));
const duration = (s) => (none(s) ? "–" : s < 3600 ? fmt.minutes.format(Math.round(s / 60)) : s < 172800 ? fmt.hours.format(s / 3600) : fmt.days.format(s / 86400));
const utcDay = (d) => new Date(d + "T00:00:00Z");
const dayHtml = (d, f) => `<time datetime="${escapeHtml(d)}">${escapeHtml(f.format(utcDay(d)))}</time>`;

// Search ignores case and Vietnamese marks: "uy ban" finds "Ủy ban", "dai" finds "Đài".
const fold = (s) => String(s).toLowerCase().normalize("NFD").replace(/\p{M}/gu, "").replace(/đ/g, "d");

function stateName(s) {
  const names = { pending: msg("dashboard-state-pending"), active: msg("dashboard-state-active"), suspended: msg("dashboard-state-suspended"), revoked: msg("dashboard-state-revoked") };
  return names[s] || s;
}

function ageBands(byAge) {
  const names = { under_1d: msg("dashboard-age-under-1d"), "1_to_3d": msg("dashboard-age-1-to-3d"), "3_to_7d": msg("dashboard-age-3-to-7d"), "7_to_30d": msg("dashboard-age-7-to-30d"), over_30d: msg("dashboard-age-over-30d") };
  // Youngest band first (the JSON object's keys come in alphabetical order).
  const order = Object.keys(names), rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
  return Object.entries(byAge || {}).sort(([a], [b]) => rank(a) - rank(b))
    .map(([k, v]) => msg("dashboard-age-band", { band: names[k] || k, count: num(v) })).join(", ");
}

async function setLang(l, remember) {
  const r = await fetch("/dashboard/messages/" + encodeURIComponent(l) + ".json");
  if (!r.ok) throw new Error("/dashboard/messages/" + l + ".json: " + r.status);
  const data = await r.json();
  lang = l;
  messages = data.messages || {};
  fmt = formatters(l);
  if (remember) { try { localStorage.setItem(STORED_LANG, l); } catch (e) { /* storage disabled */ } }
  document.documentElement.lang = l;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = msg(el.dataset.i18n); });
  for (const b of document.querySelectorAll("#lang-switch [data-lang]")) {
    const named = (data.languages || []).find((x) => x.code === b.dataset.lang);
    b.title = named ? named.name : b.dataset.lang;
    b.setAttribute("aria-pressed", String(b.dataset.lang === l));
  }
  $("lang-switch").setAttribute("aria-label", msg("dashboard-language"));
  $("search").placeholder = msg("dashboard-search-placeholder");
  $("csv").title = msg("dashboard-csv-hint");
  $("trend").setAttribute("aria-label", msg("dashboard-trend-label"));
  document.querySelectorAll("th").forEach((th) => { th.title = msg("dashboard-sort-hint"); });
  $("csv").href = csvHref();
  if (report) render();
  if (trend) drawTrend(trend);
  showUpdated();
}

function today() { return new Date().toISOString().slice(0, 10); }
function query() {
  const p = new URLSearchParams();
  if ($("from").value) p.set("from", $("from").value);
  if ($("to").value) p.set("to", $("to").value);
  return p.toString();
}
function csvHref() { return "/api/v1/stats?" + query() + "&format=csv&lang=" + lang + "&token=" + encodeURIComponent(token); }
function showUpdated() { $("updated").textContent = updatedAt ? msg("dashboard-updated", { time: fmt.time.format(updatedAt) }) : ""; }

async function getJson(path) {
  const r = await fetch(path, { headers });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  return r.json();
}

async function load() {
  try {
    const q = query();
    report = await getJson("/api/v1/stats?" + q);
    trend = await getJson("/api/v1/trend?" + q);
    $("error").hidden = true;
    render();
    drawTrend(trend);
    updatedAt = new Date();
    showUpdated();
    $("csv").href = csvHref();
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = msg("dashboard-error", { error: e.message });
  }
}

function render() {
  const n = report.national;
  $("n-delivery").textContent = pct(n.delivery_rate);
  $("n-delivery-sub").textContent = msg("dashboard-delivery-sub", { delivered: num(n.delivered), due: num(n.due), pending: num(n.pending), rejected: num(n.rejected), expired: num(n.expired) });
  $("n-ontime").textContent = pct(n.on_time_rate);
  $("n-ontime-sub").textContent = msg("dashboard-ontime-sub", { on_time: num(n.on_time), late: num(n.late), target: duration(report.on_time_secs), overdue: num(n.overdue) });
  $("n-electronic").textContent = pct(n.electronic_rate);
  $("n-electronic-sub").textContent = msg("dashboard-electronic-sub", { sent: num(n.paper_sent), received: num(n.paper_received) });
  $("n-registered").textContent = pct(n.registered_in_time_rate);
  $("n-registered-sub").textContent = msg("dashboard-registered-sub", { registered: num(n.registered_in_time), delivered: num(n.business_delivered), days: num(report.registration_working_days), median: duration(n.median_completion_secs) });
  $("n-outstanding").textContent = num(n.outstanding);
  $("n-outstanding-sub").textContent = msg("dashboard-outstanding-sub", { bands: ageBands(n.outstanding_by_age) });
  $("n-connected").textContent = `${num(n.connected)}/${num(n.registered)}`;
  $("n-connected-sub").textContent = msg("dashboard-connected-sub", { rate: pct(n.connected_rate), now: num(n.connected_now) });
  $("n-sent").textContent = num(n.sent);
  // The range as dates for the reader, with the ISO days in the <time> elements.
  $("n-sent-sub").innerHTML = escapeHtml(msg("dashboard-range", { from: "\u0001", to: "\u0002" }))
    .replace("\u0001", dayHtml(report.from, fmt.date)).replace("\u0002", dayHtml(report.to, fmt.date));
  const sel = $("group"), cur = sel.value;
  const groups = [...new Set(report.agencies.map((a) => a.group))].sort(fmt.collator.compare);
  sel.innerHTML = `<option value="">${escapeHtml(msg("dashboard-all"))}</option>` + groups.map((g) => `<option value="${escapeHtml(g)}">${escapeHtml(g)}</option>`).join("");
  sel.value = groups.includes(cur) ? cur : "";
  $("alert-note").textContent = msg("dashboard-alert-note", { limit: fmt.pct0.format(report.alert_below_percent / 100) });
  renderTable();
}

// Text columns sort by the reader's collation ("Đài" after "Dân" and "Ủy" among the U's in
// Vietnamese, not after "Z" as code-unit order would put them); numbers by value; missing last.
function compare(a, b) {
  let x = a[sortKey], y = b[sortKey];
  if (sortKey === "state") { x = stateName(x); y = stateName(y); }
  if (none(x) || none(y)) return none(x) === none(y) ? 0 : none(x) ? 1 : -1;
  if (typeof x === "string" || typeof y === "string") return fmt.collator.compare(String(x), String(y));
  return x === y ? 0 : x < y ? -1 : 1;
}

function renderTable() {
  const g = $("group").value, s = fold($("search").value.trim());
  let rows = report.agencies.filter((a) => (!g || a.group === g) && (!s || fold(a.scope).includes(s) || fold(a.name || "").includes(s)));
  rows.sort((a, b) => (sortAsc ? compare(a, b) : compare(b, a)));
  const lim = report.alert_below_percent;
  const low = (v) => !none(v) && v < lim;
  $("agencies").querySelector("tbody").innerHTML = rows.map((a) => `
    <tr class="${low(a.delivery_rate) || low(a.electronic_rate) ? "alert" : ""}" data-agency="${escapeHtml(a.scope)}">
      <td data-k="scope">${escapeHtml(a.scope)}</td><td data-k="name">${escapeHtml(a.name || "")}</td><td data-k="state">${escapeHtml(stateName(a.state))}</td>
      <td class="num">${num(a.sent)}</td><td class="num">${num(a.due)}</td>
      <td class="num" data-k="delivery_rate">${pct(a.delivery_rate)}</td><td class="num">${pct(a.on_time_rate)}</td>
      <td class="num">${num(a.rejected)}</td><td class="num">${num(a.pending)}</td><td class="num">${num(a.overdue)}</td>
      <td class="num" data-k="electronic_rate">${pct(a.electronic_rate)}</td>
      <td class="num" data-k="registered_in_time_rate">${pct(a.registered_in_time_rate)}</td>
      <td class="num" data-k="median_completion_secs">${duration(a.median_completion_secs)}</td>
      <td class="num" data-k="outstanding" title="${escapeHtml(ageBands(a.outstanding_by_age))}">${num(a.outstanding)}</td>
      <td data-k="connected" title="${escapeHtml(a.connected ? msg("dashboard-online-yes") : msg("dashboard-online-no"))}">${a.connected ? "●" : "○"}</td>
    </tr>`).join("");
  document.querySelectorAll("th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.k === sortKey);
    th.classList.toggle("asc", th.dataset.k === sortKey && sortAsc);
  });
}

function escapeHtml(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

function drawTrend(points) {
  const svg = $("trend"), W = 900, H = 180, P = 24;
  const xs = (i) => P + (i * (W - 2 * P)) / Math.max(1, points.length - 1);
  const ys = (v) => H - P - (v / 100) * (H - 2 * P);
  const label = (p) => msg("dashboard-trend-point", { day: fmt.shortDate.format(utcDay(p.day)), rate: pct(p.delivery_rate), delivered: num(p.delivered), due: num(p.due) });
  let out = "";
  for (const v of [0, 50, 100]) out += `<line x1="${P}" x2="${W - P}" y1="${ys(v)}" y2="${ys(v)}" stroke="#e3e7ec"/><text x="2" y="${ys(v) + 4}" font-size="10" fill="#7a8796">${fmt.pct0.format(v / 100)}</text>`;
  const pts = points.map((p, i) => (p.delivery_rate === null ? null : `${xs(i)},${ys(p.delivery_rate)}`)).filter(Boolean);
  if (pts.length) out += `<polyline fill="none" stroke="#1f6fc5" stroke-width="2" points="${pts.join(" ")}"/>`;
  points.forEach((p, i) => { if (p.delivery_rate !== null) out += `<circle cx="${xs(i)}" cy="${ys(p.delivery_rate)}" r="2.5" fill="#1f6fc5"><title>${escapeHtml(label(p))}</title></circle>`; });
  const first = points[0], last = points[points.length - 1];
  out += `<text x="${P}" y="${H - 4}" font-size="10" fill="#7a8796">${first ? escapeHtml(fmt.shortDate.format(utcDay(first.day))) : ""}</text><text x="${W - P}" y="${H - 4}" font-size="10" fill="#7a8796" text-anchor="end">${last ? escapeHtml(fmt.shortDate.format(utcDay(last.day))) : ""}</text>`;
  svg.innerHTML = out;
}

document.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
  if (sortKey === th.dataset.k) sortAsc = !sortAsc; else { sortKey = th.dataset.k; sortAsc = true; }
  renderTable();
}));
document.querySelectorAll("#lang-switch [data-lang]").forEach((b) => b.addEventListener("click", () => {
  setLang(b.dataset.lang, true).catch((e) => { $("error").hidden = false; $("error").textContent = e.message; });
}));
$("group").addEventListener("change", renderTable);
$("search").addEventListener("input", () => { if (report) renderTable(); });
$("apply").addEventListener("click", load);
$("to").value = today();
$("from").value = today().slice(0, 8) + "01";
setLang(chosenLang(), false)
  .catch((e) => { fmt = formatters("en"); $("error").hidden = false; $("error").textContent = e.message; })
  .then(load)
  .then(() => setInterval(load, 10000));
