"""Streaming SGD over Parquet files larger than the memory the fit may use, against pyarrow's own read.

The data: ``files`` Parquet files of ``rows_per_file`` rows each, ``d`` standard-normal
float64 columns and y = 0.5 + Σ_j x_j / j + noise, written once into a cache folder
(``folder``; by default ``benchmarks/results/stream-data``, which git ignores) and reused.
At the full sizes they take about 6.5 GB.

Each tool runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its
own, reported in ``details``:

- ``pyarrow``: reads the d + 1 columns of every row group, file by file, and converts
  them to numpy float64 (the least any fit must do with the files);
- ``gradfit``: ``gf.fit(gf.linear(d), "normal", gf.stream(...), gf.sgd(lr), batch_size,
  epochs)`` with the default shuffle buffer (256 MiB of rows), recording the full-data
  loss at the start and the end (two passes over the files in file order, besides the
  training epochs).

Throughput is rows per second. For gradfit it is given two ways: over the whole fit
(its records' passes included), and over its training steps alone (from the progress
callback: the time from the end of the first block to the end of the last).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..harness import Case, Problem, Run, Tool

_PYARROW = r"""
import json, resource, sys, time
import numpy as np, pyarrow.parquet as pq
p = json.loads(sys.argv[1])
t0 = time.perf_counter()
rows, total = 0, 0.0
for path in p["paths"]:
    f = pq.ParquetFile(path, pre_buffer=False)
    for g in range(f.num_row_groups):
        table = f.read_row_group(g, columns=p["columns"])
        block = np.column_stack([c.to_numpy() for c in table.columns])
        rows += len(block)
        total += float(block[:, -1].sum())
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": rows, "check": total,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_GRADFIT = r"""
import json, resource, sys, time
import numpy as np
import gradfit as gf
p = json.loads(sys.argv[1])
stream = gf.stream(p["glob"], x=p["columns"][:-1], y=p["columns"][-1])
marks = []
def progress(done, total, loss):
    marks.append((time.perf_counter(), done))
t0 = time.perf_counter()
result = gf.fit(gf.linear(len(p["columns"]) - 1), "normal", stream, gf.sgd(p["lr"]), batch_size=p["batch"],
                epochs=p["epochs"], tol=0, seed=0, progress=progress)
seconds = time.perf_counter() - t0
(t_first, s_first), (t_last, s_last) = marks[0], marks[-1]
print(json.dumps({"seconds": seconds, "rows": stream.n_rows * p["epochs"], "x": result.x.tolist(),
                  "train_rows_per_s": (s_last - s_first) * p["batch"] / (t_last - t_first),
                  "buffer_rows": stream.buffer_rows, "status": result.status, "loss": result.loss,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _folder(p: dict[str, Any]) -> Path:
    base = Path(p["folder"]) if p["folder"] else Path(__file__).resolve().parents[1] / "results" / "stream-data"
    return base / f"d{p['d']}-r{p['rows_per_file']}-g{p['row_group']}"


def _write(p: dict[str, Any]) -> list[Path]:
    """The data set's files, written unless they are there already."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _folder(p)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part{k:03d}.parquet" for k in range(p["files"])]
    coef = 1.0 / np.arange(1.0, p["d"] + 1.0)
    for k, path in enumerate(paths):
        if path.exists():
            continue
        rng = np.random.default_rng([7, k])
        x = rng.normal(size=(p["rows_per_file"], p["d"]))
        y = 0.5 + x @ coef + rng.normal(0.0, 0.1, p["rows_per_file"])
        table = pa.table({**{f"x{j}": x[:, j] for j in range(p["d"])}, "y": y})
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, row_group_size=p["row_group"], compression="none")
        tmp.replace(path)
    return paths


def _subprocess(script: str, args: dict[str, Any], out: dict[str, Any], key: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{key} failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    out.setdefault(key, []).append(result)
    return result


def build(p: dict[str, Any]) -> Problem:
    paths = _write(p)
    columns = [f"x{j}" for j in range(p["d"])] + ["y"]
    size = sum(path.stat().st_size for path in paths)
    details: dict[str, Any] = {"bytes_on_disk": size, "rows": p["files"] * p["rows_per_file"]}
    args = {"paths": [str(q) for q in paths], "glob": str(_folder(p) / "*.parquet"), "columns": columns,
            "lr": p["lr"], "batch": p["batch"], "epochs": p["epochs"]}

    notes = [f"{p['files']} files × {p['rows_per_file']:,} rows × {p['d'] + 1} float64 columns "
             f"({size / 2**30:.2f} GiB on disk, uncompressed), row groups of {p['row_group']:,} rows; "
             f"batch {p['batch']}, {p['epochs']} epoch(s), lr {p['lr']}.",
             "each tool runs in its own process (Python and imports included in its time)."]
    static = len(notes)

    def pyarrow_tool() -> Run:
        def run() -> np.ndarray:
            _subprocess(_PYARROW, args, details, "pyarrow")
            notes[static:] = _summary(details, size)
            return np.zeros(0)  # a read returns no parameters
        return run

    def gradfit_tool() -> Run:
        def run() -> np.ndarray:
            x = np.asarray(_subprocess(_GRADFIT, args, details, "gradfit")["x"])
            notes[static:] = _summary(details, size)
            return x
        return run

    return Problem(
        tools=[Tool("gradfit", "gf.fit over gf.stream: SGD, default buffer, records at start and end",
                    gradfit_tool),
               Tool("pyarrow", "pyarrow: read every row group's columns into numpy", pyarrow_tool)],
        steps=p["epochs"] * -(-details["rows"] // p["batch"]),
        details=details,
        notes=notes,
    )


#: The issue's targets: peak resident memory of the streamed fit, and its throughput against pyarrow's.
RSS_LIMIT_MIB = 1024
THROUGHPUT_SHARE = 0.5


def _summary(details: dict[str, Any], size: int) -> list[str]:
    """Lines for the report from the runs so far (medians over runs)."""
    lines = []
    read = details.get("pyarrow", [])
    fits = details.get("gradfit", [])
    if read:
        rate = float(np.median([r["rows"] / r["seconds"] for r in read]))
        mb = float(np.median([size / r["seconds"] for r in read])) / 2**20
        lines.append(f"pyarrow reads {rate:,.0f} rows/s ({mb:,.0f} MiB/s of the files), peak RSS "
                     f"{max(r['peak_rss_mib'] for r in read):,.0f} MiB.")
    if fits:
        whole = float(np.median([r["rows"] / r["seconds"] for r in fits]))
        train = float(np.median([r["train_rows_per_s"] for r in fits]))
        peak = max(r["peak_rss_mib"] for r in fits)
        lines.append(f"gradfit fits {train:,.0f} rows/s in its training steps and {whole:,.0f} rows/s over the "
                     f"whole fit (its start and end records each read the files once more); buffer "
                     f"{fits[-1]['buffer_rows']:,} rows; peak RSS {peak:,.0f} MiB "
                     f"({'within' if peak <= RSS_LIMIT_MIB else 'over'} the {RSS_LIMIT_MIB} MiB target).")
        if read:
            lines.append(f"gradfit's training throughput is {train / rate:.0%} of pyarrow's read rate (target "
                         f"≥ {THROUGHPUT_SHARE:.0%}: {'met' if train / rate >= THROUGHPUT_SHARE else 'missed'}); "
                         f"over the whole fit, {whole / rate:.0%}.")
    return lines


CASE = Case(
    name="stream",
    title="Streaming SGD over Parquet larger than memory, against pyarrow's read",
    params={"files": 40, "rows_per_file": 1_000_000, "d": 20, "row_group": 131_072, "batch": 1024, "epochs": 1,
            "lr": 1e-4, "folder": ""},
    build=build,
    quick={"files": 4, "rows_per_file": 50_000, "row_group": 16_384},
)
