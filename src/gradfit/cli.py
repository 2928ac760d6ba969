"""The ``gradfit`` command: a thin Typer app over the library.

Each command parses its options, calls one library function, and hands the result to
a printer. Bad input raises `GradfitError` in the library; here it becomes one line
on stderr and exit status 2, never a traceback. JAX is imported only when a command
runs, so ``gradfit --help`` is instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fit models to data by gradient descent, and see how and why it works.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Fit models to data by gradient descent, and see how and why it works."""


def _builtin_for(model: str, loss: str) -> str:
    if loss == "poisson":
        return "pedestrians"
    return "linear" if model == "linear" else "gabor"


@app.command()
def fit(
    data: Annotated[Path | None, typer.Option(help="CSV or Parquet file; default: built-in data for the model.")] = None,
    x: Annotated[str | None, typer.Option("--x", help="Input column(s), comma-separated; default: all but --y.")] = None,
    y: Annotated[str | None, typer.Option("--y", help="Target column; default: the last column.")] = None,
    builtin: Annotated[str | None, typer.Option(help="Built-in data set: linear, gabor or pedestrians.")] = None,
    model: Annotated[str, typer.Option(help="linear, gabor or shallow.")] = "gabor",
    loss: Annotated[str, typer.Option(help="normal, hetero_normal, bernoulli, categorical, poisson or von_mises.")] = "normal",
    optimizer: Annotated[str, typer.Option(help="gd, sgd, momentum, nesterov, normalized, adam, rmsprop, adagrad or adamw.")] = "adam",
    variant: Annotated[str | None, typer.Option(help="Variant of the rule, e.g. heavy-ball, book, torch, standard.")] = None,
    lr: Annotated[float, typer.Option(help="Learning rate α (the start of a schedule).")] = 0.1,
    beta: Annotated[float | None, typer.Option(help="Momentum / first-moment decay β.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Second-moment decay γ.")] = None,
    eps: Annotated[float | None, typer.Option(help="Stabiliser ε.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Decoupled weight decay λ (adamw).")] = None,
    schedule: Annotated[str, typer.Option(help="constant, step, exponential or cosine.")] = "constant",
    decay_factor: Annotated[float, typer.Option(help="step: multiply α by this every --decay-every steps; exponential: α·rate^t.")] = 0.5,
    decay_every: Annotated[int, typer.Option(help="step: steps between decays.")] = 100,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps before the schedule.")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size; absent means full batch.")] = None,
    steps: Annotated[int | None, typer.Option(help="Cap on updates (default 1000).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Cap on passes over the data.")] = None,
    tol: Annotated[float, typer.Option(help="Stop when the gradient norm is at most tol; 0 runs every step.")] = 1e-6,
    seed: Annotated[int, typer.Option(help="Seed for built-in data, default starts and batches.")] = 0,
    init: Annotated[str | None, typer.Option(help="Start v0,v1,... in parameter order.")] = None,
    line_search: Annotated[bool, typer.Option("--line-search", help="gd: choose each step by the book's line search.")] = False,
    scale: Annotated[float, typer.Option(help="Gabor envelope s (slides 8, book 32).")] = 8.0,
    width: Annotated[int, typer.Option(help="Hidden units of the shallow network.")] = 8,
    reduction: Annotated[str, typer.Option(help="sum (the slides) or mean over examples.")] = "sum",
    dtype: Annotated[str | None, typer.Option(help="float64 (default on CPU) or float32.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Fit a model by gradient descent and print a short report.

    With no options: the Gabor model, least squares, Adam, on gradfit's built-in data.
    """
    try:
        _enable_compilation_cache()
        import gradfit as gf
        from gradfit.errors import GradfitError
    except ImportError as exc:  # pragma: no cover - broken install
        err.print(f"error: gradfit cannot import its engine: {exc}")
        raise typer.Exit(2) from None
    try:
        dataset = _dataset(gf, data, x, y, builtin, model, loss, seed, scale)
        the_model = _model(gf, model, dataset, loss, scale, width)
        the_loss = gf.make_loss(loss)
        the_opt = _optimizer(gf, optimizer, variant, lr, beta, gamma, eps, weight_decay, schedule,
                             decay_factor, decay_every, warmup, line_search)
        start = _parse_init(init, the_model)
        with _ProgressBar(quiet) as bar:
            result = gf.fit(
                the_model, the_loss, dataset, the_opt, init=start, steps=steps, epochs=epochs,
                batch_size=batch_size, tol=tol, seed=seed, reduction=reduction, dtype=dtype, progress=bar,
            )
        if json_path is not None:
            try:
                result.to_json(json_path)
            except OSError as exc:
                raise GradfitError(f"cannot write {json_path}: {exc.strerror}") from None
    except GradfitError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not quiet:
        _print_report(result, dataset)
    if result.status == "diverged":
        raise typer.Exit(3)


def _enable_compilation_cache() -> None:
    """Keep compiled fits on disk between runs: a repeated command skips XLA's compile
    (about a second on a small CPU). Only this process's JAX settings change; set
    GRADFIT_NO_CACHE=1 to turn it off, XDG_CACHE_HOME to move it."""
    import os

    if os.environ.get("GRADFIT_NO_CACHE"):
        return
    import jax

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    jax.config.update("jax_compilation_cache_dir", str(root / "gradfit" / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _dataset(gf, path, x, y, builtin, model, loss, seed, scale):
    from gradfit.data import BUILTIN
    from gradfit.errors import GradfitError, unknown_name

    if path is not None:
        if builtin is not None:
            raise GradfitError("give --data or --builtin, not both")
        cols = [c.strip() for c in x.split(",") if c.strip()] if x else None
        return gf.load(path, cols, y)
    if x is not None or y is not None:
        raise GradfitError("--x and --y name columns of a file: give the file with --data")
    name = builtin or _builtin_for(model, loss)
    if name not in BUILTIN:
        raise unknown_name("built-in data set", name, BUILTIN)
    if name == "gabor":
        return gf.gabor_data(seed, s=scale)
    return BUILTIN[name](seed)


def _model(gf, name, dataset, loss, scale, width):
    from gradfit.errors import unknown_name
    from gradfit.models import MODELS

    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    if name == "linear":
        return gf.linear(dataset.n_inputs)
    if name == "gabor":
        return gf.gabor(scale)
    outputs = {"hetero_normal": 2}.get(loss, 1)
    if loss == "categorical":
        outputs = max(2, int(dataset.y.max()) + 1)
    return gf.shallow(width, dataset.n_inputs, outputs)


def _optimizer(gf, name, variant, lr, beta, gamma, eps, weight_decay, schedule, decay_factor,
               decay_every, warmup, line_search):
    from gradfit import schedules
    from gradfit.errors import GradfitError

    if schedule == "step":
        rate = schedules.step_decay(lr, decay_factor, decay_every)
    elif schedule == "exponential":
        rate = schedules.exponential(lr, decay_factor)
    elif schedule == "cosine":
        rate = schedules.cosine(lr, max(decay_every, 1))
    else:
        rate = schedules.make_schedule(schedule, lr)
    if warmup:
        rate = schedules.warmup(rate, warmup)
    hyper = {"beta": beta, "gamma": gamma, "eps": eps, "weight_decay": weight_decay}
    hyper = {k: v for k, v in hyper.items() if v is not None}
    if line_search:
        if name != "gd":
            raise GradfitError(f"--line-search is for --optimizer gd, not {name}")
        hyper["line_search"] = True
    return gf.make_optimizer(name, lr=rate, variant=variant, **hyper)


def _parse_init(text, model):
    from gradfit.errors import GradfitError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise GradfitError(f"--init needs numbers separated by commas, not {text!r}") from None
    if len(values) != model.size:
        names = ", ".join(model.flat_names[:12]) + (" ..." if model.size > 12 else "")
        raise GradfitError(
            f"--init has {len(values)} value(s); model {model.name} has {model.size}: {names}"
        )
    return values


class _ProgressBar:
    """A Rich progress bar on stderr that appears only for fits taking over half a second."""

    delay = 0.5

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.start = time.perf_counter()
        self.progress = None
        self.task = None

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __call__(self, done: int, total: int, loss: float) -> None:
        if self.quiet or not err.is_terminal and not sys.stderr.isatty():
            return
        if self.progress is None:
            if time.perf_counter() - self.start < self.delay:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("fitting"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=err, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("fit", total=total, loss="-")
        self.progress.update(self.task, completed=done, loss=f"{loss:.6g}")

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


def _print_report(result, dataset) -> None:
    table = Table(title=None, show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name in result.param_names:
        value = result.params[name]
        text = f"{value:.6g}" if isinstance(value, float) else _array_text(value)
        table.add_row(name, text)
    out.print(f"[bold]gradfit fit[/]  model {result.model}, loss {result.objective}, "
              f"data {dataset.name} ({len(dataset)} examples)", highlight=False)
    out.print(f"optimizer {_describe_opt(result.optimizer)}", highlight=False)
    out.print(table)
    out.print(f"final loss   {result.loss:.6g}", highlight=False)
    out.print(f"grad norm    {result.grad_norm:.3g}", highlight=False)
    out.print(f"steps        {result.steps}", highlight=False)
    out.print(f"stopped      {result.stopped}", highlight=False)
    out.print(f"time         {result.elapsed:.2f} s", highlight=False)


def _array_text(value) -> str:
    import numpy as np

    return np.array2string(np.asarray(value), precision=4, threshold=8)


def _describe_opt(spec: dict) -> str:
    sched = spec.get("schedule", {})
    parts = []
    if spec.get("line_search"):
        parts.append("line search")
    else:
        parts.append(f"lr={sched.get('lr'):g}" + ("" if sched.get("kind") == "constant" else f" ({sched.get('kind')})"))
    for key in ("beta", "gamma", "eps", "weight_decay"):
        if key in spec:
            parts.append(f"{key}={spec[key]:g}")
    return f"{spec['name']} ({spec['variant']}): {', '.join(parts)}"


def main() -> None:
    """Entry point of the ``gradfit`` script."""
    app()


if __name__ == "__main__":
    main()
