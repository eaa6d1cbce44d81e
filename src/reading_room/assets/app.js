// ISMF Edge reading room. Everything shown comes from the network and is untrusted: it is only
// ever set as text (textContent, attribute values), never parsed as HTML.
"use strict";

const CLASSES = ["SCN", "MNG", "AST", "EPN", "MET"];
const NAMES = {
  SCN: "Schwannoma", MNG: "Meningioma", AST: "Astrocytoma", EPN: "Ependymoma", MET: "Metastasis",
};
const FLAGS = { confident: "confident", uncertain: "uncertain", out_of_scope: "out of scope" };
const $ = (id) => document.getElementById(id);

let clockOffset = 0; // server clock minus ours, seconds
let appliances = new Map();
let next = null;

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c);
  }
  return e;
}

function filters() {
  return { appliance: $("f-appliance").value, class: $("f-class").value, flag: $("f-flag").value };
}

function admits(p) {
  const f = filters();
  return (!f.appliance || p.appliance_id === f.appliance)
    && (!f.class || p.top_class === f.class)
    && (!f.flag || (p.assessment || "none") === f.flag);
}

function when(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : d.toLocaleDateString() + " " + time;
}

function ago(seconds) {
  if (!isFinite(seconds)) return "unknown";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function now() {
  return Date.now() / 1000 + clockOffset;
}

function studyCell(p) {
  const cell = el("td");
  const who = [p.accession_number && ("Accession " + p.accession_number), p.patient_name, p.patient_id]
    .filter(Boolean).join(" · ");
  if (who) cell.append(el("div", { text: who }));
  cell.append(el("div", { class: "uid", title: p.study_instance_uid, text: p.study_instance_uid }));
  if (Array.isArray(p.series) && p.series.length) {
    const series = p.series.map((s) => s.series_description || s.sequence).join(" · ");
    cell.append(el("div", { class: "series", title: "Series the model used", text: series }));
  }
  const warnings = Array.isArray(p.warnings) ? p.warnings.length : 0;
  if (warnings) cell.append(el("div", { text: "⚠ " + warnings + " preprocessing warning" + (warnings > 1 ? "s" : "") }));
  return cell;
}

function answerCell(p) {
  const top = p.top_class;
  const flag = p.assessment;
  let words = (NAMES[top] || top) + " (" + top + ")";
  if (flag === "uncertain") words = "Uncertain — most probable: " + words;
  if (flag === "out_of_scope") words = "Out of scope — none of the five tumour types";
  return el("td", { class: "answer" },
    el("strong", { text: words }),
    el("span", { class: "uid", text: "model " + ((p.model && p.model.version) || "?") }));
}

function probabilities(p) {
  const list = el("ul", { class: "probs", "aria-label": "Probabilities" });
  for (const c of CLASSES) {
    const v = Number(p.probabilities[c]);
    const meter = el("meter", { min: 0, max: 1, value: v, "aria-label": NAMES[c] + " probability" });
    list.append(el("li", { class: c === p.top_class ? "top" : "", title: NAMES[c] },
      el("span", { text: c }), meter, el("span", { text: v.toFixed(2) })));
  }
  return el("td", {}, list);
}

function keyImageCell(row) {
  const p = row.prediction;
  if (!row.has_key_image) return el("td", { text: "—" });
  const label = "Key images of study " + p.study_instance_uid;
  const img = el("img", { src: "/api/key-images/" + encodeURIComponent(p.prediction_id), alt: label, loading: "lazy" });
  const button = el("button", { type: "button", class: "thumb", "aria-label": "Open " + label }, img);
  button.addEventListener("click", () => openMontage(row));
  return el("td", {}, button);
}

function rowFor(row) {
  const p = row.prediction;
  const tr = el("tr", { tabindex: 0 });
  tr.dataset.id = p.prediction_id;
  tr.dataset.created = p.created_at;
  const flag = p.assessment ? (FLAGS[p.assessment] || p.assessment) : "not assessed";
  tr.append(
    el("td", { class: "time", title: p.created_at, text: when(p.created_at) }),
    el("td", { text: p.appliance_id }),
    studyCell(p),
    answerCell(p),
    probabilities(p),
    el("td", { text: Number(p.margin).toFixed(2) }),
    el("td", { class: p.assessment ? "flag-" + p.assessment : "", text: flag }),
    keyImageCell(row),
  );
  tr.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === "o") && row.has_key_image) { openMontage(row); e.preventDefault(); }
  });
  return tr;
}

function updateCount() {
  const n = $("rows").children.length;
  $("count").textContent = "(" + n + " shown)";
  $("empty").hidden = n > 0;
}

/// Puts a row in its place: replaces a row of the same id, else inserts by time (newest first).
function place(row, fresh) {
  const p = row.prediction;
  const body = $("rows");
  const old = [...body.children].find((tr) => tr.dataset.id === p.prediction_id);
  if (!admits(p)) { if (old) old.remove(); updateCount(); return; }
  const tr = rowFor(row);
  if (old) { old.replaceWith(tr); return; }
  const after = [...body.children].find((r) => r.dataset.created < p.created_at);
  if (fresh) tr.classList.add("new");
  body.insertBefore(tr, after || null);
  updateCount();
}

function openMontage(row) {
  const p = row.prediction;
  $("montage-title").textContent = "Key images — " + (NAMES[p.top_class] || p.top_class) + " (" + p.top_class
    + ") — study " + p.study_instance_uid;
  const img = $("montage-image");
  img.src = "/api/key-images/" + encodeURIComponent(p.prediction_id);
  img.alt = "Key-image montage of study " + p.study_instance_uid;
  $("montage").showModal();
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function loadWorklist(more) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters())) if (v) q.set(k, v);
  if (more && next) q.set("before", next);
  const page = await api("/api/predictions?" + q);
  if (!more) $("rows").replaceChildren();
  for (const row of page.predictions) place(row, false);
  next = page.next;
  $("older").hidden = !next;
  updateCount();
}

function applianceCard(a) {
  // Stale is recomputed as time passes: a silent appliance without a last will (a broken link)
  // turns from online to "no heartbeat" without any message.
  const stale = a.online && now() - a.heartbeat_at > (a.stale_after_s || 90);
  const state = a.online ? (stale ? "stale" : "online") : "offline";
  const label = { online: "● online", offline: "○ offline", stale: "◐ no heartbeat" }[state];
  const facts = el("dl", { class: "facts" });
  const fact = (k, v) => facts.append(el("dt", { text: k }), el("dd", { text: v }));
  fact("Heartbeat", ago(now() - a.heartbeat_at));
  fact("Reason", a.reason || "");
  if (a.outbox !== null && a.outbox !== undefined) fact("Outbox", a.outbox + " waiting, " + a.studies_waiting + " studies queued");
  if (a.latency_p50_ms !== null && a.latency_p50_ms !== undefined)
    fact("Latency", "p50 " + (a.latency_p50_ms / 1000).toFixed(1) + " s · p95 " + (a.latency_p95_ms / 1000).toFixed(1) + " s (last file → published)");
  if (a.model) fact("Model", a.model);
  if (a.last_error) fact("Last error", a.last_error);
  const li = el("li", { "data-appliance": a.appliance_id },
    el("div", {}, el("span", { class: "state " + state, text: label }), " ", el("strong", { text: a.appliance_id })),
    facts);
  li.dataset.state = state;
  return li;
}

function renderAppliances() {
  const list = $("appliances");
  list.replaceChildren(...[...appliances.values()]
    .sort((a, b) => a.appliance_id.localeCompare(b.appliance_id))
    .map(applianceCard));
  const select = $("f-appliance");
  const names = [...appliances.keys()].sort();
  const shown = [...select.options].slice(1).map((o) => o.value);
  if (shown.join("\n") !== names.join("\n")) { // only when the set changes (not under the user)
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((n) => el("option", { value: n, text: n })));
    select.value = chosen;
  }
}

async function loadAppliances() {
  const data = await api("/api/appliances");
  clockOffset = data.now - Date.now() / 1000;
  appliances = new Map(data.appliances.map((a) => [a.appliance_id, a]));
  renderAppliances();
  showBroker(data.broker);
}

function showBroker(b) {
  const c = $("connection");
  if (!b) return;
  c.textContent = b.connected ? "Live: connected to the broker " + b.url
    : "Not connected to the broker " + b.url + (b.last_error ? " (" + b.last_error + ")" : "") + " — retrying; what is shown may be out of date.";
}

function eventItem(e) {
  const b = e.body;
  const subject = b.path || b.study_instance_uid || "";
  return el("li", { "data-seq": e.seq },
    el("span", { class: "kind", text: String(b.kind).replace(/_/g, " ") }), " — ",
    el("span", { text: b.appliance_id }), " · ", el("span", { text: when(b.created_at) }),
    subject ? el("div", { class: "uid", text: subject }) : null,
    el("div", { text: b.reason }));
}

function showInvalid(total, latest) {
  const p = $("invalid");
  p.className = total ? "some" : "";
  p.textContent = total
    ? total + " message" + (total > 1 ? "s" : "") + " refused as invalid (not shown)"
      + (latest ? "; latest on " + latest.body.topic + ": " + latest.body.reason : "")
    : "No invalid messages.";
}

async function loadEvents() {
  const data = await api("/api/events?limit=50");
  $("events").replaceChildren(...data.events.map(eventItem));
  showInvalid(data.invalid.total, data.invalid.recent[0]);
}

// Live updates that arrive while a refresh is loading wait for it, then apply on top of it (a
// snapshot taken before them must not overwrite them).
let refreshing = null;
const held = [];

function live(apply) {
  return (m) => {
    const data = JSON.parse(m.data);
    if (refreshing) held.push(() => apply(data));
    else apply(data);
  };
}

function listen() {
  const stream = new EventSource("/api/stream");
  stream.addEventListener("prediction", live((row) => place(row, true)));
  stream.addEventListener("appliance", live((a) => {
    appliances.set(a.appliance_id, a);
    renderAppliances();
  }));
  stream.addEventListener("event", live((e) => {
    const list = $("events");
    if ([...list.children].some((li) => li.dataset.seq === String(e.seq))) return;
    list.prepend(eventItem(e));
    while (list.children.length > 50) list.lastChild.remove();
  }));
  stream.addEventListener("invalid", live((d) => showInvalid(d.total, d.latest)));
  stream.addEventListener("broker", live(showBroker));
  // Missed updates (this page fell behind, or the connection dropped): load everything again.
  stream.addEventListener("resync", () => refresh());
  stream.addEventListener("open", () => refresh());
  stream.addEventListener("error", () => {
    $("connection").textContent = "Connection to the reading room lost — reconnecting…";
  });
}

/// Runs a load with live updates held until it is done.
async function guarded(load) {
  while (refreshing) await refreshing;
  refreshing = (async () => {
    try {
      await load();
    } catch (e) {
      $("connection").textContent = "Cannot load from the reading room: " + e.message;
    }
  })();
  await refreshing;
  refreshing = null;
  for (const apply of held.splice(0)) apply();
}

function refresh() {
  return guarded(() => Promise.all([loadWorklist(false), loadAppliances(), loadEvents()]));
}

function rows() {
  return [...$("rows").children];
}

function move(step) {
  const all = rows();
  if (!all.length) return;
  const at = all.indexOf(document.activeElement);
  const to = at < 0 ? 0 : Math.min(all.length - 1, Math.max(0, at + step));
  all[to].focus();
}

document.addEventListener("keydown", (e) => {
  if ($("montage").open) return; // the dialog handles Esc itself
  const inForm = e.target instanceof HTMLSelectElement || e.target instanceof HTMLInputElement;
  if (inForm) return;
  if (e.key === "j" || e.key === "ArrowDown") { move(1); e.preventDefault(); }
  else if (e.key === "k" || e.key === "ArrowUp") { move(-1); e.preventDefault(); }
  else if (e.key === "/") { $("f-appliance").focus(); e.preventDefault(); }
});

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-appliance", "f-class", "f-flag"]) $(id).addEventListener("change", () => guarded(() => loadWorklist(false)));
  $("older").addEventListener("click", () => guarded(() => loadWorklist(true)));
  $("montage-close").addEventListener("click", () => $("montage").close());
  // Heartbeat ages move on without messages.
  setInterval(renderAppliances, 5000);
  listen();
});
