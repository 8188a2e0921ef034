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
    h("td", {}, h("a", { href: `#/sets/${encodeURIComponent(s.id)}` }, s.id)), h("td", {}, s.preset),
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

function filtersForm(s, params) {
  const sel = (name, options, value) => h("select", { name }, options.map(([v, label]) =>
    h("option", { value: v, selected: String(value) === String(v) }, label)));
  const form = h("form", { class: "filters panel", id: "filters" },
    h("label", {}, "class", sel("class", [["", "all"], ...s.class_names.map((n, i) => [i, n])], params.get("class") ?? "")),
    h("label", {}, "kind", sel("kind", [["adversarial", "adversarial"], ["clean", "clean"],
      ...(s.variants.includes("discretized") ? [["discretized", "discretized"]] : [])], params.get("kind") || "adversarial")),
    h("label", {}, "accepted", sel("accepted", [["", "any"], ["true", "accepted"], ["false", "rejected"]], params.get("accepted") ?? "")),
    h("label", {}, "confidence ≥", h("input", { name: "min_confidence", type: "number", min: 0, max: 1, step: 0.01,
                                                value: params.get("min_confidence") ?? "" })),
    h("label", {}, "confidence ≤", h("input", { name: "max_confidence", type: "number", min: 0, max: 1, step: 0.01,
                                                value: params.get("max_confidence") ?? "" })),
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

function tile(sample) {
  const rows = { [sample.kind]: sample };
  if (sample.pair) rows[sample.pair.kind] = sample.pair;
  const adv = rows.adversarial;
  const figure = (variant, caption) => h("figure", {},
    sample.images[variant]
      ? h("img", { src: sample.images[variant], alt: `${caption} ${sample.source_id}`, loading: "lazy", "data-variant": variant })
      : h("div", { class: "missing", title: "this sample set does not store Q(x)" }, "not stored"),
    h("figcaption", {}, caption));
  return h("div", { class: `tile${adv && !adv.accepted ? " rejected" : ""}`, "data-sample": sample.id },
    h("div", { class: "triplet" }, figure("clean", "clean x"), figure("discretized", "Q(x)"), figure("adversarial", "Q(x')")),
    h("div", { class: "meta" }, h("span", {}, h("strong", {}, sample.class_name), ` · ${sample.source_id}`),
      adv ? h("span", { class: `badge ${adv.accepted ? "yes" : "no"}` }, adv.accepted ? "accepted" : "rejected") : null),
    h("div", { class: "top5" }, top5List("teacher on x", rows.clean, sample.label),
      top5List("teacher on Q(x')", adv, sample.label)));
}

async function setPage(id, params) {
  const s = await api(`/sample-sets/${encodeURIComponent(id)}`);
  const perPage = Math.min(500, Math.max(1, parseInt(params.get("per_page") || PAGE_SIZE, 10)));
  const page = Math.max(1, parseInt(params.get("page") || "1", 10));
  const q = new URLSearchParams({ offset: (page - 1) * perPage, limit: perPage, kind: params.get("kind") || "adversarial" });
  for (const k of ["class", "accepted", "min_confidence", "max_confidence"]) if (params.get(k)) q.set(k, params.get(k));
  const samples = await api(`/sample-sets/${encodeURIComponent(id)}/samples?${q}`);
  const pages = Math.max(1, Math.ceil(samples.count / perPage));
  const toPage = (p) => { const next = new URLSearchParams(params); next.set("page", p); go(["sets", id], next); };
  const pager = () => h("div", { class: "pager" },
    h("button", { disabled: page <= 1, "data-action": "prev", onclick: () => toPage(page - 1) }, "‹ Prev"),
    h("span", { class: "page-info" }, `page ${page} of ${pages} · ${samples.count} samples`),
    h("button", { disabled: page >= pages, "data-action": "next", onclick: () => toPage(page + 1) }, "Next ›"));
  return [h("h1", {}, `Sample set ${s.id}`), lineagePanel(s), filtersForm(s, params), pager(),
    h("div", { class: "grid", id: "samples" }, samples.data.map(tile)),
    samples.count ? pager() : h("p", { class: "muted" }, "No sample matches these filters.")];
}

// -- runs ------------------------------------------------------------------------------------------------------------
async function runsPage(params) {
  const q = new URLSearchParams({ limit: 200 });
  for (const k of ["kind", "status"]) if (params.get(k)) q.set(k, params.get(k));
  const runs = await api(`/runs?${q}`);
  const link = (r) => h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, r.id);
  const nodes = [h("h1", {}, "Runs"),
    runs.count ? h("table", { id: "runs" },
      h("tr", {}, ["run", "kind", "status", "submitted", "finished", "output"].map((c) => h("th", {}, c))),
      runs.data.map((r) => h("tr", { "data-run": r.id }, h("td", {}, link(r)), h("td", {}, r.kind), h("td", {}, status(r.status)),
        h("td", {}, when(r.submitted_at)), h("td", {}, when(r.finished_at)),
        h("td", {}, r.sample_set_id ? h("a", { href: `#/sets/${encodeURIComponent(r.sample_set_id)}` }, r.sample_set_id)
                                    : h("span", { class: "muted" }, r.output_uri)))))
      : h("p", { class: "muted" }, "No run yet.")];
  return { nodes, refreshMs: 3000 };  // live status
}

function metricSeries(records, keys) {
  return keys.map((k) => ({ name: k, points: records.filter((r) => typeof r[k] === "number").map((r) => [r.step, r[k]]) }));
}

function trainCharts(metrics) {
  const steps = metrics.filter((r) => r.type === "step");
  const epochs = metrics.filter((r) => r.type === "epoch");
  const skip = new Set(["type", "step", "epoch", "time", "lr", "images_per_s", "samples_per_s"]);
  const lossKeys = [...new Set(steps.flatMap((r) => Object.keys(r)))].filter((k) => !skip.has(k) && typeof steps.find((r) => k in r)[k] === "number");
  const speedKeys = ["images_per_s", "samples_per_s"].filter((k) => steps.some((r) => k in r));
  const valKeys = [...new Set(epochs.flatMap((r) => Object.keys(r)))].filter((k) => k.startsWith("val_"));
  return h("div", { class: "row" },
    h("div", { class: "panel", id: "loss-chart" }, h("h2", {}, "Loss"), Charts.lines(metricSeries(steps, lossKeys), { xLabel: "step", title: "loss curves" })),
    h("div", { class: "panel", id: "throughput-chart" }, h("h2", {}, "Throughput"), Charts.lines(metricSeries(steps, speedKeys), { xLabel: "step", title: "images per second" })),
    h("div", { class: "panel" }, h("h2", {}, "Validation"), Charts.lines(metricSeries(epochs, valKeys), { xLabel: "step", title: "validation accuracy" })));
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
  const nodes = [h("h1", {}, `Run ${r.id} `, status(r.status), " ",
      TERMINAL.has(r.status) || r.status === "UNKNOWN" ? null
        : h("button", { "data-action": "stop", onclick: () => stopRun(r.id) }, "Stop")),
    h("div", { class: "row" }, h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "kind"), h("dd", {}, r.kind),
      h("dt", {}, "submitted"), h("dd", {}, when(r.submitted_at)),
      h("dt", {}, "started"), h("dd", {}, when(r.started_at)),
      h("dt", {}, "finished"), h("dd", {}, when(r.finished_at)),
      h("dt", {}, "message"), h("dd", {}, r.message || "–"),
      h("dt", {}, "output"), h("dd", {}, r.sample_set_id
        ? h("a", { href: `#/sets/${encodeURIComponent(r.sample_set_id)}` }, `sample set ${r.sample_set_id}`) : r.output_uri),
      h("dt", {}, "command"), h("dd", {}, h("code", {}, r.entrypoint))))),
    r.kind === "generate" ? progressPanel(r.progress) : null,
    r.kind === "train" ? trainCharts(r.metrics) : null,
    h("h2", {}, "Config"), h("pre", {}, JSON.stringify(r.config, null, 2)),
    h("h2", {}, "Log tail"), r.log_tail !== null ? h("pre", { id: "log" }, r.log_tail || "(empty)")
                                                 : h("p", { class: "muted" }, r.log_error || "no logs")];
  return { nodes, refreshMs: TERMINAL.has(r.status) ? 0 : 2000 };
}

// -- results ---------------------------------------------------------------------------------------------------------
async function resultsPage() {
  const res = await api("/results");
  if (!res.count) return [h("h1", {}, "Results"), h("p", { class: "muted" }, "No evaluation yet: submit an eval run.")];
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
  return [h("h1", {}, "Results"), h("p", { class: "muted" }, "top-1 accuracy (%), ImageNet-C: mCE (%, lower is better)"),
    h("table", { id: "results" },
      h("tr", {}, h("th", {}, "run"), h("th", {}, "model"),
        res.suites.map((s) => h("th", { class: "num" }, s + (res.data.find((r) => r.suite === s)?.lower_is_better ? " ↓" : "")))),
      [...byRun].map(([runId, row]) => h("tr", {},
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(runId)}` }, runId)), h("td", {}, row.model),
        res.suites.map((s) => {
          const c = row.cells[s];
          return h("td", { class: `num${c && c.value === best[s] && byRun.size > 1 ? " best" : ""}`,
                           title: c && c.details.ci95 ? `95% CI ${c.details.ci95.map((v) => v.toFixed(1)).join("–")}` : null },
                   c ? c.value.toFixed(1) : "–");
        }))))];
}

// -- router ----------------------------------------------------------------------------------------------------------
async function route() {
  clearTimeout(refreshTimer);
  const token = ++renderToken;
  const { parts, params } = parseHash();
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  let out;
  try {
    if (parts[0] === "sets" && parts[1]) out = await setPage(parts[1], params);
    else if (parts[0] === "runs" && parts[1]) out = await runPage(parts[1]);
    else if (parts[0] === "runs") out = await runsPage(params);
    else if (parts[0] === "results") out = await resultsPage();
    else out = await setsPage();
  } catch (e) {
    out = [h("p", { class: "error" }, String(e.message || e))];
  }
  if (token !== renderToken) return;  // the user navigated on while this page was loading
  const { nodes, refreshMs } = Array.isArray(out) ? { nodes: out, refreshMs: 0 } : out;
  view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  view.dataset.ready = parts.join("/");
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;  // the newest lines
  if (refreshMs) refreshTimer = setTimeout(route, refreshMs);
}

window.addEventListener("hashchange", route);
api("/health").then((hres) => { document.getElementById("auth-banner").hidden = hres.auth !== "disabled"; }).catch(() => {});
route();
