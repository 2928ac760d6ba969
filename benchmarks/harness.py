"""What a benchmark case is, and how its tools are timed.

A `Case` names a problem and its sizes; ``build(params)`` returns a `Problem`: the
tools that solve it (each a `Tool` whose ``prepare()`` gives a zero-argument call
returning the final parameters as a numpy array), the tool the others are compared
with, the issue's targets as ratios of median times, and agreement checks that show
the tools did the same work.

Timing, per case:

1. first call: each tool once, after ``jax.clear_caches()`` for JAX tools, so it
   includes tracing and compilation as in a fresh process;
2. one untimed warm call each (clearing the caches for one tool drops the others');
3. memory: one call each with the RSS high-water mark reset, and one under tracemalloc;
4. ``repeats`` rounds, each timing one call of every tool, the order rotated every
   round, with the garbage collector off during a call (and the objects alive before
   the rounds frozen out of its reach, so the collections between calls are short). Medians over rounds are
   the headline numbers; a ratio is taken between medians of the same run.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Run = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Tool:
    """One way of solving a case's problem.

    ``prepare()`` does the set-up a user would do once (build the model, put data on
    the device, define the jitted function) and returns the call to time. The call
    must finish its work before returning (block on JAX results) and return the
    final parameters as a numpy array.
    """

    name: str
    label: str
    prepare: Callable[[], Run]
    jax: bool = False
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """A goal stated as ``median(numerator) / median(denominator) <op> bound``."""

    text: str
    numerator: str
    denominator: str
    op: str
    bound: float

    def __post_init__(self):
        if self.op not in ("<=", ">="):
            raise ValueError(f"a target's op is '<=' or '>=', not {self.op!r}")


@dataclass(frozen=True)
class Agreement:
    """The final parameters of ``tool`` must lie within ``tol`` (max abs) of ``reference``'s."""

    tool: str
    reference: str
    tol: float
    required: bool = True


@dataclass(frozen=True)
class Problem:
    """A case built at its sizes: the tools, and what to compare.

    ``details`` is plain, JSON-ready data a case measured besides time (an accuracy
    table, say); it is passed through to the results as it is.
    """

    tools: Sequence[Tool]
    steps: int
    baseline: str = "gradfit"
    targets: Sequence[Target] = ()
    agreements: Sequence[Agreement] = ()
    notes: Sequence[str] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """A benchmark: a problem at full sizes (``params``), smaller ones for ``--quick``."""

    name: str
    title: str
    params: dict[str, Any]
    build: Callable[[dict[str, Any]], Problem]
    quick: dict[str, Any] = field(default_factory=dict)

    def sizes(self, quick: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters to build with: full, then quick ones, then the caller's own."""
        merged = dict(self.params)
        if quick:
            merged.update(self.quick)
        merged.update({k: v for k, v in (overrides or {}).items() if k in self.params})
        return merged


# -- measuring -----------------------------------------------------------------------


MEMORY_METHODS = {
    "rss_peak_delta_kib": "process peak RSS during one call minus RSS before it "
    "(Linux: /proc/self/clear_refs resets VmHWM; null where unavailable); "
    "includes native buffers (XLA, torch) but only pages newly touched",
    "py_heap_peak_kib": "tracemalloc peak during one call: Python and numpy allocations, "
    "not XLA's or torch's native buffers",
}


def _read_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_peak_delta_kib(run: Run) -> int | None:
    """How far one call lifts the process's resident memory above where it started."""
    if not _reset_peak_rss():
        run()
        return None
    before = _read_status_kib("VmRSS")
    run()
    peak = _read_status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0)


def py_heap_peak_kib(run: Run) -> float:
    """The peak of traced Python-heap allocations during one call."""
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1024


def _timed(run: Run) -> tuple[float, np.ndarray]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()
    return elapsed, np.asarray(out)


def missing_requirements(tool: Tool) -> list[str]:
    return [m for m in tool.requires if importlib.util.find_spec(m) is None]


def _clear_jax_caches() -> None:
    import jax

    jax.clear_caches()


def _start_jax_backend() -> None:
    """Start JAX's CPU backend, so no tool's first call is charged for it."""
    import jax

    with jax.enable_x64(True):
        jax.block_until_ready(jax.numpy.zeros(()) + 1)


def measure(problem: Problem, repeats: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every tool of a problem; the results as plain data (see `benchmarks.report`)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    if any(t.jax for t in problem.tools):
        _start_jax_backend()
    runs: dict[str, Run] = {}
    rows: dict[str, dict[str, Any]] = {}
    for tool in problem.tools:
        row: dict[str, Any] = {"name": tool.name, "label": tool.label, "skipped": None}
        rows[tool.name] = row
        missing = missing_requirements(tool)
        if missing:
            row["skipped"] = f"not installed: {', '.join(missing)}"
            log(f"  {tool.name}: skipped ({row['skipped']})")
            continue
        runs[tool.name] = tool.prepare()
    if problem.baseline not in runs:
        raise RuntimeError(f"the baseline tool {problem.baseline!r} cannot run: {rows[problem.baseline]['skipped']}")

    finals: dict[str, np.ndarray] = {}
    jax_tools = {t.name for t in problem.tools if t.jax}
    for name, run in runs.items():
        if name in jax_tools:
            _clear_jax_caches()
        rows[name]["first_call_s"], finals[name] = _timed(run)
        log(f"  {name}: first call {rows[name]['first_call_s']:.3f} s")
    for run in runs.values():
        run()
    # With JAX and torch loaded a full collection takes a quarter of a second: collect
    # once, then freeze the survivors so the collections between calls stay cheap.
    gc.collect()
    gc.freeze()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    try:
        for name, run in runs.items():
            rows[name]["rss_peak_delta_kib"] = rss_peak_delta_kib(run)
            rows[name]["py_heap_peak_kib"] = round(py_heap_peak_kib(run), 1)
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed, _ = _timed(runs[name])
                times[name].append(elapsed)
    finally:
        gc.unfreeze()

    base_median = float(np.median(times[problem.baseline]))
    for name, ts in times.items():
        row = rows[name]
        median = float(np.median(ts))
        row.update(
            repeats=len(ts),
            median_s=median,
            min_s=float(np.min(ts)),
            max_s=float(np.max(ts)),
            per_step_s=median / max(problem.steps, 1),
            ratio_to_baseline=median / base_median,
            # a tool that returns no parameters (an empty array: a reader, say) has nothing to compare
            max_abs_diff_vs_baseline=float(np.max(np.abs(finals[name] - finals[problem.baseline])))
            if finals[name].size else None,
        )

    targets = []
    for target in problem.targets:
        entry: dict[str, Any] = {
            "text": target.text, "numerator": target.numerator, "denominator": target.denominator,
            "op": target.op, "bound": target.bound, "ratio": None, "met": None,
        }
        if target.numerator in times and target.denominator in times:
            ratio = rows[target.numerator]["median_s"] / rows[target.denominator]["median_s"]
            entry["ratio"] = ratio
            entry["met"] = bool(ratio <= target.bound if target.op == "<=" else ratio >= target.bound)
        targets.append(entry)

    checks = []
    for check in problem.agreements:
        entry = {"tool": check.tool, "reference": check.reference, "tol": check.tol,
                 "required": check.required, "max_abs_diff": None, "passed": None}
        if check.tool in finals and check.reference in finals:
            diff = float(np.max(np.abs(finals[check.tool] - finals[check.reference])))
            entry["max_abs_diff"] = diff
            entry["passed"] = bool(diff <= check.tol)
        checks.append(entry)

    return {
        "baseline": problem.baseline,
        "steps_per_call": problem.steps,
        "tools": [rows[t.name] for t in problem.tools],
        "final_params": {name: finals[name].tolist() for name in finals},
        "targets": targets,
        "checks": checks,
        "notes": list(problem.notes),
        "details": problem.details,
    }


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
