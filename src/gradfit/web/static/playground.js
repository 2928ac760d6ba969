// The playground: a loss surface to click, the fits started there, and a step slider.
// Every fit is POST /api/fit (the JSON of `gradfit fit --json`); nothing is computed here
// but the model's curve at one step, from the formula the server's model uses. The data is
// built in, or a CSV uploaded by POST /api/data and then named by its id.
"use strict";
performance.mark("gradfit:plotly"); // deferred scripts run in order: plotly.js has just been evaluated

// Okabe-Ito, colour-blind safe; yellow last, as it is faint on a pale surface.
const COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"];
const VARIANTS = {
  gd: ["slides"], sgd: ["slides"], momentum: ["slides", "heavy-ball"],
  nesterov: ["slides", "book", "torch"], normalized: ["slides"], adam: ["slides", "standard"],
  rmsprop: ["standard"], adagrad: ["standard"], adamw: ["standard"],
};
const PROBLEMS = {
  gabor8: { model: "gabor", scale: 8 },
  gabor32: { model: "gabor", scale: 32 },
  linear: { model: "linear", scale: 8 },
  // the counts against one feature of the hour, fitted as a regression model (gradfit fit --x hour_cos)
  poisson: { model: "poisson", scale: 8, fit: { model: "linear", loss: "poisson", builtin: "pedestrians", x: "hour_cos" } },
};
// The same models on an uploaded CSV's x and y columns (a Poisson fit is a regression model).
const UPLOADED = {
  "upload-linear": { model: "linear", scale: 8, fit: { model: "linear" } },
  "upload-gabor8": { model: "gabor", scale: 8, fit: { model: "gabor" } },
  "upload-gabor32": { model: "gabor", scale: 32, fit: { model: "gabor" } },
  "upload-poisson": { model: "poisson", scale: 8, fit: { model: "linear", loss: "poisson" } },
};
const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const AXIS = { zeroline: false, automargin: true };

const $ = (id) => document.getElementById(id);
const state = { problem: null, surface: null, runs: [], step: 0, playing: false, upload: null };

function say(text) { $("message").textContent = text || ""; }

// The two parameters' names, as the fit's JSON names them.
function names() { return state.surface.labels; }

// The model's prediction at x for parameters phi, as gradfit.models defines it.
function predict(problem, phi, x) {
  const [a, b] = names().map((n) => phi[n]);
  if (problem.model === "linear") return a + b * x;
  if (problem.model === "poisson") return Math.exp(a + b * x); // the expected count, λ
  const z = a + 0.06 * b * x;
  return Math.sin(z) * Math.exp(-(z * z) / problem.scale);
}

function settings() {
  const body = { model: state.problem.model, steps: Number($("steps").value) || 1000, lr: Number($("lr").value),
    ...state.problem.fit };
  if (state.problem.model === "gabor") body.scale = state.problem.scale;
  if ($("optimizer")) body.optimizer = $("optimizer").value;
  if ($("variant") && $("variant").selectedIndex > 0) body.variant = $("variant").value;
  for (const name of ["beta", "gamma", "eps", "batch_size"]) {
    if ($(name) && $(name).value !== "") body[name] = Number($(name).value);
  }
  if ($("schedule") && $("schedule").value !== "constant") body.schedule = $("schedule").value;
  return body;
}

// The history row shown for step slider position k (a short run stays at its end).
function rowAt(run, k) { return Math.min(k, run.result.history.params.length - 1); }

function surfaceTraces() {
  const s = state.surface;
  const traces = [{
    type: "contour", x: s.a, y: s.b, z: s.logLoss, name: "loss surface",
    hovertemplate: `${s.titles[0]} %{x:.2f}<br>${s.titles[1]} %{y:.2f}<br>${s.zTitle} %{z:.3f}`
      + "<br>click: start a fit here<extra></extra>",
    colorscale: [[0, "#2b4c6f"], [0.35, "#9fb4c8"], [1, "#f4f6f8"]], ncontours: 30,
    contours: { coloring: "fill", showlines: true }, line: { color: "rgba(255,255,255,0.35)", width: 0.5 },
    colorbar: { title: { text: s.zTitle, side: "right" }, thickness: 12 },
  }];
  const [a, b] = names();
  for (const run of state.runs) {
    const h = run.result.history;
    const k = rowAt(run, state.step);
    traces.push({
      type: "scatter", mode: "lines", name: `run ${run.id}`, x: h.params.map((p) => p[a]),
      y: h.params.map((p) => p[b]), line: { color: run.colour, width: 2, dash: run.dash }, hoverinfo: "skip",
      showlegend: false,
    });
    traces.push({
      type: "scatter", mode: "markers", name: `run ${run.id} at step`, meta: { run: run.id, row: k },
      x: [h.params[k][a]], y: [h.params[k][b]], showlegend: false, hoverinfo: "x+y+name",
      marker: { color: run.colour, size: 11, symbol: run.symbol, line: { color: "#111", width: 1.5 } },
    });
  }
  return traces;
}

function drawSurface() {
  const layout = {
    margin: { t: 10, r: 10, b: 40, l: 50 }, hovermode: "closest", dragmode: false,
    xaxis: { ...AXIS, title: { text: state.surface.titles[0] }, range: [state.surface.a[0], state.surface.a.at(-1)] },
    yaxis: { ...AXIS, title: { text: state.surface.titles[1] }, range: [state.surface.b[0], state.surface.b.at(-1)] },
  };
  return Plotly.react("surface", surfaceTraces(), layout, CONFIG);
}

function drawModel() {
  const data = state.surface.data;
  const lo = Math.min(...data.x), hi = Math.max(...data.x);
  const xs = Array.from({ length: 200 }, (_, i) => lo + ((hi - lo) * i) / 199);
  const many = data.x.length > 200;
  const traces = [{ type: "scatter", mode: "markers", name: "data", x: data.x, y: data.y,
    marker: { color: "#666", size: many ? 4 : 6, opacity: many ? 0.25 : 1 }, showlegend: false }];
  for (const run of state.runs) {
    const phi = run.result.history.params[rowAt(run, state.step)];
    traces.push({ type: "scatter", mode: "lines", name: `run ${run.id}`, x: xs,
      y: xs.map((x) => predict(state.problem, phi, x)), line: { color: run.colour, width: 2, dash: run.dash },
      showlegend: false });
  }
  const layout = { margin: { t: 30, r: 10, b: 40, l: 50 }, title: { text: "model over the data", font: { size: 14 } },
    xaxis: { ...AXIS, title: { text: data.x_label } }, yaxis: { ...AXIS, title: { text: data.y_label } } };
  return Plotly.react("model", traces, layout, CONFIG);
}

function drawLoss() {
  const traces = [];
  for (const run of state.runs) {
    const h = run.result.history;
    const k = rowAt(run, state.step);
    traces.push({ type: "scatter", mode: "lines", name: `run ${run.id}`, x: h.step, y: h.loss,
      line: { color: run.colour, width: 2, dash: run.dash }, showlegend: false });
    traces.push({ type: "scatter", mode: "markers", name: `run ${run.id} at step`, x: [h.step[k]], y: [h.loss[k]],
      marker: { color: run.colour, size: 9, symbol: run.symbol, line: { color: "#111", width: 1 } }, showlegend: false });
  }
  // a log scale where every loss is positive; a Poisson loss without its log y! terms is not
  const positive = state.runs.every((run) => run.result.history.loss.every((v) => v > 0));
  const layout = { margin: { t: 30, r: 10, b: 40, l: 60 }, title: { text: "loss L[φ] by step", font: { size: 14 } },
    xaxis: { ...AXIS, title: { text: "step" } },
    yaxis: { ...AXIS, title: { text: "L" }, type: positive ? "log" : "linear", tickformat: "~g" } };
  return Plotly.react("loss", traces, layout, CONFIG);
}

function drawAll() {
  const longest = Math.max(0, ...state.runs.map((r) => r.result.history.params.length - 1));
  $("step").max = String(longest);
  state.step = Math.min(state.step, longest);
  $("step").value = String(state.step);
  const run = state.runs.at(-1);
  $("step-label").value = run ? `step ${run.result.history.step[rowAt(run, state.step)]}` : "0";
  return Promise.all([drawSurface(), drawModel(), drawLoss()]);
}

function listRuns() {
  $("runs").replaceChildren(...state.runs.map((run) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = run.colour;
    const r = run.result;
    const opt = r.optimizer.name || run.settings.optimizer;
    item.append(swatch, `run ${run.id}: ${opt} α=${run.settings.lr} from (${run.start.map((v) => v.toFixed(2))}) — `
      + `${r.status}, L=${Number(r.loss).toPrecision(5)} after ${r.steps} steps`);
    item.title = r.stopped;
    return item;
  }));
}

// The problem the select names; an uploaded one carries its data's id into every request.
function chosenProblem() {
  const value = $("problem").value;
  if (!(value in UPLOADED)) return PROBLEMS[value];
  const problem = UPLOADED[value];
  return { ...problem, data: state.upload.id, fit: { ...problem.fit, data: state.upload.id } };
}

// A JSON answer as {ok, body}; the page's first request may already be on its way (page.html).
function getJSON(url) {
  const early = window.gradfitEarly;
  if (early && early.url === url) { window.gradfitEarly = null; return early.answer; }
  return fetch(url).then(async (r) => ({ ok: r.ok, body: await r.json() }));
}

async function loadSurface() {
  state.problem = chosenProblem();
  const query = new URLSearchParams({ model: state.problem.model, scale: state.problem.scale });
  if (state.problem.data) query.set("data", state.problem.data);
  const { ok, body } = await getJSON(`/api/surface?${query}`);
  performance.mark("gradfit:data");
  if (!ok) { say(body.detail); return; }
  say("");
  // log10 L spreads the colours; a loss that is not positive everywhere (Poisson without its
  // log y! terms) is shifted by its least value on the grid first.
  // (null: a loss too large for a number, left as a gap)
  const least = Math.min(...body.loss.flat().filter((v) => v !== null));
  const shift = least > 0 ? 0 : 1 - least;
  body.logLoss = body.loss.map((row) => row.map((v) => (v === null ? null : Math.log10(v + shift))));
  body.zTitle = shift ? "log₁₀(L − L_min + 1)" : "log₁₀ L";
  body.titles = body.labels[0] === "phi0" ? ["φ₀", "φ₁"] : body.labels; // named coefficients keep their names
  state.surface = body;
  state.runs = [];
  state.step = 0;
  listRuns();
  await drawAll();
}

let nextRun = 1;
// One fit per rule ticked on the Compare page, else the one the settings describe.
function requests(start) {
  const base = { ...settings(), init: start };
  if (document.body.dataset.page !== "compare") return [base];
  const ticked = [...document.querySelectorAll("#rules input:checked")].map((box) => box.value);
  return ticked.map((name) => {
    const body = { ...base, optimizer: name };
    delete body.variant;
    return body;
  });
}

// Compare keeps one colour, dash and marker per rule, so paths that overlap stay apart;
// the playground gives each new run the next colour.
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "triangle-down", "star", "hexagon", "cross"];
function lookFor(id, body) {
  if (document.body.dataset.page !== "compare") {
    return { colour: COLOURS[(id - 1) % COLOURS.length], dash: "solid", symbol: "circle" };
  }
  const i = Object.keys(VARIANTS).filter((o) => o !== "sgd").indexOf(body.optimizer);
  return { colour: COLOURS[i % COLOURS.length], dash: DASHES[i % DASHES.length], symbol: SYMBOLS[i % SYMBOLS.length] };
}

async function startFit(start) {
  say("fitting…");
  const bodies = requests(start);
  const answers = await Promise.all(bodies.map(async (body) => {
    const response = await fetch("/api/fit", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    return { body, ok: response.ok, result: await response.json() };
  }));
  const failed = answers.find((a) => !a.ok);
  say(failed ? failed.result.detail : answers.map((a) => (a.result.status === "diverged" ? a.result.stopped : ""))
    .filter(Boolean).join("; "));
  for (const { body, ok, result } of answers) {
    if (!ok) continue;
    const id = nextRun++;
    state.runs.push({ id, ...lookFor(id, body), settings: body, start, result });
  }
  state.step = Math.max(0, ...state.runs.map((r) => r.result.history.params.length - 1));
  listRuns();
  await drawAll();
  document.body.dataset.runs = String(state.runs.length); // lets a test wait for finished fits
}

// (φ₀, φ₁) under the mouse, from the plot area's box and the axes' ranges. Plotly's own
// click point is the last hover point, which lags a quick click by up to a frame or two.
function clickedPoint(mouse) {
  const box = document.querySelector("#surface .nsewdrag").getBoundingClientRect();
  const [x0, x1] = $("surface").layout.xaxis.range;
  const [y0, y1] = $("surface").layout.yaxis.range;
  const fx = (mouse.clientX - box.left) / box.width, fy = (box.bottom - mouse.clientY) / box.height;
  const round = (v) => Math.round(v * 1000) / 1000;
  return [round(x0 + fx * (x1 - x0)), round(y0 + fy * (y1 - y0))];
}

// Upload the chosen CSV with the chosen columns (the first and last by default), then fit on it.
async function upload(columns) {
  const file = $("csv").files[0];
  if (!file) return;
  const most = Number($("csv").dataset.maxBytes);
  if (file.size > most) {
    say(`${file.name} is ${(file.size / 1024).toFixed(0)} KiB; an upload may be at most ${most / 1024} KiB: `
      + "upload a sample of the rows");
    return;
  }
  say("reading the file…");
  const query = new URLSearchParams({ name: file.name, ...columns });
  const response = await fetch(`/api/data?${query}`, { method: "POST", headers: { "Content-Type": "text/csv" },
    body: file });
  const body = await response.json();
  if (!response.ok) { say(body.detail); return; }
  state.upload = body;
  for (const [id, chosen] of [["x-column", body.x], ["y-column", body.y]]) {
    $(id).replaceChildren(...body.columns.map((c) => new Option(c, c, c === chosen, c === chosen)));
  }
  $("columns").hidden = false;
  $("upload-group").hidden = $("upload-group").disabled = false;
  $("upload-group").label = `your CSV: ${body.name} (${body.rows} rows)`;
  if (!($("problem").value in UPLOADED)) $("problem").value = "upload-linear";
  await loadSurface();
  document.body.dataset.upload = body.id; // lets a test wait for the upload
}

function fillVariants() {
  $("variant").replaceChildren(...VARIANTS[$("optimizer").value].map((v) => new Option(v, v)));
}

function play() {
  if (state.playing) { state.playing = false; $("play").textContent = "Play"; return; }
  state.playing = true;
  $("play").textContent = "Pause";
  const last = Number($("step").max);
  if (state.step >= last) state.step = 0;
  const stride = Math.max(1, Math.round(last / 200)); // about 200 frames, whatever the run's length
  const frame = () => {
    if (!state.playing) return;
    state.step = Math.min(last, state.step + stride);
    drawAll().then(() => {
      if (state.step < last) requestAnimationFrame(frame); else play();
    });
  };
  requestAnimationFrame(frame);
}

function init() {
  if ($("optimizer")) {
    $("optimizer").replaceChildren(...Object.keys(VARIANTS).map((o) => new Option(o, o, o === "adam", o === "adam")));
    fillVariants();
    $("optimizer").addEventListener("change", fillVariants);
  }
  $("problem").addEventListener("change", () => loadSurface());
  $("csv").addEventListener("change", () => upload({}));
  for (const id of ["x-column", "y-column"]) {
    $(id).addEventListener("change", () => upload({ x: $("x-column").value, y: $("y-column").value }));
  }
  $("clear").addEventListener("click", () => { state.runs = []; state.step = 0; listRuns(); drawAll(); });
  $("play").addEventListener("click", play);
  $("step").addEventListener("input", () => { state.step = Number($("step").value); drawAll(); });
  loadSurface().then(() => {
    performance.mark("gradfit:drawn");
    $("surface").on("plotly_click", (event) => startFit(clickedPoint(event.event)));
    document.body.dataset.ready = "yes";
  });
}

init();
