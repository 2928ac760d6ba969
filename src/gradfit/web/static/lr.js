// The learning-rate page: POST /api/sweep, then final loss against α, one colour per start.
"use strict";

const COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"];
const PROBLEMS = { gabor8: { model: "gabor", scale: 8 }, gabor32: { model: "gabor", scale: 32 },
  linear: { model: "linear", scale: 8 } };
const $ = (id) => document.getElementById(id);

function draw(answer) {
  const seeds = [...new Set(answer.rows.map((r) => r.seed))];
  const traces = seeds.map((seed, i) => {
    const rows = answer.rows.filter((r) => r.seed === seed && r.final_loss !== null);
    const start = rows.length ? rows[0].init.map((v) => v.toFixed(2)).join(", ") : "";
    return { type: "scatter", mode: "lines+markers", name: `seed ${seed}: start (${start})`, meta: { seed },
      x: rows.map((r) => r.lr), y: rows.map((r) => r.final_loss),
      line: { color: COLOURS[i % COLOURS.length], width: 1.5 }, marker: { size: 7, color: COLOURS[i % COLOURS.length] } };
  });
  const diverged = answer.rows.filter((r) => r.final_loss === null).length;
  const layout = {
    margin: { t: 40, r: 10, b: 50, l: 60 }, legend: { orientation: "h", y: -0.2 },
    title: { text: `${answer.optimizer}, ${answer.steps} steps${diverged ? ` (${diverged} runs diverged: not drawn)` : ""}`,
      font: { size: 14 } },
    xaxis: { title: { text: "α (learning rate)" }, type: "log", automargin: true },
    yaxis: { title: { text: "final loss L" }, type: "log", tickformat: "~g", automargin: true },
  };
  return Plotly.react("sweep-plot", traces, layout, { responsive: true, displaylogo: false });
}

async function run(event) {
  event.preventDefault();
  const problem = PROBLEMS[$("problem").value];
  const body = { model: problem.model, scale: problem.scale, optimizer: $("optimizer").value };
  for (const name of ["lr_min", "lr_max", "count", "seeds", "steps"]) body[name] = Number($(name).value);
  $("message").textContent = "sweeping…";
  const response = await fetch("/api/sweep", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) { $("message").textContent = answer.detail; return; }
  $("message").textContent = "";
  await draw(answer);
  document.body.dataset.rows = String(answer.rows.length); // lets a test wait for the sweep
}

$("sweep").addEventListener("submit", run);
document.body.dataset.ready = "yes";
