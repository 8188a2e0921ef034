// Tiny inline-SVG charts (no build step, no library): a bar chart and a multi-series line chart with
// "nice" axis ticks, an optional right axis, vertical markers (epochs) and a hover read-out of every series.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fdf", "#e07b39", "#1c8a4a", "#9b59b6", "#c0392b", "#16a2b8", "#7f8c8d", "#d4ac0d"];

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (!isFinite(v)) return "";
    if (Number.isInteger(v) && Math.abs(v) < 1e5) return String(v);
    const a = Math.abs(v);
    if (a >= 1e5) return v.toExponential(1);
    return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : a === 0 ? "0" : v.toPrecision(2);
  }

  // Round tick values (1, 2, 2.5, 5 x 10^k) covering [lo, hi]: about `count` of them, labels without noise.
  function niceTicks(lo, hi, count = 5) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
    return { ticks, lo: start, hi: end, step };
  }

  // As many decimals as the step has (0.25 -> 2), so neighbouring labels never round to the same text.
  const decimals = (step) => Math.min(6, (String(Number(step.toPrecision(12))).split(".")[1] || "").length);
  const tickLabel = (v, step) => (step >= 1 ? fmt(v) : v.toFixed(decimals(step)));

  // items: [{label, value (0..max)}]; a labelled bar per item, values as percentages when opts.percent.
  function bars(items, opts = {}) {
    const w = opts.width || 560, barH = 18, gap = 6, left = 110, right = 100;
    const h = items.length * (barH + gap) + 10;
    const max = opts.max || Math.max(1e-9, ...items.map((d) => d.value));
    const svg = el("svg", { class: "chart bars", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": opts.title || "bar chart" });
    items.forEach((d, i) => {
      const y = 5 + i * (barH + gap), bw = Math.max(0, (w - left - right) * d.value / max);
      svg.append(el("text", { x: left - 6, y: y + barH - 5, "text-anchor": "end" }, d.label));
      svg.append(el("rect", { x: left, y, width: w - left - right, height: barH, fill: "#eef0f3", rx: 3 }));
      svg.append(el("rect", { x: left, y, width: bw, height: barH, fill: COLORS[0], rx: 3, class: "bar" }));
      const v = opts.percent ? `${(100 * d.value).toFixed(1)}%` : fmt(d.value);
      svg.append(el("text", { x: left + (w - left - right) + 6, y: y + barH - 5 }, v + (d.note ? ` ${d.note}` : "")));
    });
    return svg;
  }

  const finitePoints = (s) => s.points.filter(([x, y]) => isFinite(x) && isFinite(y));

  function yScale(series, opts, top, bottom) {
    const pts = series.flatMap(finitePoints);
    if (!pts.length) return null;
    let lo = opts.min ?? Math.min(...pts.map((p) => p[1])), hi = opts.max ?? Math.max(...pts.map((p) => p[1]));
    if (opts.zero !== false) lo = Math.min(0, lo);
    const t = niceTicks(lo, hi, 4);
    if (opts.min !== undefined) t.lo = opts.min;
    if (opts.max !== undefined) t.hi = opts.max;
    t.ticks = t.ticks.filter((v) => v >= t.lo - 1e-12 && v <= t.hi + 1e-12);
    t.Y = (y) => bottom - (bottom - top) * (y - t.lo) / (t.hi - t.lo || 1);
    return t;
  }

  // Nearest point of a series (sorted by x) to x, by binary search.
  function nearest(points, x) {
    let a = 0, b = points.length - 1;
    while (b - a > 1) { const m = (a + b) >> 1; if (points[m][0] < x) a = m; else b = m; }
    return Math.abs(points[a][0] - x) <= Math.abs(points[b][0] - x) ? points[a] : points[b];
  }

  // series: [{name, points: [[x, y], ...], axis?: "right", color?}]
  // opts: {xLabel, yLabel, rightLabel, right: {min, max, zero}, markers: [{x, label}], integerX, title, width, height}
  function lines(series, opts = {}) {
    const w = opts.width || 560, h = opts.height || 240;
    const hasRight = series.some((s) => s.axis === "right" && finitePoints(s).length);
    const m = { l: 56, r: hasRight ? 52 : 14, t: 12, b: 38 };
    const wrap = document.createElement("div");
    wrap.className = "chart-wrap";
    const all = series.flatMap(finitePoints);
    if (!all.length) { wrap.className = "muted"; wrap.textContent = opts.empty || "no data yet"; return wrap; }
    const xt = niceTicks(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), 5);
    if (opts.integerX && !Number.isInteger(xt.step)) {  // epochs: no 1.2 or 2.5 ticks, whole steps instead
      xt.step = Math.ceil(xt.step);
      xt.ticks = [];
      for (let v = Math.ceil(xt.lo / xt.step) * xt.step; v <= xt.hi; v += xt.step) xt.ticks.push(v);
    }
    const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(x0 + 1e-9, ...all.map((p) => p[0]));
    const X = (x) => m.l + (w - m.l - m.r) * (x - x0) / (x1 - x0 || 1);
    const left = yScale(series.filter((s) => s.axis !== "right"), opts, m.t, h - m.b);
    const right = hasRight ? yScale(series.filter((s) => s.axis === "right"), opts.right || {}, m.t, h - m.b) : null;
    const svg = el("svg", { class: "chart lines", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": opts.title || "line chart" });
    // grid and ticks
    if (left) for (const v of left.ticks) {
      svg.append(el("line", { class: "grid", x1: m.l, x2: w - m.r, y1: left.Y(v), y2: left.Y(v) }));
      svg.append(el("text", { class: "tick y", x: m.l - 5, y: left.Y(v) + 3, "text-anchor": "end" }, tickLabel(v, left.step)));
    }
    if (right) for (const v of right.ticks) {
      svg.append(el("text", { class: "tick y2", x: w - m.r + 5, y: right.Y(v) + 3, "text-anchor": "start" }, tickLabel(v, right.step)));
    }
    for (const v of xt.ticks.filter((v) => v >= x0 && v <= x1)) {
      svg.append(el("line", { class: "axis", x1: X(v), x2: X(v), y1: h - m.b, y2: h - m.b + 4 }));
      svg.append(el("text", { class: "tick x", x: X(v), y: h - m.b + 15, "text-anchor": "middle" }, tickLabel(v, xt.step)));
    }
    svg.append(el("line", { class: "axis", x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b }));
    svg.append(el("line", { class: "axis", x1: m.l, y1: m.t, x2: m.l, y2: h - m.b }));
    if (right) svg.append(el("line", { class: "axis", x1: w - m.r, y1: m.t, x2: w - m.r, y2: h - m.b }));
    if (opts.xLabel) svg.append(el("text", { class: "axis-label", x: (w + m.l - m.r) / 2, y: h - 4, "text-anchor": "middle" }, opts.xLabel));
    if (opts.yLabel) svg.append(el("text", { class: "axis-label", x: 12, y: (h - m.b + m.t) / 2, "text-anchor": "middle",
                                             transform: `rotate(-90 12 ${(h - m.b + m.t) / 2})` }, opts.yLabel));
    if (right && opts.rightLabel) svg.append(el("text", { class: "axis-label right", x: w - 8, y: (h - m.b + m.t) / 2,
      "text-anchor": "middle", transform: `rotate(90 ${w - 8} ${(h - m.b + m.t) / 2})` }, opts.rightLabel));
    // markers (epoch boundaries)
    for (const mk of opts.markers || []) {
      if (!(mk.x >= x0 && mk.x <= x1)) continue;
      svg.append(el("line", { class: "marker", x1: X(mk.x), x2: X(mk.x), y1: m.t, y2: h - m.b }));
      if (mk.label) svg.append(el("text", { class: "marker-label", x: X(mk.x) - 3, y: m.t + 9, "text-anchor": "end" }, mk.label));
    }
    // series
    const legend = document.createElement("div");
    legend.className = "legend";
    const drawn = [];
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const good = finitePoints(s).sort((a, b) => a[0] - b[0]);
      const scale = s.axis === "right" ? right : left;
      if (!good.length || !scale) return;
      const d = good.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${scale.Y(y).toFixed(1)}`).join(" ");
      svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 1.6, class: `series${s.axis === "right" ? " right" : ""}`,
                              "stroke-dasharray": s.axis === "right" ? "5 3" : null, "data-name": s.name }));
      if (good.length === 1) svg.append(el("circle", { cx: X(good[0][0]), cy: scale.Y(good[0][1]), r: 3, fill: color }));
      const item = document.createElement("span");
      item.style.setProperty("--c", color);
      item.textContent = s.name + (s.axis === "right" ? " (right axis)" : "");
      legend.append(item);
      drawn.push({ name: s.name, color, points: good, scale });
    });
    // hover read-out: a vertical rule at the nearest x and each series' value there
    const rule = el("line", { class: "hover-rule", x1: 0, x2: 0, y1: m.t, y2: h - m.b, visibility: "hidden" });
    const dots = drawn.map((s) => el("circle", { r: 3, fill: s.color, visibility: "hidden", class: "hover-dot" }));
    svg.append(rule, ...dots);
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    const hit = el("rect", { x: m.l, y: m.t, width: w - m.l - m.r, height: h - m.t - m.b, fill: "transparent", class: "hit" });
    svg.append(hit);
    hit.addEventListener("mousemove", (ev) => {
      const box = svg.getBoundingClientRect();
      const px = (ev.clientX - box.left) * (w / box.width);
      const xv = x0 + (px - m.l) / (w - m.l - m.r) * (x1 - x0);
      const near = drawn.map((s) => nearest(s.points, xv));
      const xs = near.reduce((best, p) => (Math.abs(p[0] - xv) < Math.abs(best - xv) ? p[0] : best), near[0][0]);
      rule.setAttribute("x1", X(xs)); rule.setAttribute("x2", X(xs)); rule.setAttribute("visibility", "visible");
      const lines = [`${opts.xLabel || "x"} ${fmt(xs)}`];
      drawn.forEach((s, i) => {
        const p = near[i];
        const show = p[0] === xs;
        dots[i].setAttribute("visibility", show ? "visible" : "hidden");
        if (!show) return;
        dots[i].setAttribute("cx", X(p[0])); dots[i].setAttribute("cy", s.scale.Y(p[1]));
        lines.push(`${s.name}: ${fmt(p[1])}`);
      });
      tip.replaceChildren(...lines.map((t, i) => { const d = document.createElement("div"); d.textContent = t; if (!i) d.className = "tip-x"; return d; }));
      tip.hidden = false;
      tip.style.left = `${Math.min(X(xs) * box.width / w + 10, box.width - 150)}px`;
      tip.style.top = `${m.t}px`;
    });
    hit.addEventListener("mouseleave", () => {
      tip.hidden = true;
      rule.setAttribute("visibility", "hidden");
      dots.forEach((d) => d.setAttribute("visibility", "hidden"));
    });
    wrap.append(svg, tip, legend);
    return wrap;
  }

  return { bars, lines, niceTicks };
})();
