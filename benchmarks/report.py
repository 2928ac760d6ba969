"""Benchmark results as JSON (all figures) and Markdown (the tables a reader wants)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .harness import MEMORY_METHODS, cpu_count

SCHEMA = 1
PACKAGES = ("gradfit", "jax", "jaxlib", "optax", "numpy", "torch")


def environment() -> dict[str, Any]:
    """What the numbers depend on: versions, CPUs, JAX's backend, the commit measured."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": cpu_count(),
        "versions": versions,
        "git": _git_revision(),
        "gradfit_from_checkout": _gradfit_from_checkout(),
    }
    try:
        import jax

        env["jax_backend"] = jax.default_backend()
        env["jax_compilation_cache_dir"] = bool(jax.config.jax_compilation_cache_dir)
    except ImportError:
        pass
    return env


def _gradfit_from_checkout() -> bool | None:
    """Whether gradfit is imported from this checkout's src/ (so ``git`` describes it)."""
    spec = importlib.util.find_spec("gradfit")
    if spec is None or spec.origin is None:
        return None
    checkout = Path(__file__).resolve().parents[1] / "src" / "gradfit"
    return Path(spec.origin).resolve().parent == checkout


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def assemble(mode: str, repeats: int, cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "mode": mode,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "settings": {
            "repeats": repeats,
            "timer": "time.perf_counter, one call per tool per round, order rotated each round, gc off",
            "ratio": "median time of a tool / median time of the case's baseline, same run",
            "memory": MEMORY_METHODS,
        },
        "cases": cases,
    }


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``results-<mode>.json`` and ``results-<mode>.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"results-{results['mode']}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


# -- Markdown --------------------------------------------------------------------------


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        f"# gradfit benchmarks ({results['mode']})",
        "",
        f"{results['created']}; {env['system']} {env['machine']}, {env['cpus']} CPU(s), "
        f"JAX backend {env.get('jax_backend', '-')}; commit {env['git'] or '-'}"
        f"{'' if env['gradfit_from_checkout'] is not False else ' (gradfit imported from elsewhere)'}.",
        "",
        f"{versions}.",
        "",
        f"Medians over {results['settings']['repeats']} rounds; each round times one call of every "
        "tool, in rotated order, in one process. *× baseline* is the tool's median over the "
        "baseline's (above 1: slower than it). *first call* includes tracing and compiling for "
        "JAX tools. Memory: *RSS Δ* is the peak resident-set growth during one call; "
        "*py heap* is tracemalloc's peak (Python and numpy only).",
    ]
    for case in results["cases"]:
        lines += ["", f"## {case['name']}: {case['title']}", ""]
        lines.append(", ".join(f"{k}={v}" for k, v in case["params"].items()) + ".")
        lines += [
            "",
            "| tool | first call | median | min | max | per step | × baseline | RSS Δ (KiB) | py heap (KiB) "
            "| max abs Δφ vs baseline |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in case["tools"]:
            if row.get("skipped"):
                lines.append(f"| {row['label']} | skipped: {row['skipped']} | | | | | | | | |")
                continue
            base = " (baseline)" if row["name"] == case["baseline"] else ""
            lines.append(
                f"| {row['label']}{base} | {_time(row['first_call_s'])} | {_time(row['median_s'])} "
                f"| {_time(row['min_s'])} | {_time(row['max_s'])} | {_time(row['per_step_s'])} "
                f"| {row['ratio_to_baseline']:.2f} | {_num(row['rss_peak_delta_kib'], 'd')} "
                f"| {_num(row['py_heap_peak_kib'], '.0f')} | {_num(row['max_abs_diff_vs_baseline'], '.1e')} |"
            )
        if case["targets"]:
            lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
            for t in case["targets"]:
                met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
                lines.append(f"| {t['text']} ({t['numerator']} / {t['denominator']} {t['op']} {t['bound']:g}) "
                             f"| {_num(t['ratio'], '.2f')} | {met} |")
        if case["checks"]:
            lines += ["", "| same work | max abs Δφ | tolerance | passed |", "|---|---:|---:|:---:|"]
            for c in case["checks"]:
                passed = "-" if c["passed"] is None else ("yes" if c["passed"] else "**no**")
                lines.append(f"| {c['tool']} vs {c['reference']}{'' if c['required'] else ' (informative)'} "
                             f"| {_num(c['max_abs_diff'], '.1e')} | {c['tol']:g} | {passed} |")
        if case["notes"]:
            lines += [""] + [f"- {note}" for note in case["notes"]]
    return "\n".join(lines) + "\n"
