// MESP console: plain JavaScript, no dependencies, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
let examples = [];

async function getJSON(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error && body.error.message ? body.error.message : `HTTP ${r.status}`);
  return body;
}

function sparkline(values, w, h) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const pts = values.map((v, i) => `${(i / (values.length - 1)) * w},${h - ((v - lo) / span) * (h - 2) - 1}`);
  const p = document.createElementNS(ns, "polyline");
  p.setAttribute("points", pts.join(" ")); p.setAttribute("class", "forecast"); p.setAttribute("fill", "none");
  p.setAttribute("stroke", "#1f6feb");
  svg.appendChild(p);
  return svg;
}

async function loadClusters() {
  const [cl, ex] = await Promise.all([getJSON("/v1/clusters"), getJSON("/v1/experts")]);
  const byCluster = {};
  for (const e of ex.experts || []) byCluster[e.cluster] = e;
  const tbody = document.querySelector("#clusters tbody");
  tbody.replaceChildren();
  for (const c of cl.clusters) {
    const e = byCluster[c.id] || {};
    const tr = document.createElement("tr");
    const cells = [`${c.id}`, null, `${c.size}`, c.threshold.toFixed(3), e.family || "-",
      e.val_mae !== undefined ? e.val_mae.toFixed(3) : "-",
      e.dense_val_mae !== undefined ? e.dense_val_mae.toFixed(3) : "-", e.serve || "dense"];
    cells.forEach((text, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (text === null) {
        const s = sparkline(c.centroid, 240, 40);
        s.setAttribute("role", "img");
        s.setAttribute("aria-label", `centroid shape of cluster ${c.id}`);
        td.appendChild(s);
      } else td.textContent = text;
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
  $("dense").textContent = `Dense model: ${ex.dense.family}, input ${ex.dense.input_len} minutes, validation MAE ${ex.dense.val_mae.toFixed(3)}; loaded ${new Date(ex.loaded_at).toLocaleString()}.`;
}

function fillTable(id, obj) {
  const tbody = document.querySelector(`#${id} tbody`);
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(obj).sort()) {
    const tr = document.createElement("tr");
    const a = document.createElement("td"); a.textContent = k;
    const b = document.createElement("td"); b.textContent = v;
    tr.append(a, b); tbody.appendChild(tr);
  }
}

async function loadStats() {
  try {
    const s = await getJSON("/v1/stats");
    fillTable("requests", s.requests);
    fillTable("routes", s.routes);
    const r = s.last_reload;
    $("reload").textContent = r && r.at ? `Last reload (${r.trigger}): ${r.ok ? "ok" : "refused: " + r.error}` : "";
  } catch (e) { /* the next poll retries */ }
}

async function loadExamples() {
  const ex = await getJSON("/v1/examples");
  examples = ex.examples || [];
  const sel = $("example");
  examples.forEach((e, i) => {
    const o = document.createElement("option");
    o.value = String(i); o.textContent = `${e.label} (${e.id.slice(0, 10)}…)`;
    sel.appendChild(o);
  });
  sel.addEventListener("change", () => {
    const e = examples[Number(sel.value)];
    if (e) $("counts").value = e.counts.slice(0, 1200).join(", ");
  });
}

function drawChart(history, forecast) {
  const svg = $("chart");
  for (const el of [...svg.querySelectorAll("polyline, line, text.label")]) el.remove();
  const ns = "http://www.w3.org/2000/svg";
  const h = history.slice(-240);
  const all = h.concat(forecast);
  const W = 900, H = 280, pad = 30;
  const hi = Math.max(1, ...all);
  const x = (i) => pad + (i / (all.length - 1)) * (W - 2 * pad);
  const y = (v) => H - pad - (v / hi) * (H - 2 * pad);
  const line = (vals, offset, cls) => {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", vals.map((v, i) => `${x(i + offset)},${y(v)}`).join(" "));
    p.setAttribute("class", cls);
    svg.appendChild(p);
  };
  const axis = document.createElementNS(ns, "line");
  axis.setAttribute("x1", x(h.length - 1)); axis.setAttribute("x2", x(h.length - 1));
  axis.setAttribute("y1", pad); axis.setAttribute("y2", H - pad); axis.setAttribute("class", "axis");
  svg.appendChild(axis);
  line(h, 0, "history");
  line([h[h.length - 1]].concat(forecast), h.length - 1, "forecast");
  const t = document.createElementNS(ns, "text");
  t.setAttribute("x", 4); t.setAttribute("y", 14); t.setAttribute("class", "label");
  t.textContent = `max ${hi.toFixed(1)} invocations/minute`;
  svg.appendChild(t);
  $("chart-title").textContent = `History and 60-minute forecast; forecast mean ${(forecast.reduce((a, b) => a + b, 0) / forecast.length).toFixed(2)} per minute`;
}

function drawProbabilities(p, threshold, warm) {
  const svg = $("pchart");
  for (const el of [...svg.querySelectorAll("rect, line, text.label")]) el.remove();
  const ns = "http://www.w3.org/2000/svg";
  const W = 900, H = 160, pad = 30;
  const bw = (W - 2 * pad) / p.length;
  const y = (v) => H - pad - v * (H - 2 * pad);
  p.forEach((v, i) => {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", pad + i * bw + 1); r.setAttribute("width", Math.max(1, bw - 2));
    r.setAttribute("y", y(v)); r.setAttribute("height", H - pad - y(v));
    r.setAttribute("class", warm[i] ? "p warm" : "p");
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `minute +${i + 1}: p_invoke ${v.toFixed(3)}${warm[i] ? ", warm" : ""}`;
    r.appendChild(tip);
    svg.appendChild(r);
  });
  const th = document.createElementNS(ns, "line");
  th.setAttribute("x1", pad); th.setAttribute("x2", W - pad);
  th.setAttribute("y1", y(threshold)); th.setAttribute("y2", y(threshold)); th.setAttribute("class", "threshold");
  svg.appendChild(th);
  const t = document.createElementNS(ns, "text");
  t.setAttribute("x", 4); t.setAttribute("y", 14); t.setAttribute("class", "label");
  t.textContent = `p_invoke (0..1), threshold ${threshold.toFixed(3)}, warm ${warm.filter(Boolean).length} of ${warm.length} minutes`;
  svg.appendChild(t);
  $("pfigure").hidden = false;
}

$("explorer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("explorer-error").textContent = "";
  const counts = $("counts").value.split(/[\s,]+/).filter((s) => s !== "").map(Number);
  if (counts.some((v) => !Number.isFinite(v) || v < 0)) {
    $("explorer-error").textContent = "Counts must be non-negative numbers.";
    return;
  }
  try {
    // The pre-warm answer carries the forecast too; a model set without
    // p_invoke models answers 501 there, and the forecast alone is drawn.
    const body = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: "console", counts }) };
    let f, prewarm = null;
    try {
      prewarm = (await getJSON("/v1/prewarm", body)).functions[0];
      f = { ...prewarm, model: prewarm.forecast_model, kind: prewarm.kind, family: "" };
    } catch (e) {
      if (!String(e.message).includes("p_invoke")) throw e;
      f = (await getJSON("/v1/forecast", body)).forecasts[0];
    }
    $("route-cluster").textContent = f.cluster;
    $("route-distance").textContent = f.distance.toFixed(3);
    $("route-ood").textContent = f.out_of_distribution ? ", out of distribution" : "";
    $("route-model").textContent = prewarm
      ? `${prewarm.forecast_model} (counts) and ${prewarm.model} (p_invoke, ${prewarm.kind})`
      : `${f.model} (${f.kind}, ${f.family})`;
    $("result").hidden = false;
    drawChart(counts, f.forecast);
    if (prewarm) drawProbabilities(prewarm.p_invoke, prewarm.threshold, prewarm.warm);
    else $("pfigure").hidden = true;
    loadStats();
  } catch (e) {
    $("explorer-error").textContent = e.message;
  }
});

loadClusters().catch((e) => { $("dense").textContent = `Could not load clusters: ${e.message}`; });
loadExamples().catch(() => {});
loadStats();
setInterval(loadStats, 3000);
