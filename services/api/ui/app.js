// The control plane's web UI: a hash-routed single page over the REST API (plain JS, no build step).
// Every value from the API is inserted as text (never as HTML), so catalog data cannot inject markup.
"use strict";

const PAGE_SIZE = 100;
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);
const view = document.getElementById("view");
let refreshTimer = null;
let renderToken = 0;

// -- small helpers ----------------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function api(path) {
  let r = await fetch(path, { headers: { Accept: "application/json" } });
  if (r.status === 401) {  // the server requires the token on reads (--auth-reads): keep it in a cookie, which
    const token = prompt("Bearer token (DAD_AUTH_TOKEN) to view this server:");  // <img> requests send too
    if (token) {
      document.cookie = `dad_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
      r = await fetch(path, { headers: { Accept: "application/json" } });
    }
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : `${r.status} ${r.statusText}`);
  return body;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
const when = (t) => (t ? new Date(t).toLocaleString() : "–");
const status = (s) => h("span", { class: `status ${s}`, "data-status": s }, s);
const RUN_KINDS = ["generate", "train", "eval"];
const RUN_STATUSES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED", "UNKNOWN"];

function duration(r) {
  if (!r.started_at) return "–";
  const s = Math.max(0, ((r.finished_at ? new Date(r.finished_at) : new Date()) - new Date(r.started_at)) / 1000);
  const text = s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
                                                       : `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return r.finished_at ? text : `${text} so far`;
}

function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: String(value) === String(v) }, label)));
}


function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/sets").split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

function go(parts, params) {
  const q = params && [...params].length ? `?${params}` : "";
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}${q}`;
}

// -- sample sets ------------------------------------------------------------------------------------------------
async function setsPage() {
  const sets = await api("/sample-sets?limit=500");
  const rows = sets.data.map((s) => h("tr", {},
    h("td", {}, h("a", { href: `#/sets/${encodeURIComponent(s.id)}` }, s.id),
      s.indexing ? h("span", { class: "muted", title: "the catalog is still indexing this set" },
                     ` indexing ${pct(s.indexed_rows / Math.max(1, s.num_rows))}`) : null), h("td", {}, s.preset),
    h("td", { class: "num" }, s.num_items), h("td", { class: "num" }, s.num_classes),
    h("td", { class: "num" }, s.accepted), h("td", { class: "num" }, pct(s.acceptance_rate)),
    h("td", {}, when(s.created_at))));
  return [h("h1", {}, "Sample sets"),
    sets.count ? h("table", { id: "sets" },
      h("tr", {}, ["set", "preset", "items", "classes", "accepted", "acceptance", "created"].map((c) => h("th", {}, c))),
      rows) : h("p", { class: "muted" }, "No sample set yet: submit a generate run (POST /runs).")];
}

function lineagePanel(s) {
  const L = s.lineage, st = s.statistics;
  const model = (m) => `${m.name} (${m.kind}${m.weights ? `, ${m.weights}` : ", random init"})`;
  return h("div", { class: "row" },
    h("div", { class: "panel" }, h("h2", {}, "Lineage"), h("dl", { class: "kv" },
      h("dt", {}, "source"), h("dd", {}, `${L.source.uri} (${L.source.format}, ${L.source.num_items} items)`),
      h("dt", {}, "teacher"), h("dd", {}, model(L.teacher)),
      h("dt", {}, "discretizer"), h("dd", {}, model(L.discretizer)),
      h("dt", {}, "attack"), h("dd", {}, JSON.stringify(L.attack)),
      h("dt", {}, "preset"), h("dd", {}, `${L.preset}, ${L.image_size} px, seed ${L.seed}`),
      h("dt", {}, "run"), h("dd", {}, L.run_id ? h("a", { href: `#/runs/${encodeURIComponent(L.run_id)}` }, L.run_id) : "–"))),
    h("div", { class: "panel" }, h("h2", {}, "Statistics"), h("dl", { class: "kv", id: "set-stats" },
      h("dt", {}, "items"), h("dd", {}, `${st.clean} decoded of ${st.seen} seen (${st.errored.total} errored)`),
      h("dt", {}, "accepted Q(x')"), h("dd", {}, `${st.accepted} (${pct(st.acceptance_rate)})`),
      h("dt", {}, "rejected"), h("dd", {}, st.rejected.total),
      h("dt", {}, "teacher right on clean"), h("dd", {}, `${st.teacher_clean_correct} (${pct(st.teacher_clean_correct / Math.max(1, st.clean))})`),
      h("dt", {}, "rows / shards"), h("dd", {}, `${st.num_rows} / ${st.num_shards}`))),
    h("div", { class: "panel", id: "class-chart" }, h("h2", {}, "Acceptance rate per class"),
      h("div", { style: "max-height: 320px; overflow: auto" },
        Charts.bars(s.per_class.map((c) => ({ label: c.name.slice(0, 16), value: c.acceptance_rate,
                                               note: `(${c.accepted}/${c.items})` })),
                    { max: 1, percent: true, title: "acceptance rate per class" }))));
}

// What the attack changed (GET /sample-sets/{id}.diagnostics, from the manifest; README "Reading the diagnostics").
const DIAGNOSTIC_ROWS = [
  ["delta_l2", "|δ| L2, the attack's pixel change before Q", "num"],
  ["l2_vs_qx", "Q(x') vs Q(x): L2", "num"], ["same_vs_qx", "Q(x') vs Q(x): identical values", "share"],
  ["codes_vs_qx", "Q(x') vs Q(x): codes changed", "share"],
  ["l2_vs_qqx", "Q(x') vs Q(Q(x)): L2", "num"], ["same_vs_qqx", "Q(x') vs Q(Q(x)): identical values", "share"],
  ["codes_vs_qqx", "Q(x') vs Q(Q(x)): codes changed", "share"],
  ["kl_vs_qx", "teacher KL(φ(Q(x)) ‖ φ(Q(x')))", "num"], ["conf_drop_vs_qx", "teacher's drop on the true class", "num"],
];
const fmtDiag = (v, kind) => (v === null || v === undefined ? "–" : kind === "share" ? pct(v) : String(Number(Number(v).toPrecision(3))));

function diagnosticsPanel(s) {
  const d = s.diagnostics;
  if (!d) return h("div", { class: "panel", id: "set-diagnostics" }, h("h2", {}, "What the attack changed"),
    h("p", { class: "muted" }, "No diagnostics: this set was made before sample-store format 4."));
  const rows = DIAGNOSTIC_ROWS.filter(([k]) => d.metrics[k]);
  return h("div", { class: "panel", id: "set-diagnostics" }, h("h2", {}, "What the attack changed"),
    d.warning ? h("p", { class: "warning", role: "alert" }, d.warning) : null,
    h("table", {}, h("thead", {}, h("tr", {}, ["measure", "mean", "median", "5%", "95%", "items"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map(([k, label, kind]) => { const m = d.metrics[k];
        return h("tr", { "data-metric": k }, h("td", {}, label), h("td", { class: "num" }, fmtDiag(m.mean, kind)),
          h("td", { class: "num" }, fmtDiag(m.quantiles.q50, kind)), h("td", { class: "num" }, fmtDiag(m.quantiles.q05, kind)),
          h("td", { class: "num" }, fmtDiag(m.quantiles.q95, kind)), h("td", { class: "num" }, m.n)); }))),
    h("details", { id: "class-diagnostics" }, h("summary", {}, "per class (means)"),
      h("table", {}, h("thead", {}, h("tr", {}, ["class", "vs Q(x): L2", "identical", "codes changed", "teacher KL"]
        .map((c) => h("th", {}, c)))),
        h("tbody", {}, Object.entries(d.per_class).map(([label, m]) => h("tr", { "data-label": label },
          h("td", {}, s.class_names[label] ?? label), h("td", { class: "num" }, fmtDiag(m.l2_vs_qx)),
          h("td", { class: "num" }, fmtDiag(m.same_vs_qx, "share")), h("td", { class: "num" }, fmtDiag(m.codes_vs_qx, "share")),
          h("td", { class: "num" }, fmtDiag(m.kl_vs_qx))))))));
}

// One item's diagnostics, next to its Q(x) | Q(x') images.
function sampleDiagnostics(sample) {
  const d = sample.perturbation;
  if (!d) return null;
  return h("div", { class: "diag muted", title: "what the attack changed on this item (README: Reading the diagnostics)" },
    `vs Q(x): L2 ${fmtDiag(d.l2_vs_qx)}, ${fmtDiag(d.same_vs_qx, "share")} same, ${fmtDiag(d.codes_vs_qx, "share")} codes` +
    (d.l2_vs_qqx === null ? "" : ` · vs Q(Q(x)): L2 ${fmtDiag(d.l2_vs_qqx)}, ${fmtDiag(d.same_vs_qqx, "share")} same`) +
    ` · KL ${fmtDiag(d.kl_vs_qx)}`);
}

function filtersForm(s, params) {
  const sel = select;
  const form = h("form", { class: "filters panel", id: "filters" },
    h("label", {}, "class", sel("class", [["", "all"], ...s.class_names.map((n, i) => [i, n])], params.get("class") ?? "")),
    h("label", {}, "kind", sel("kind", [["adversarial", "adversarial"], ["clean", "clean"],
      ...(s.variants.includes("discretized") ? [["discretized", "discretized"]] : [])], params.get("kind") || "adversarial")),
    h("label", { title: "the teacher's verdict on Q(x'): defined for adversarial rows only" }, "accepted",
      Object.assign(sel("accepted", [["", "any"], ["true", "accepted"], ["false", "rejected"]], params.get("accepted") ?? ""),
                    { disabled: (params.get("kind") || "adversarial") !== "adversarial" })),
    h("label", {}, "confidence ≥", h("input", { name: "min_confidence", type: "number", min: 0, max: 1, step: 0.01,
                                                value: params.get("min_confidence") ?? "" })),
    h("label", {}, "confidence ≤", h("input", { name: "max_confidence", type: "number", min: 0, max: 1, step: 0.01,
                                                value: params.get("max_confidence") ?? "" })),
    h("label", {}, "sort", sel("order", [["", "stored order"], ["-confidence", "teacher confidence ↓"],
                                         ["confidence", "teacher confidence ↑"]], params.get("order") ?? "")),
    h("label", {}, "source path contains", h("input", { name: "source", type: "search", maxlength: 200,
                                                          placeholder: "e.g. dog/ or 0042", value: params.get("source") ?? "" })),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("change", () => form.requestSubmit());
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== "") next.set(k, v);
    if (params.get("per_page")) next.set("per_page", params.get("per_page"));
    go(["sets", s.id], next);
  });
  return form;
}

function top5List(title, brief, label) {
  if (!brief) return h("div", {});
  return h("div", {}, h("div", { class: "muted" }, title),
    h("ol", {}, brief.top5.map((t) => h("li", { class: t.label === label ? "hit" : null },
      `${t.name} ${(100 * t.probability).toFixed(0)}%`))));
}

const VARIANT_CAPTIONS = [["clean", "clean x"], ["discretized", "Q(x)"], ["adversarial", "Q(x')"]];

function closeLightbox() {
  document.getElementById("lightbox")?.remove();
}

// Full-size view of one item: x, Q(x) and Q(x') side by side, with the teacher's verdicts (Esc or click closes).
function openLightbox(sample) {
  closeLightbox();
  const rows = { [sample.kind]: sample };
  if (sample.pair) rows[sample.pair.kind] = sample.pair;
  const verdict = (r) => (r ? `teacher: ${r.top5[0]?.name ?? r.prediction} ${(100 * r.confidence).toFixed(0)}%` : "");
  const box = h("div", { id: "lightbox", role: "dialog", "aria-modal": "true", "aria-label": `sample ${sample.source_id}`,
                         onclick: (ev) => { if (ev.target === box || ev.target.dataset.action === "close") closeLightbox(); } },
    h("div", { class: "lightbox-body" },
      h("div", { class: "lightbox-head" }, h("strong", {}, sample.class_name), ` · ${sample.source_id}`,
        h("button", { "data-action": "close", title: "close (Esc)" }, "×")),
      h("div", { class: "lightbox-images" }, VARIANT_CAPTIONS.filter(([v]) => sample.images[v]).map(([v, caption]) =>
        h("figure", {}, h("img", { src: sample.images[v], alt: `${caption} ${sample.source_id}`, "data-variant": v }),
          h("figcaption", {}, caption, h("br"), h("span", { class: "muted" }, verdict(rows[v])),
            v === "adversarial" && rows.adversarial ? h("span", { class: `badge ${rows.adversarial.accepted ? "yes" : "no"}` },
              rows.adversarial.accepted ? " accepted" : " rejected") : null)))),
      h("div", { class: "top5" }, top5List("teacher on x", rows.clean, sample.label),
        top5List("teacher on Q(x')", rows.adversarial, sample.label)),
      sampleDiagnostics(sample)));
  document.body.append(box);
}

document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeLightbox(); });

function tile(sample) {
  const rows = { [sample.kind]: sample };
  if (sample.pair) rows[sample.pair.kind] = sample.pair;
  const adv = rows.adversarial;
  const figure = (variant, caption) => h("figure", {},
    sample.images[variant]
      ? h("img", { src: sample.images[variant], alt: `${caption} ${sample.source_id}`, loading: "lazy", "data-variant": variant,
                   title: "click for full size", onclick: () => openLightbox(sample) })
      : h("div", { class: "missing", title: "this sample set does not store Q(x)" }, "not stored"),
    h("figcaption", {}, caption));
  return h("div", { class: `tile${adv && adv.accepted === false ? " rejected" : ""}`, "data-sample": sample.id },
    h("div", { class: "triplet" }, figure("clean", "clean x"), figure("discretized", "Q(x)"), figure("adversarial", "Q(x')")),
    sampleDiagnostics(sample),
    h("div", { class: "meta" }, h("span", {}, h("strong", {}, sample.class_name), ` · ${sample.source_id}`),
      adv ? h("span", { class: `badge ${adv.accepted ? "yes" : "no"}` }, adv.accepted ? "accepted" : "rejected") : null),
    h("div", { class: "top5" }, top5List("teacher on x", rows.clean, sample.label),
      top5List("teacher on Q(x')", adv, sample.label)));
}

async function setPage(id, params) {
  const s = await api(`/sample-sets/${encodeURIComponent(id)}`);
  const perPage = Math.min(500, Math.max(1, parseInt(params.get("per_page") || PAGE_SIZE, 10)));
  const page = Math.max(1, parseInt(params.get("page") || "1", 10));
  // Next continues from the previous page's cursor (`after`: the same cost at any depth of a million-row set);
  // a page number alone (a link, Prev) is an offset.
  const q = new URLSearchParams({ limit: perPage, kind: params.get("kind") || "adversarial" });
  if (params.get("after")) q.set("after", params.get("after")); else q.set("offset", (page - 1) * perPage);
  for (const k of ["class", "min_confidence", "max_confidence", "order", "source"]) if (params.get(k)) q.set(k, params.get(k));
  if (params.get("accepted") && q.get("kind") === "adversarial") q.set("accepted", params.get("accepted"));  // null on x, Q(x)
  const samples = await api(`/sample-sets/${encodeURIComponent(id)}/samples?${q}`);
  const pages = Math.max(1, Math.ceil(samples.count / perPage));
  const toPage = (p, after) => {
    const next = new URLSearchParams(params);
    next.set("page", p);
    if (after) next.set("after", after); else next.delete("after");
    go(["sets", id], next);
  };
  const total = samples.count_exact ? `${samples.count}` : `${samples.count}+`;
  const pager = () => h("div", { class: "pager" },
    h("button", { disabled: page <= 1, "data-action": "prev", onclick: () => toPage(page - 1) }, "‹ Prev"),
    h("span", { class: "page-info" }, `page ${page} of ${samples.count_exact ? pages : `${pages}+`} · ${total} samples`),
    h("button", { disabled: !samples.next || (samples.count_exact && page >= pages), "data-action": "next",
                  onclick: () => toPage(page + 1, samples.next) }, "Next ›"));
  const indexing = s.indexing ? h("p", { class: "warning", id: "set-indexing", role: "status" },
    `Indexing: ${s.indexed_rows.toLocaleString()} of ${s.num_rows.toLocaleString()} rows so far ` +
    `(${pct(s.indexed_rows / Math.max(1, s.num_rows))}). Pages, totals, sorts and per-class counts cover these rows; ` +
    "reload for more.") : null;
  return [h("h1", {}, `Sample set ${s.id}`), indexing, lineagePanel(s), diagnosticsPanel(s), filtersForm(s, params), pager(),
    h("div", { class: "grid", id: "samples" }, samples.data.map(tile)),
    samples.count ? pager() : h("p", { class: "muted" }, samples.next
      ? "No match in this stretch of the set (a source search reads 30,000 rows per page): Next searches on."
      : "No sample matches these filters.")];
}

// -- runs ------------------------------------------------------------------------------------------------------------
const keyMetricCache = new Map();  // run id -> text, for finished train runs (their metrics no longer change)

async function trainKeyMetric(r) {
  if (keyMetricCache.has(r.id)) return keyMetricCache.get(r.id);
  let text = "–";
  try {
    const { records } = await runMetrics(r.id, 10);
    const epochs = records.filter((x) => x.type === "epoch" && typeof x.val_top1 === "number");
    const steps = records.filter((x) => x.type === "step" && typeof x.loss === "number");
    if (epochs.length) text = `val top-1 ${epochs[epochs.length - 1].val_top1.toFixed(1)}%`;
    else if (steps.length) text = `loss ${steps[steps.length - 1].loss.toFixed(3)}`;
  } catch (e) { text = "–"; }
  if (TERMINAL.has(r.status)) keyMetricCache.set(r.id, text);
  return text;
}

function runOutput(r, sets, resultRuns) {
  const muted = (text, title) => h("span", { class: "muted", title: title || null }, text);
  if (r.kind === "generate") {
    if (r.sample_set_id && sets.has(r.sample_set_id))
      return h("a", { href: `#/sets/${encodeURIComponent(r.sample_set_id)}` }, `sample set ${r.sample_set_id}`);
    return TERMINAL.has(r.status) || r.status === "UNKNOWN"
      ? muted(`no sample set (run ${r.status.toLowerCase()})`, r.output_uri) : muted("generating…", r.output_uri);
  }
  if (r.kind === "train") {
    return r.status === "SUCCEEDED"
      ? h("a", { href: `/runs/${encodeURIComponent(r.id)}/files/model.pth`, download: "", "data-output": "model" }, "model.pth")
      : muted(TERMINAL.has(r.status) ? `no model (run ${r.status.toLowerCase()})` : "training…", r.output_uri);
  }
  return resultRuns.has(r.id) ? h("a", { href: `#/results?run=${encodeURIComponent(r.id)}` }, "results")
                              : muted(TERMINAL.has(r.status) ? "no results" : "evaluating…", r.output_uri);
}

async function runsPage(params) {
  const q = new URLSearchParams({ limit: 200 });
  for (const k of ["kind", "status"]) if (params.get(k)) q.set(k, params.get(k));
  const [runs, sets, results] = await Promise.all([api(`/runs?${q}`), api("/sample-sets?limit=500"), api("/results")]);
  const setById = new Map(sets.data.map((s) => [s.id, s]));
  const resultsByRun = new Map();
  for (const x of results.data) if (!resultsByRun.has(x.run_id)) resultsByRun.set(x.run_id, x);
  const keyMetrics = await Promise.all(runs.data.map((r) => {
    if (r.kind === "train") return trainKeyMetric(r);
    if (r.kind === "generate") { const s = setById.get(r.sample_set_id); return s ? `acceptance ${pct(s.acceptance_rate)}` : "–"; }
    const x = resultsByRun.get(r.id);
    return x ? `${x.suite} ${x.metric} ${x.value.toFixed(1)}` : "–";
  }));
  const filters = h("form", { class: "filters panel", id: "run-filters" },
    h("label", {}, "kind", select("kind", [["", "all"], ...RUN_KINDS.map((k) => [k, k])], params.get("kind") ?? "")),
    h("label", {}, "status", select("status", [["", "all"], ...RUN_STATUSES.map((k) => [k, k])], params.get("status") ?? "")),
    h("button", { type: "button", "data-action": "compare", onclick: () => {
      const ids = [...document.querySelectorAll("input[name=compare]:checked")].map((c) => c.value);
      go(["compare"], new URLSearchParams(ids.length ? { runs: ids.join(",") } : {}));
    } }, "Compare selected train runs"));
  const applyFilters = () => {  // the ticked runs live in the URL too, so the 3 s refresh keeps them
    const form = new FormData(filters), next = new URLSearchParams();
    for (const k of ["kind", "status"]) if (form.get(k)) next.set(k, form.get(k));
    if (form.getAll("compare").length) next.set("compare", form.getAll("compare").join(","));
    go(["runs"], next);
  };
  filters.addEventListener("change", applyFilters);
  const checked = new Set((params.get("compare") || "").split(",").filter(Boolean));
  const link = (r) => h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, r.id);
  const nodes = [h("h1", {}, "Runs"), filters,
    runs.count ? h("table", { id: "runs" },
      h("tr", {}, ["", "run", "kind", "status", "submitted", "duration", "key metric", "output"].map((c) => h("th", {}, c))),
      runs.data.map((r, i) => h("tr", { "data-run": r.id },
        h("td", {}, r.kind === "train" ? h("input", { type: "checkbox", name: "compare", value: r.id, form: "run-filters",
                                                       checked: checked.has(r.id), title: "compare this run's curves",
                                                       onchange: applyFilters }) : null),
        h("td", {}, link(r)), h("td", {}, r.kind), h("td", {}, status(r.status)),
        h("td", {}, when(r.submitted_at)), h("td", { class: "num", "data-col": "duration" }, duration(r)),
        h("td", { "data-col": "metric" }, keyMetrics[i]),
        h("td", { "data-col": "output" }, runOutput(r, setById, resultsByRun)))))
      : h("p", { class: "muted" }, params.get("kind") || params.get("status") ? "No run matches these filters." : "No run yet.")];
  return { nodes, refreshMs: 3000 };  // live status
}

// The trainer logs validation accuracy as a fraction (services/trainer/metrics.py); pages show percent.
const FRACTION_KEYS = /^val_top\d+$/;
function asPercent(records) {
  return records.map((r) => r.type !== "epoch" ? r : Object.fromEntries(Object.entries(r).map(([k, v]) =>
    [k, FRACTION_KEYS.test(k) && typeof v === "number" ? 100 * v : v])));
}

// A run's metric records, validation accuracy in percent.
async function runMetrics(id, maxPoints) {
  const m = await api(`/runs/${encodeURIComponent(id)}/metrics?max_points=${maxPoints}`);
  return { ...m, records: asPercent(m.records) };
}

function metricSeries(records, keys, x = (r) => r.step, extra = {}) {
  return keys.map((k) => ({ name: k, ...extra, points: records.filter((r) => typeof r[k] === "number").map((r) => [x(r), r[k]]) }));
}

// End of each epoch as a vertical marker on step axes.
const epochMarkers = (metrics) => metrics.filter((r) => r.type === "epoch" && typeof r.step === "number")
  .map((r) => ({ x: r.step, label: `epoch ${r.epoch + 1}` }));

const RIGHT_AXIS = new Set(["accepted_fraction"]);  // a fraction in [0, 1]: its own axis, not squeezed by the losses

function trainCharts(metrics) {
  const steps = metrics.filter((r) => r.type === "step");
  const epochs = asPercent(metrics.filter((r) => r.type === "epoch"));
  const skip = new Set(["type", "version", "step", "epoch", "time", "lr", "images_per_s", "samples_per_s"]);
  const numericKeys = (rows) => [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !skip.has(k) && rows.some((r) => typeof r[k] === "number"));
  const keys = numericKeys(steps);
  const lossSeries = [...metricSeries(steps, keys.filter((k) => !RIGHT_AXIS.has(k))),
                      ...metricSeries(steps, keys.filter((k) => RIGHT_AXIS.has(k)), (r) => r.step, { axis: "right", color: "#7f8c8d" })];
  const speedKeys = ["images_per_s", "samples_per_s"].filter((k) => steps.some((r) => k in r));
  const valKeys = numericKeys(epochs).filter((k) => k.startsWith("val_"));
  const markers = epochMarkers(metrics);
  return h("div", { class: "row" },
    h("div", { class: "panel", id: "loss-chart" }, h("h2", {}, "Loss"),
      Charts.lines(lossSeries, { xLabel: "step", yLabel: "loss", rightLabel: "accepted fraction", right: { min: 0, max: 1 },
                                 markers, title: "loss curves" })),
    h("div", { class: "panel", id: "throughput-chart" }, h("h2", {}, "Throughput"),
      Charts.lines(metricSeries(steps, speedKeys), { xLabel: "step", yLabel: "images / s", markers, title: "images per second" })),
    h("div", { class: "panel", id: "val-chart" }, h("h2", {}, "Validation"),
      Charts.lines(metricSeries(epochs, valKeys, (r) => r.epoch + 1), { xLabel: "epoch", yLabel: "accuracy (%)", integerX: true,
                                                                       title: "validation accuracy", empty: "no epoch finished yet" })));
}

function downloadsPanel(r) {
  const report = r.config && r.config.report;  // an experiment's report run (experiments.pacs)
  const files = r.kind === "train" ? [["model.pth", "model weights (timm state_dict)"], ["model.json", "what the model is"],
                                      ["metrics.jsonl", "metrics"], ["train_config.json", "resolved config"], ["run.json", "submission"]]
              : report ? [["report.md", "the report: tables, paired tests, findings"], ["report.json", "every number"],
                          ["run.json", "submission"]]
                                   : [["run.json", "submission"]];
  return h("div", { class: "panel", id: "downloads" }, h("h2", {}, "Downloads"),
    h("ul", { class: "downloads" }, files.map(([name, what]) => h("li", {},
      h("a", { href: `/runs/${encodeURIComponent(r.id)}/files/${name}`, download: "", "data-file": name }, name), ` – ${what}`))),
    r.kind === "train" ? h("a", { href: `#/compare?runs=${encodeURIComponent(r.id)}` }, "compare with other runs →") : null,
    report ? h("div", { class: "figures", id: "report-figures" }, ["results_bar.png", "attack_grid.png", "samples_grid.png"]
      .map((name) => h("img", { src: `/runs/${encodeURIComponent(r.id)}/files/${name}`, alt: name, "data-figure": name,
                                onerror: (e) => e.target.remove() }))) : null);
}

function progressPanel(p) {
  if (!p) return h("p", { class: "muted" }, "No progress reported yet.");
  return h("div", { class: "panel", id: "progress" }, h("h2", {}, "Generation"),
    h("progress", { max: Math.max(1, p.total_items), value: p.done_items }),
    h("dl", { class: "kv" },
      h("dt", {}, "items"), h("dd", {}, `${p.done_items} / ${p.total_items} (${p.committed_shards}/${p.total_shards} shards)`),
      h("dt", {}, "throughput"), h("dd", {}, `${p.samples_per_s.toFixed(1)} items/s`),
      h("dt", {}, "accepted"), h("dd", {}, `${p.accepted} (${pct(p.acceptance_rate)})`),
      h("dt", {}, "errored"), h("dd", {}, p.errored),
      h("dt", {}, "state"), h("dd", {}, p.state + (p.message ? `: ${p.message}` : ""))));
}

async function stopRun(id) {
  let token = sessionStorage.getItem("dad-token");
  if (token === null) token = prompt("Bearer token (DAD_AUTH_TOKEN) to stop this run:") || "";
  const r = await fetch(`/runs/${encodeURIComponent(id)}/stop`,
                        { method: "POST", headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (r.status === 401) { sessionStorage.removeItem("dad-token"); alert("Wrong or missing token."); return; }
  if (token) sessionStorage.setItem("dad-token", token);
  if (!r.ok) alert((await r.json().catch(() => ({}))).detail || `${r.status} ${r.statusText}`);
  route();
}

async function runPage(id) {
  const r = await api(`/runs/${encodeURIComponent(id)}`);
  const setLink = r.sample_set_id && r.status === "SUCCEEDED";
  const nodes = [h("h1", {}, `Run ${r.id} `, status(r.status), " ",
      TERMINAL.has(r.status) || r.status === "UNKNOWN" ? null
        : h("button", { "data-action": "stop", onclick: () => stopRun(r.id) }, "Stop")),
    h("div", { class: "row" }, h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "kind"), h("dd", {}, r.kind),
      h("dt", {}, "submitted"), h("dd", {}, when(r.submitted_at)),
      h("dt", {}, "started"), h("dd", {}, when(r.started_at)),
      h("dt", {}, "finished"), h("dd", {}, when(r.finished_at)),
      h("dt", {}, "duration"), h("dd", {}, duration(r)),
      h("dt", {}, "message"), h("dd", {}, r.message || "–"),
      h("dt", {}, "output"), h("dd", {}, setLink
        ? h("a", { href: `#/sets/${encodeURIComponent(r.sample_set_id)}` }, `sample set ${r.sample_set_id}`) : r.output_uri),
      r.mlflow ? h("dt", {}, "MLflow") : null,
      r.mlflow ? h("dd", {}, h("a", { href: r.mlflow.url, target: "_blank", rel: "noopener", id: "mlflow-link" },
                               `run ${r.mlflow.run_id}`)) : null,
      h("dt", {}, "command"), h("dd", {}, h("code", {}, r.entrypoint)))), downloadsPanel(r)),
    r.kind === "generate" ? progressPanel(r.progress) : null,
    r.kind === "train" ? trainCharts(r.metrics) : null,
    h("h2", {}, "Config"), h("pre", {}, JSON.stringify(r.config, null, 2)),
    h("h2", {}, "Log tail"), r.log_tail !== null ? h("pre", { id: "log" }, r.log_tail || "(empty)")
                                                 : h("p", { class: "muted", id: "log-missing" }, r.log_error || "no logs")];
  return { nodes, refreshMs: TERMINAL.has(r.status) ? 0 : 2000 };
}

// Several train runs' curves on shared axes: one chart per metric, one line per run.
async function comparePage(params) {
  const chosen = (params.get("runs") || "").split(",").filter(Boolean).slice(0, 8);
  const trainRuns = await api("/runs?kind=train&limit=200");
  const picker = h("form", { class: "filters panel", id: "compare-picker" },
    trainRuns.data.length ? trainRuns.data.map((r) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "runs", value: r.id, checked: chosen.includes(r.id) }), ` ${r.id} `, status(r.status)))
      : h("span", { class: "muted" }, "No train run yet."));
  picker.addEventListener("change", () => {
    const ids = [...picker.querySelectorAll("input:checked")].map((c) => c.value);
    go(["compare"], new URLSearchParams(ids.length ? { runs: ids.join(",") } : {}));
  });
  const all = await Promise.all(chosen.map((id) => runMetrics(id, 1000).catch(() => ({ run_id: id, records: [] }))));
  const chart = (id, title, key, type, x, xLabel, extra = {}) => h("div", { class: "panel", id },
    h("h2", {}, title), Charts.lines(all.map((m) => ({ name: m.run_id, points: m.records
      .filter((r) => r.type === type && typeof r[key] === "number").map((r) => [x(r), r[key]]) })),
    { xLabel, title, empty: `no ${key} recorded`, ...extra }));
  const nodes = [h("h1", {}, "Compare train runs"), picker,
    chosen.length ? h("div", { class: "row" },
      chart("compare-loss", "Training loss", "loss", "step", (r) => r.step, "step", { yLabel: "loss" }),
      chart("compare-val", "Validation top-1", "val_top1", "epoch", (r) => r.epoch + 1, "epoch", { yLabel: "accuracy (%)", integerX: true }),
      chart("compare-accepted", "Accepted fraction", "accepted_fraction", "step", (r) => r.step, "step",
            { yLabel: "fraction", min: 0, max: 1 }))
      : h("p", { class: "muted" }, "Tick runs above to overlay their curves.")];
  return nodes;
}

// -- results ---------------------------------------------------------------------------------------------------------
const METRIC_NAMES = { top1: "top-1 accuracy (%)", mCE: "mean corruption error (%, lower is better)" };

function resultCell(c, best, many) {
  if (!c) return h("td", { class: "num muted" }, "–");
  const ci = c.details && c.details.ci95;
  const n = c.details && c.details.num_images;
  return h("td", { class: `num${c.value === best && many ? " best" : ""}`, "data-suite": c.suite },
    h("div", { class: "value" }, c.value.toFixed(1)),
    ci || n ? h("div", { class: "ci" }, ci ? `95% CI ${ci[0].toFixed(1)}–${ci[1].toFixed(1)}` : "", ci && n ? " · " : "",
                n ? `n=${n}` : "") : null);
}

async function resultsPage(params) {
  const res = await api("/results");
  if (!res.count) return [h("h1", {}, "Results"), h("p", { class: "muted" }, "No evaluation yet: submit an eval run.")];
  const focus = params.get("run");
  const byRun = new Map();
  for (const r of res.data) {
    if (!byRun.has(r.run_id)) byRun.set(r.run_id, { model: r.model, cells: {} });
    byRun.get(r.run_id).cells[r.suite] = r;
  }
  const best = {};
  for (const suite of res.suites) {
    const vals = res.data.filter((r) => r.suite === suite);
    best[suite] = vals.length ? (vals[0].lower_is_better ? Math.min : Math.max)(...vals.map((r) => r.value)) : null;
  }
  // Say what the numbers are, naming only metrics (and suites) that are in the table.
  const legend = [...new Set(res.data.map((r) => r.metric))].map((m) => {
    const suites = [...new Set(res.data.filter((r) => r.metric === m).map((r) => r.suite))];
    return `${METRIC_NAMES[m] || m}${m === "top1" ? "" : ` (${suites.join(", ")})`}`;
  }).join("; ");
  return [h("h1", {}, "Results"),
    h("div", { class: "toolbar" }, h("span", { class: "muted", id: "results-legend" }, legend),
      h("a", { href: "/results/csv", download: "results.csv", class: "button", id: "results-csv" }, "Download CSV")),
    h("table", { id: "results" },
      h("tr", {}, h("th", {}, "run"), h("th", {}, "model"),
        res.suites.map((s) => h("th", { class: "num" }, s + (res.data.find((r) => r.suite === s)?.lower_is_better ? " ↓" : "")))),
      [...byRun].map(([runId, row]) => h("tr", { "data-run": runId, class: runId === focus ? "focus" : null },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(runId)}` }, runId)), h("td", {}, row.model),
        res.suites.map((s) => resultCell(row.cells[s], best[s], byRun.size > 1)))))];
}

// -- router ----------------------------------------------------------------------------------------------------------
async function route() {
  clearTimeout(refreshTimer);
  closeLightbox();
  const token = ++renderToken;
  const { parts, params } = parseHash();
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  let out;
  try {
    if (parts[0] === "sets" && parts[1]) out = await setPage(parts[1], params);
    else if (parts[0] === "runs" && parts[1]) out = await runPage(parts[1]);
    else if (parts[0] === "runs") out = await runsPage(params);
    else if (parts[0] === "compare") out = await comparePage(params);
    else if (parts[0] === "results") out = await resultsPage(params);
    else out = await setsPage();
  } catch (e) {
    out = [h("p", { class: "error" }, String(e.message || e))];
  }
  if (token !== renderToken) return;  // the user navigated on while this page was loading
  const { nodes, refreshMs } = Array.isArray(out) ? { nodes: out, refreshMs: 0 } : out;
  view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  view.dataset.ready = parts.join("/");
  view.dataset.hash = location.hash;  // which URL the page shows (tests wait on it after a filter changes)
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;  // the newest lines
  if (refreshMs) refreshTimer = setTimeout(route, refreshMs);
}

window.addEventListener("hashchange", route);
api("/health").then((hres) => { document.getElementById("auth-banner").hidden = hres.auth !== "disabled"; }).catch(() => {});
route();
