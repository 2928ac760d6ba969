// The basins page: GET /api/basins (gradfit.landscape.basins of gradient descent on the Gabor
// loss), drawn as a heatmap; a click snaps to the nearest start of the map, fits gradient
// descent from it (POST /api/fit, the map's own rule) and shows the minimum of its basin.
"use strict";

// Colours and meanings come with the map (the lecture's basins figure's): each minimum's, and those of
// the codes of starts that reach none (-3 on the plateau, -2 out of the box, -1 still moving).
const NOWHERE = ["-3", "-2", "-1"];
const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const AXIS = { zeroline: false, automargin: true };
const $ = (id) => document.getElementById(id);
const state = { map: null, pick: null };

function say(text) { $("message").textContent = text || ""; }

function gabor(phi, x, s) {
  const z = phi.phi0 + 0.06 * phi.phi1 * x;
  return Math.sin(z) * Math.exp(-(z * z) / s);
}

// One colour band per label: -3, -2, -1, then each minimum.
function colourscale(map) {
  const colours = [...NOWHERE.map((code) => map.nowhere[code].color), ...map.minima.map((m) => m.color)];
  const n = colours.length;
  return colours.flatMap((c, k) => [[k / n, c], [(k + 1) / n, c]]);
}

function describe(label) {
  if (label < 0) return state.map.nowhere[String(label)].label;
  const m = state.map.minima[label];
  return `minimum ${label + 1}: (${m.phi0.toFixed(2)}, ${m.phi1.toFixed(2)}), L = ${m.loss.toFixed(3)}`;
}

function mapTraces() {
  const map = state.map;
  const z = map.labels.map((row) => row.map((k) => k + NOWHERE.length));
  const text = map.labels.map((row) => row.map(describe));
  const traces = [{
    type: "heatmap", x: map.a, y: map.b, z, text, zmin: -0.5, zmax: map.minima.length + NOWHERE.length - 0.5,
    colorscale: colourscale(map), showscale: false, name: "basins",
    hovertemplate: "start (%{x:.2f}, %{y:.2f})<br>%{text}<br>click: follow gradient descent<extra></extra>",
  }, {
    type: "scatter", mode: "markers+text", name: "minima", x: map.minima.map((m) => m.phi0),
    y: map.minima.map((m) => m.phi1), text: map.minima.map((_, k) => String(k + 1)), textposition: "top center",
    marker: { symbol: "star", size: 14, color: "#fff", line: { color: "#111", width: 1.5 } }, hoverinfo: "skip",
  }];
  if (state.pick && state.pick.path) {
    const h = state.pick.path.history;
    traces.push({ type: "scatter", mode: "lines", name: "path", x: h.params.map((p) => p.phi0),
      y: h.params.map((p) => p.phi1), line: { color: "#111", width: 2 }, hoverinfo: "skip" });
    traces.push({ type: "scatter", mode: "markers", name: "start", x: [state.pick.start[0]], y: [state.pick.start[1]],
      marker: { color: "#111", size: 9 }, hoverinfo: "skip" });
  }
  return traces;
}

function drawMap() {
  const map = state.map;
  const layout = { margin: { t: 10, r: 10, b: 40, l: 50 }, hovermode: "closest", dragmode: false, showlegend: false,
    xaxis: { ...AXIS, title: { text: "φ₀" }, range: [map.a[0], map.a.at(-1)] },
    yaxis: { ...AXIS, title: { text: "φ₁" }, range: [map.b[0], map.b.at(-1)] } };
  return Plotly.react("basins", mapTraces(), layout, CONFIG);
}

function drawModel() {
  const data = state.map.data;
  const lo = Math.min(...data.x), hi = Math.max(...data.x);
  const xs = Array.from({ length: 200 }, (_, i) => lo + ((hi - lo) * i) / 199);
  const traces = [{ type: "scatter", mode: "markers", name: "data", x: data.x, y: data.y, marker: { color: "#666" } }];
  const pick = state.pick;
  if (pick && pick.label >= 0) {
    const m = state.map.minima[pick.label];
    traces.push({ type: "scatter", mode: "lines", name: `minimum ${pick.label + 1}`, x: xs,
      y: xs.map((x) => gabor(m, x, state.map.scale)), line: { color: m.color, width: 3 } });
  }
  const layout = { margin: { t: 30, r: 10, b: 40, l: 50 }, showlegend: false,
    title: { text: "the model at the basin's minimum", font: { size: 14 } },
    xaxis: { ...AXIS, title: { text: "x" } }, yaxis: { ...AXIS, title: { text: "y" } } };
  return Plotly.react("model", traces, layout, CONFIG);
}

function drawLoss() {
  const traces = [];
  const pick = state.pick;
  if (pick && pick.path) {
    const h = pick.path.history;
    traces.push({ type: "scatter", mode: "lines", name: "path", x: h.step, y: h.loss, line: { color: "#111", width: 2 } });
    if (pick.label >= 0) {
      const level = state.map.minima[pick.label].loss;
      traces.push({ type: "scatter", mode: "lines", name: "the minimum's loss", x: [h.step[0], h.step.at(-1)],
        y: [level, level], line: { color: state.map.minima[pick.label].color, dash: "dash", width: 2 } });
    }
  }
  const layout = { margin: { t: 30, r: 10, b: 40, l: 60 }, showlegend: false,
    title: { text: "loss L[φ] along the path", font: { size: 14 } },
    xaxis: { ...AXIS, title: { text: "step" } }, yaxis: { ...AXIS, title: { text: "L" }, type: "log", tickformat: "~g" } };
  return Plotly.react("loss", traces, layout, CONFIG);
}

function drawAll() { return Promise.all([drawMap(), drawModel(), drawLoss()]); }

function summarise() {
  const map = state.map;
  const pct = (v) => `${(100 * v).toFixed(0)}%`;
  $("summary").textContent = `gradient descent, α = ${map.lr}, ${map.steps} steps from each of ${map.a.length}² starts: `
    + map.minima.map((m, k) => `${pct(m.share)} reach minimum ${k + 1}`).join(", ") + "; "
    + NOWHERE.map((code) => `${pct(map.nowhere[code].share)} ${map.nowhere[code].label}`).join(", ") + ". "
    + `Far from the data's wave the model is ≈ 0 and the loss is flat at Σy² = ${map.plateau.toPrecision(3)}: `
    + "a start that ends there reached no minimum, only a level stretch of the loss.";
}

async function loadMap() {
  say("computing the basins…");
  const query = new URLSearchParams({ scale: $("scale").value, resolution: $("resolution").value });
  const { ok, body } = await getJSON(`/api/basins?${query}`);
  if (!ok) { say(body.detail); return; }
  say("");
  state.map = body;
  state.pick = null;
  $("picked").textContent = "Click a basin.";
  summarise();
  await drawAll();
}

// The map's start nearest the mouse: (i, j) with a[i], b[j].
function nearestStart(mouse) {
  const box = document.querySelector("#basins .nsewdrag").getBoundingClientRect();
  const { a, b } = state.map;
  const fx = (mouse.clientX - box.left) / box.width, fy = (box.bottom - mouse.clientY) / box.height;
  const nearest = (axis, f) => Math.min(axis.length - 1, Math.max(0, Math.round(f * (axis.length - 1))));
  return [nearest(a, fx), nearest(b, fy)];
}

async function pick(mouse) {
  const [i, j] = nearestStart(mouse);
  const map = state.map;
  const start = [map.a[i], map.b[j]];
  const label = map.labels[j][i];
  state.pick = { i, j, start, label, path: null };
  $("picked").textContent = `start (${start.map((v) => v.toFixed(2)).join(", ")}) → ${describe(label)}`;
  Object.assign($("picked").dataset, { label: String(label), i: String(i), j: String(j) });
  say("following gradient descent…");
  const body = { model: "gabor", scale: map.scale, optimizer: map.optimizer, lr: map.lr, steps: map.steps, tol: 0,
    init: start };
  const response = await fetch("/api/fit", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) { say(answer.detail); return; }
  say("");
  if (state.pick && state.pick.i === i && state.pick.j === j) state.pick.path = answer;
  await drawAll();
  document.body.dataset.picks = String(Number(document.body.dataset.picks || 0) + 1); // lets a test wait
}

// A JSON answer as {ok, body}; the page's first request may already be on its way (page.html).
function getJSON(url) {
  const early = window.gradfitEarly;
  if (early && early.url === url) { window.gradfitEarly = null; return early.answer; }
  return fetch(url).then(async (r) => ({ ok: r.ok, body: await r.json() }));
}

function init() {
  $("scale").addEventListener("change", loadMap);
  $("resolution").addEventListener("change", loadMap);
  loadMap().then(() => {
    $("basins").on("plotly_click", (event) => pick(event.event));
    document.body.dataset.ready = "yes";
  });
}

init();
