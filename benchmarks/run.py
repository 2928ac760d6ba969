"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--out DIR] [--case NAME ...]``.

Writes ``results-full.json`` and ``results-full.md`` (``results-quick.*`` with
``--quick``) under ``--out``, and prints the Markdown. Exits 1 when a tool's final
parameters disagree with the baseline's beyond a required tolerance (the tools did
not do the same work, so the times are not comparable); a missed speed target is
reported, not an error.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any

from . import cases, report
from .harness import measure

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
REPEATS = {"full": 31, "quick": 5}


def _parse_set(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, not {item!r}")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (and smaller sizes where a case says)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the results (default: benchmarks/results)")
    parser.add_argument("--case", action="append", dest="cases", metavar="NAME",
                        help="run only this case (repeatable); default: all")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default: 31, or 5 with --quick)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a case parameter, e.g. --set steps=200 (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and their parameters, and exit")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    repeats = REPEATS[mode] if args.repeats is None else args.repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        selected = [cases.load(name) for name in (args.cases or cases.names())]
    except KeyError as err:
        parser.error(err.args[0])
    if args.list:
        for case in selected:
            print(f"{case.name}: {case.title}; {case.sizes(args.quick)}")
        return 0
    overrides = _parse_set(args.set)
    unknown = set(overrides) - {k for case in selected for k in case.params}
    if unknown:
        parser.error(f"no selected case takes {', '.join(sorted(unknown))}")

    results = []
    for case in selected:
        params = case.sizes(args.quick, overrides)
        print(f"{case.name}: {params}, {repeats} rounds", flush=True)
        t0 = time.perf_counter()
        problem = case.build(params)
        measured = measure(problem, repeats, log=lambda line: print(line, flush=True))
        results.append({"name": case.name, "title": case.title, "params": params,
                        "wall_s": time.perf_counter() - t0, **measured})

    out = report.assemble(mode, repeats, results)
    json_path, md_path = report.write(out, args.out)
    print()
    print(report.markdown(out))
    print(f"wrote {json_path.name} and {md_path.name} under {args.out}")
    failed = [c for case in results for c in case["checks"] if c["required"] and c["passed"] is False]
    for c in failed:
        print(f"error: {c['tool']} ends {c['max_abs_diff']:.3g} from {c['reference']} (tolerance {c['tol']:g}): "
              "the tools did not do the same work", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
