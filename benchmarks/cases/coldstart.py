"""``gradfit fit`` from a cold process: import, compile (or load from the cache), fit, print.

Compared with the floor any JAX program pays, ``python -c "import jax"``. gradfit keeps
compiled fits in a cache on disk, so a repeated command skips XLA's compilation; the
first run of a new problem (measured with the cache off) pays it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from ..harness import Case, Problem, Run, Target, Tool


def _process(args: list[str], env: dict[str, str]) -> Run:
    def run() -> np.ndarray:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return np.zeros(1)

    return run


def build(p: dict[str, Any]) -> Problem:
    cache = tempfile.mkdtemp(prefix="gradfit-bench-cache-")
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    cold = {**env, "GRADFIT_NO_CACHE": "1"}
    fit = [sys.executable, "-m", "gradfit.cli", "fit", "--quiet", "--steps", str(p["steps"])]
    tools = [
        Tool("gradfit", "gradfit fit (compilation cache warm)", lambda: _process(fit, env)),
        Tool("import_jax", 'python -c "import jax"', lambda: _process([sys.executable, "-c", "import jax"], env)),
    ]
    if p["all_tools"]:  # each process costs seconds: the quick mode keeps the two the target needs
        tools += [
            Tool("gradfit_nocache", "gradfit fit (cache off: compiles)", lambda: _process(fit, cold)),
            Tool("python", 'python -c "pass"', lambda: _process([sys.executable, "-c", "pass"], env)),
        ]
    return Problem(
        tools=tools,
        steps=1,
        targets=[
            Target("gradfit fit at most 2× import jax", "gradfit", "import_jax", "<=", 2.0),
        ] + ([Target("gradfit fit, compiling, at most 2× import jax", "gradfit_nocache", "import_jax", "<=", 2.0)]
             if p["all_tools"] else []),
        notes=[
            f"whole processes; the fit is the default problem (Gabor, Adam) capped at {p['steps']} steps; "
            "the cache lives in a fresh temporary folder, warmed by the first call.",
        ],
    )


CASE = Case(
    name="coldstart",
    title="gradfit fit as a whole process, against import jax",
    params={"steps": 1000, "all_tools": True},
    build=build,
    quick={"steps": 100, "all_tools": False},
)
