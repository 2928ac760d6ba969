"""Smoke tests of the benchmark harness: quick mode on tiny sizes writes both reports.

No speed is asserted here; the figures are for people to read. Note that the harness
clears JAX's compilation caches before timing each JAX tool's first call, so tests
that run after these ones compile afresh.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ sits beside src/ and is not installed: import it from the checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import cases, run  # noqa: E402
from benchmarks.harness import Agreement, Problem, Target, Tool, measure  # noqa: E402

TOOL_FIELDS = {
    "name", "label", "skipped", "first_call_s", "median_s", "min_s", "max_s", "per_step_s", "repeats",
    "ratio_to_baseline", "rss_peak_delta_kib", "py_heap_peak_kib", "max_abs_diff_vs_baseline",
}


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = run.main(["--quick", "--out", str(out), "--repeats", "2", "--set", "steps=20", "--set", "n=8",
                     "--case", "gabor_adam"])
    return code, out


def test_quick_run_succeeds_and_writes_both_files(quick_results):
    code, out = quick_results
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["results-quick.json", "results-quick.md"]


def test_json_has_the_expected_fields(quick_results):
    _, out = quick_results
    results = json.loads((out / "results-quick.json").read_text())
    assert results["mode"] == "quick"
    assert results["settings"]["repeats"] == 2
    assert {"python", "cpus", "versions", "git"} <= set(results["environment"])
    assert set(results["settings"]["memory"]) == {"rss_peak_delta_kib", "py_heap_peak_kib"}

    (case,) = [c for c in results["cases"] if c["name"] == "gabor_adam"]
    assert case["params"]["steps"] == 20 and case["params"]["n"] == 8
    assert case["baseline"] == "gradfit" and case["steps_per_call"] == 20
    tools = {row["name"]: row for row in case["tools"]}
    assert set(tools) == {"gradfit", "gradfit_every100", "jax_scan", "jax_scan_history", "optax", "torch", "numpy"}
    for name, row in tools.items():
        if row["skipped"]:  # an optional peer that is not installed
            assert name == "torch"
            continue
        assert TOOL_FIELDS <= set(row), name
        assert row["repeats"] == 2
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"]
        assert row["per_step_s"] == pytest.approx(row["median_s"] / 20)
        assert row["first_call_s"] > 0
        assert row["py_heap_peak_kib"] >= 0
    assert tools["gradfit"]["ratio_to_baseline"] == 1.0

    assert [t["denominator"] for t in case["targets"]] == [
        "jax_scan", "jax_scan", "jax_scan_history", "gradfit", "gradfit"]
    for target in case["targets"]:
        assert {"text", "ratio", "op", "bound", "met"} <= set(target)
        assert target["ratio"] is None or target["ratio"] > 0
    required = [c for c in case["checks"] if c["required"]]
    assert {c["tool"] for c in required} == {"jax_scan", "gradfit_every100", "jax_scan_history", "optax"}
    assert all(c["passed"] for c in required)


def test_markdown_has_the_table(quick_results):
    _, out = quick_results
    text = (out / "results-quick.md").read_text()
    assert text.startswith("# gradfit benchmarks (quick)")
    assert "## gabor_adam" in text
    assert "| tool | first call | median | min | max | per step | × baseline |" in text
    labels = ("gradfit.fit (history every step) (baseline)", "JAX lax.scan, hand-written Adam",
              "optax.adam in lax.scan", "numpy, hand gradient")
    for label in labels:
        assert f"| {label} |" in text
    assert "| target | measured | met |" in text


def test_every_case_module_defines_a_case():
    assert "gabor_adam" in cases.names()
    for name in cases.names():
        case = cases.load(name)
        assert case.name == name
        assert case.sizes(quick=True).keys() == case.params.keys()


@pytest.mark.parametrize(
    "argv",
    [["--case", "no_such_case"], ["--set", "no_such_param=1"], ["--set", "steps"], ["--repeats", "0"]],
)
def test_bad_arguments_are_refused(argv, tmp_path):
    with pytest.raises(SystemExit) as err:
        run.main([*argv, "--out", str(tmp_path)])
    assert err.value.code != 0
    assert not list(tmp_path.iterdir())


def test_measure_flags_tools_that_did_different_work():
    def tool(name, value, pause):
        def prepare():
            def run():
                time.sleep(pause)
                return np.array([value])
            return run
        return Tool(name, name, prepare)

    problem = Problem(
        tools=[tool("base", 1.0, 0.002), tool("same", 1.0, 0.004), tool("other", 1.5, 0.0)],
        steps=10,
        baseline="base",
        targets=[Target("same is slower", "same", "base", ">=", 1.0)],
        agreements=[Agreement("same", "base", 1e-12), Agreement("other", "base", 1e-12)],
    )
    out = measure(problem, repeats=3, log=lambda line: None)
    rows = {row["name"]: row for row in out["tools"]}
    assert rows["other"]["max_abs_diff_vs_baseline"] == 0.5
    assert [c["passed"] for c in out["checks"]] == [True, False]
    assert out["targets"][0]["met"] is True and out["targets"][0]["ratio"] > 1
    assert rows["base"]["per_step_s"] == rows["base"]["median_s"] / 10


#: Cases whose quick run takes over 5 s here (a cold process, files on disk, a Dask cluster): CI runs them.
SLOW_CASES = ("coldstart", "stream", "sweep_cluster", "sweep", "web")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n
                                  for n in cases.names() if n != "gabor_adam"])
def test_every_case_runs_in_quick_mode(name, tmp_path):
    # each case at its own quick sizes, one round: the tools run and agree where they must
    code = run.main(["--quick", "--out", str(tmp_path), "--repeats", "1", "--case", name])
    assert code == 0
    results = json.loads((tmp_path / "results-quick.json").read_text())
    (case,) = results["cases"]
    assert case["name"] == name
    assert all(row["skipped"] or row["median_s"] > 0 for row in case["tools"])
