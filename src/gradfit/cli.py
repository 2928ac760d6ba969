"""The ``gradfit`` command: a thin Typer app over the library.

Each command parses its options, calls one library function, and hands the result to
a printer. Bad input raises `GradfitError` in the library; here it becomes one line
on stderr and exit status 2, never a traceback. JAX is imported only when a command
runs, so ``gradfit --help`` is instant.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from gradfit import defaults


class _Commands(TyperGroup):
    """gradfit's commands, whose usage errors (an unknown option, a value of the wrong type,
    a value after a switch) are one line on stderr with exit status 2, like its own errors.

    The command line is kept on the context (``ctx.obj["argv"]``), so an interrupted fit
    can print the exact command that resumes it.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        # typer ships its own copy of click (recent versions) or click itself: find its base error
        click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, obj={"argv": argv}, **extra)
        except click_error as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                _usage_error(exc)
            code = exc.exit_code
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Fit models to data by gradient descent, and see how and why it works.\n\n"
         "Exit status: 0 done, 2 bad input (one line on stderr), 3 a fit diverged, 130 interrupted.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Options that several commands share, spelled once.
DataOption = Annotated[Path | None, typer.Option(help="CSV or Parquet file; default: built-in data for the model.")]
XOption = Annotated[str | None, typer.Option("--x", help="Input column(s), comma-separated; default: all but --y.")]
YOption = Annotated[str | None, typer.Option("--y", help="Target column; default: the last column.")]
DelimiterOption = Annotated[str | None, typer.Option(help="Field separator of a CSV --data file (',', ';', tab as '\\t', '|'); default: detected from its first lines.")]
BuiltinOption = Annotated[str | None, typer.Option(help="Built-in data set: linear, gabor or pedestrians.")]
ModelOption = Annotated[str | None, typer.Option(help="linear, gabor, shallow, or a formula such as \"a*exp(-k*x) + c\" (names that are columns of --data are inputs, the others parameters, each starting at 1 unless --init sets it). Default: gabor on built-in data, linear on --data (it takes any number of columns) and on the built-in linear and pedestrians sets.")]
LossOption = Annotated[str, typer.Option(help="normal, hetero_normal, bernoulli, categorical, poisson or von_mises.")]
ScaleOption = Annotated[float, typer.Option(help="Gabor envelope s (slides 8, book 32).")]
WidthOption = Annotated[int, typer.Option(help="Hidden units of the shallow network.")]
BatchOption = Annotated[int | None, typer.Option(help="Mini-batch size; absent means full batch.")]
SeedOption = Annotated[int, typer.Option(help="Seed (a whole number >= 0) for built-in data, default starts and batches.")]
StepsOption = Annotated[int | None, typer.Option(help="Cap on updates (default 1000).")]
EpochsOption = Annotated[int | None, typer.Option(help="Cap on passes over the data.")]
WarmupOption = Annotated[int, typer.Option(help="Linear warm-up steps before the schedule.")]
ReductionOption = Annotated[str, typer.Option(help="sum (the slides) or mean over examples.")]
DtypeOption = Annotated[str | None, typer.Option(help="float64 (default on CPU) or float32.")]
LineSearchOption = Annotated[bool, typer.Option("--line-search/--no-line-search", help="gd: choose each step by the book's line search.")]


def _show_version(value: bool) -> None:
    if value:
        from gradfit import __version__

        out.print(f"gradfit {__version__}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print gradfit's version and exit.")] = False,
) -> None:
    """Fit models to data by gradient descent, and see how and why it works."""


def _separator(text):
    """--delimiter as typed: a tab may be given as the two characters \\t."""
    return "\t" if text in ("\\t", "tab") else text


def _model_name(model, data, builtin, loss, design=False):
    """--model, or its default (`gradfit.defaults.model_for`)."""
    return defaults.model_for(model, loss, has_file=data is not None, builtin=builtin, design=design)


def _at_least(low, **values):
    """Raise for whole-number options below their least value (``steps=-5`` -> '--steps ...')."""
    from gradfit.errors import GradfitError

    for name, value in values.items():
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            raise GradfitError(f"{flag} must be a whole number >= {low}, not {value}")


#: A loss surface of 4,000 × 4,000 points is 128 MB of float64 and far finer than any screen.
MAX_RESOLUTION = 4000


def _at_most(high, **values):
    """Raise for options above their largest sensible value (``--resolution 100000``)."""
    from gradfit.errors import GradfitError

    for name, value in values.items():
        if value is not None and value > high:
            flag = "--" + name.replace("_", "-")
            raise GradfitError(f"{flag} must be at most {high:,}, not {value:,}")


def _finite(**values):
    """Raise for real-valued options that are NaN or infinite (``--lr nan``)."""
    from gradfit.errors import GradfitError

    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            flag = "--" + name.replace("_", "-")
            raise GradfitError(f"{flag} must be a finite number, not {value}")


@app.command()
def fit(
    ctx: typer.Context,
    data: DataOption = None,
    x: XOption = None,
    y: YOption = None,
    builtin: BuiltinOption = None,
    delimiter: DelimiterOption = None,
    model: ModelOption = None,
    loss: LossOption = "normal",
    optimizer: Annotated[str | None, typer.Option(help="gd, sgd, momentum, nesterov, normalized, adam, rmsprop, adagrad, adamw; or the second-order lm (Levenberg-Marquardt, least squares) or newton (trust-region). Default: lm for a linear model (solved exactly) or a formula with the normal loss, adam otherwise (and with --stream).")] = None,
    variant: Annotated[str | None, typer.Option(help="Variant of the rule, e.g. heavy-ball, book, torch, standard.")] = None,
    lr: Annotated[float, typer.Option(help="Learning rate α (the start of a schedule).")] = 0.1,
    beta: Annotated[float | None, typer.Option(help="Momentum / first-moment decay β.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Second-moment decay γ.")] = None,
    eps: Annotated[float | None, typer.Option(help="Stabiliser ε.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Decoupled weight decay λ (adamw).")] = None,
    schedule: Annotated[str, typer.Option(help="constant, step, exponential or cosine.")] = "constant",
    decay_factor: Annotated[float, typer.Option(help="step: multiply α by this every --decay-every steps; exponential: α·rate^t.")] = 0.5,
    decay_every: Annotated[int, typer.Option(help="step: steps between decays.")] = 100,
    warmup: WarmupOption = 0,
    batch_size: BatchOption = None,
    steps: StepsOption = None,
    epochs: EpochsOption = None,
    tol: Annotated[float, typer.Option(help="Stop when the gradient norm is at most tol; 0 runs every step.")] = 1e-6,
    seed: SeedOption = 0,
    data_seed: Annotated[int | None, typer.Option(help="Seed of the built-in data alone (default: --seed); gradfit sweep's rows rerun with their --seed and the sweep's --data-seed.")] = None,
    init: Annotated[str | None, typer.Option(help="Start: v0,v1,... in parameter order, or by name, a=1,k=0.1 (the others keep their default start).")] = None,
    bound: Annotated[list[str] | None, typer.Option("--bound", help="Keep a parameter within bounds, NAME=LOW:HIGH (inf or an empty side for none), e.g. k=0:inf; repeat or separate with commas.")] = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Hold a parameter at a value and do not fit it, NAME=VALUE, e.g. a=1; repeat or separate with commas.")] = None,
    sigma: Annotated[str | None, typer.Option("--sigma", help="Standard deviations of y for least squares: a column of --data (or one number for all); residuals are weighted by 1/sigma^2, as curve_fit.")] = None,
    absolute_sigma: Annotated[bool, typer.Option("--absolute-sigma", help="--sigma holds absolute standard deviations: standard errors are not rescaled by the residuals' spread.")] = False,
    weights: Annotated[str | None, typer.Option("--weights", help="A column of --data whose values (> 0) weight each example's loss.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the data, the fit with its 95% band and the residuals to this image file (.png, .pdf, .svg).")] = None,
    line_search: LineSearchOption = False,
    polish: Annotated[bool | None, typer.Option("--polish/--no-polish", help="Finish from where the optimiser stopped with a second-order method: Levenberg-Marquardt for least squares, trust-region Newton for other likelihoods (Newton's method for regression (GLM) fits). Default: on for regression fits, off for the others; --no-polish shows what the optimiser itself reached.")] = None,
    scale: ScaleOption = 8.0,
    width: WidthOption = 8,
    reduction: ReductionOption = "sum",
    dtype: DtypeOption = None,
    history_every: Annotated[int | None, typer.Option(help="Record the history every N steps (default 1; once every 10 epochs for mini-batches of over 2,048 rows, where each record is a pass over the data).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Keep a checkpoint of the fit in this file (written atomically as it runs, at the end, and on Ctrl-C), to --resume from.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints (default: about every 30 s).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the fit saved in this checkpoint; give the same data and settings as the run that wrote it.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors (and a divergence or interrupt).")] = False,
    categorical: Annotated[str | None, typer.Option("--categorical", help="Categorical column(s), comma-separated: one-hot encoded against their first level; fits the regression model of the design (--model linear; standardised, then polished by Newton).")] = None,
    workers: Annotated[int | None, typer.Option(help="Fit the regression model (GLM) on a local Dask cluster of N worker processes on 127.0.0.1, by map-reduce over --data (a Parquet file, folder or glob).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Fit the regression model (GLM) on the Dask cluster whose scheduler is at tcp://HOST:PORT, by map-reduce over --data (Parquet files the workers can read).")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Stream --data (a file, folder or glob such as 'big/*.parquet') instead of loading it: mini-batches are read, shuffled through a buffer and fitted as they come, so the data may be larger than memory. Needs --batch-size.")] = False,
    buffer_rows: Annotated[int | None, typer.Option(help="--stream: rows in the shuffle buffer (default: 256 MiB of them); at least the data's rows shuffles exactly, as in memory.")] = None,
    offset: Annotated[str | None, typer.Option("--offset", help="Exposure column of counts (positive, e.g. minutes observed): the rate is COL · e^η, log COL the offset; fits the regression model of the design (--model linear).")] = None,
) -> None:
    """Fit a model by gradient descent and print a short report.

    With no options: the Gabor model, least squares, Adam, on gradfit's built-in data.
    A linear model with a poisson, bernoulli or categorical loss (or --categorical,
    --offset) is a regression model (GLM): fitted in standardised coordinates and
    finished by Newton's method, with standard errors. Exit status: 0 done, 2 bad
    input, 3 the fit diverged, 130 interrupted (with --checkpoint, resumable).
    """
    gf, GradfitError = _engine()
    dataset = None
    try:
        _at_least(0, seed=seed, steps=steps, warmup=warmup, data_seed=data_seed)
        _at_least(1, epochs=epochs, batch_size=batch_size, history_every=history_every,
                  checkpoint_every=checkpoint_every, decay_every=decay_every, width=width, buffer_rows=buffer_rows)
        _finite(lr=lr, tol=tol, beta=beta, gamma=gamma, eps=eps, weight_decay=weight_decay,
                decay_factor=decay_factor, scale=scale)
        on_cluster = workers is not None or scheduler is not None
        design = categorical is not None or offset is not None or on_cluster
        model = _model_name(model, data, builtin, loss, design)
        if optimizer is None:
            optimizer = defaults.optimizer_for(model, loss, formula=_is_formula(model), design=design, stream=stream)
        if design and model != "linear":
            raise GradfitError(f"--categorical and --offset build the design of a regression model: they need "
                               f"--model linear, not --model {model}")
        if optimizer in ("lm", "newton"):
            _no_rate_options(ctx, optimizer, "lr", "schedule", "decay_factor", "decay_every", "warmup")
        gabor_data = data is None and (builtin or defaults.builtin_for(model, loss)) == "gabor"
        _for_its_model(ctx, model, scale="gabor" if not gabor_data else model, width="shallow")
        # A linear model with a count, binary or class likelihood is a regression model
        # (a GLM): fit it as one, so badly scaled columns still reach the optimum.
        regression = design or (model == "linear" and loss in ("poisson", "bernoulli", "categorical"))
        if regression:
            _not_for_regression(ctx, "reduction", "dtype", "bound", "fix", "sigma", "absolute_sigma", "weights")
        if on_cluster:
            _clusterable(ctx, data, loss)
        if stream:
            _streamable(ctx, data, regression)
        elif buffer_rows is not None:
            raise GradfitError("--buffer-rows sizes the shuffle buffer of --stream: add --stream, or leave it out")
        the_opt = _optimizer(gf, optimizer, variant, lr, beta, gamma, eps, weight_decay, schedule,
                             decay_factor, decay_every, warmup, line_search)
        # Only what was asked for goes on to the fit, so its own defaults hold.
        keep = {"history_every": history_every, "checkpoint": checkpoint, "checkpoint_every": checkpoint_every,
                "resume": resume}
        keep = {k: v for k, v in keep.items() if v is not None}
        with _ProgressBar(quiet) as bar, _Warnings(quiet):
            if on_cluster:
                result, dataset = _cluster_fit(gf, data, x, y, loss, offset, tol, scheduler, workers)
            elif regression:
                dataset, problem, start = _design(gf, data, x, y, builtin, loss, categorical, offset, init,
                                                   seed if data_seed is None else data_seed, delimiter)
                result = problem.fit(the_opt, steps=steps, epochs=epochs, batch_size=batch_size, tol=tol, seed=seed,
                                     init=start, polish=True if polish is None else polish, progress=bar, **keep)
            else:
                extra = [c for c in (sigma, weights) if c is not None and not _is_number(c)]
                if _is_formula(model) and x is None:
                    inputs = _formula_inputs(model, data, y, builtin, delimiter, extra)
                    x = inputs if data is not None else None  # built-in data: its one input, x
                if stream:
                    dataset = gf.stream(str(data), [c.strip() for c in x.split(",") if c.strip()] if x else None, y,
                                        buffer_rows=buffer_rows)
                else:
                    dataset = _dataset(gf, data, x, y, builtin, model, loss, seed if data_seed is None else data_seed,
                                       scale, delimiter, extra)
                the_model = _model(gf, model, dataset, loss, scale, width)
                the_loss = gf.make_loss(loss)
                start = _parse_init(init, the_model, seed)
                per_example = _per_example(data, delimiter, dataset, sigma=sigma, weights=weights)
                result = gf.fit(
                    the_model, the_loss, dataset, the_opt, init=start, steps=steps, epochs=epochs,
                    batch_size=batch_size, tol=tol, seed=seed, reduction=reduction, dtype=dtype, progress=bar,
                    polish=bool(polish), bounds=_assignments(bound, "--bound", _bounds_value),
                    fixed=_assignments(fix, "--fix", _number_value), absolute_sigma=absolute_sigma,
                    **per_example, **keep,
                )
                if not stream:  # standard errors need the data in memory
                    result = _with_inference(result, the_model, the_loss, dataset)
        _write_json(result, json_path)
        if plot is not None:
            _plot_fit(result, plot)
    except GradfitError as exc:
        if getattr(exc, "result", None) is not None:  # a streamed fit stopped by bad data: keep what it did
            _write_json(exc.result, json_path)
        _fail(exc)
    except KeyboardInterrupt as exc:
        _interrupted_fit(exc, dataset, json_path, quiet, ctx.obj["argv"] if ctx.obj else None)
    if not quiet:
        _print_report(result, dataset)
    if result.status == "diverged":
        text = result.stopped if result.stopped.startswith("diverged") else f"diverged: {result.stopped}"
        err.print(Text(text))
        raise typer.Exit(3)


def _given(ctx, name) -> bool:
    """Whether an option was given on the command line (typer ships its own click: compare by name)."""
    return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"


def _for_its_model(ctx, model, **owners) -> None:
    """Options that shape one model (--scale of gabor or its built-in data, --width of shallow) are
    refused where they would shape nothing."""
    from gradfit.errors import GradfitError

    what = {"scale": "the Gabor model's envelope s (and its built-in data's)", "width": "the shallow network's width"}
    for name, owner in owners.items():
        if _given(ctx, name) and model != owner:
            raise GradfitError(f"--{name} sets {what.get(name, name)}; this fit (--model {model}) does not use it: "
                               "leave it out")


def _clusterable(ctx, data, loss) -> None:
    """Refuse, naming them, the options a regression fit across a Dask cluster cannot take."""
    from gradfit.errors import GradfitError
    from gradfit.glm import LOSS_FAMILY

    if data is None:
        raise GradfitError("--workers and --scheduler fit Parquet files across a cluster: give them with --data "
                           "(a file, a folder or a glob)")
    if loss not in LOSS_FAMILY or loss == "categorical":
        raise GradfitError(f"a regression across a cluster takes --loss poisson, bernoulli or normal, not {loss}")
    given = ["--" + n.replace("_", "-") for n in ("categorical", "optimizer", "steps", "epochs", "batch_size",
                                                   "polish", "history_every", "checkpoint", "checkpoint_every",
                                                   "resume", "plot", "stream", "init", "lr", "schedule")
             if _given(ctx, n)]
    if given:
        raise GradfitError(f"{', '.join(given)} cannot be used with --workers or --scheduler: a regression across a "
                           "cluster is fitted by Newton's method from the intercept-only start, with numeric columns")


def _cluster_fit(gf, data, x, y, loss, offset, tol, scheduler, workers):
    """The regression (GLM) fit of Parquet files across a Dask cluster, and what the report says of the data."""
    from gradfit.glm import LOSS_FAMILY

    cols = [c.strip() for c in x.split(",") if c.strip()] if x else None
    result = gf.fit_glm(str(data), y, LOSS_FAMILY[loss], x=cols, exposure=offset, tol=tol, scheduler=scheduler,
                        workers=workers)
    return result, _Described(Path(str(data)).name, int(result.settings["n_examples"]))


def _streamable(ctx, data, regression) -> None:
    """Refuse, naming them, the options a streamed fit cannot take."""
    from gradfit.errors import GradfitError

    if data is None:
        raise GradfitError("--stream reads files: give them with --data (a file, a folder or a glob)")
    if regression:
        raise GradfitError("--stream fits by gradient steps over mini-batches; a regression (GLM) over files "
                           "larger than memory is fitted by Newton's method on a Dask cluster: use --workers N "
                           "or --scheduler tcp://HOST:PORT instead of --stream")
    for name in ("plot", "sigma", "weights", "bound", "fix", "polish", "delimiter"):
        if _given(ctx, name):
            raise GradfitError(f"--{name.replace('_', '-')} cannot be used with --stream (it needs the data in "
                               "memory); leave it out, or fit without --stream")


def _not_for_regression(ctx, *names) -> None:
    """Options a regression (GLM) fit would ignore are refused: it sums its likelihood in float64, in
    standardised coordinates, with no bounds, fixed values or weights."""
    from gradfit.errors import GradfitError

    given = ["--" + n.replace("_", "-") for n in names if _given(ctx, n)]
    if given:
        raise GradfitError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to a regression "
                           "model (GLM: a linear model with a count, binary or class loss, fitted as a summed "
                           f"likelihood in float64 in standardised coordinates): leave {'it' if len(given) == 1 else 'them'} out")


def _no_rate_options(ctx, optimizer, *names) -> None:
    """A second-order method has no learning rate: options that set one are refused, not ignored."""
    from gradfit.errors import GradfitError

    given = [n for n in names if _given(ctx, n)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise GradfitError(f"--optimizer {optimizer} chooses its own steps and takes no learning rate: leave out "
                           f"{flags} (--steps caps its iterations)")


def _write_json(result, path) -> None:
    from gradfit.errors import GradfitError

    if path is None:
        return
    try:
        result.to_json(path)
    except OSError as exc:
        raise GradfitError(f"cannot write --json {path}: {exc.strerror}") from None


def _interrupted_fit(exc, dataset, json_path, quiet, argv) -> None:
    """Ctrl-C or SIGTERM during a fit: where it got to, the JSON if asked, how to resume; exit 130."""
    from gradfit.errors import GradfitError

    partial = getattr(exc, "result", None)
    if partial is not None and dataset is not None and not quiet:
        _print_report(partial, dataset)
    if partial is not None:
        try:
            _write_json(partial, json_path)
        except GradfitError as problem:
            err.print(Text(f"error: {problem}"))
    where = f" after {partial.steps} steps" if partial is not None else ""
    saved = getattr(exc, "checkpoint", None)
    if saved is not None and argv:
        line = f"interrupted{where}; checkpoint in {saved}; resume with: {_resume_command(argv, saved)}"
    elif saved is not None:
        line = f"interrupted{where}; checkpoint in {saved}: continue with --resume {shlex.quote(str(saved))}"
    else:
        line = f"interrupted{where}; no checkpoint was kept (give --checkpoint PATH to be able to resume)"
    err.print(Text(line))
    raise typer.Exit(130)


def _resume_command(argv, saved) -> str:
    """The command line as given, with ``--resume saved`` in place of any --resume it had."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            kept.append(arg)
    return shlex.join(["gradfit", *kept, "--resume", str(saved)])


class _Warnings:
    """Warnings raised during a command (a categorical column that looks continuous, separated
    classes), each printed as one line ``warning: ...`` on stderr, unless quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.catcher = warnings.catch_warnings(record=True)

    def __enter__(self):
        self.caught = self.catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)
        seen = set()
        for w in self.caught:
            text = " ".join(str(w.message).split())
            if not self.quiet and text not in seen and issubclass(w.category, UserWarning):
                err.print(Text(f"warning: {text}"))
            seen.add(text)
        return False


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


def _dataset(gf, path, x, y, builtin, model, loss, seed, scale, delimiter=None, exclude=()):
    from gradfit.data import BUILTIN
    from gradfit.errors import GradfitError, unknown_name

    if path is not None:
        if builtin is not None:
            raise GradfitError("give --data or --builtin, not both")
        cols = [c.strip() for c in x.split(",") if c.strip()] if x else None
        return gf.load(path, cols, y, delimiter=_separator(delimiter), exclude=exclude)
    if x is not None or y is not None:
        raise GradfitError("--x and --y name columns of a file: give the file with --data")
    name = builtin or defaults.builtin_for(model, loss)
    if name not in BUILTIN:
        raise unknown_name("built-in data set", name, BUILTIN)
    if name == "gabor":
        return gf.gabor_data(seed, s=scale)
    return BUILTIN[name](seed)


def _is_formula(model) -> bool:
    """Whether --model is a formula (``a*exp(-k*x) + c``) rather than a model's name."""
    from gradfit.models import MODELS

    return model is not None and model not in MODELS and not model.isidentifier()


def _formula_inputs(formula, path, y, builtin, delimiter, extra) -> str:
    """--x for a formula: its names that are columns of --data (other than the target), or x."""
    from gradfit.data import column_names
    from gradfit.errors import GradfitError
    from gradfit.formula import parameter_names

    if path is None:
        columns = ("x",)
    else:
        names = column_names(path, _separator(delimiter))
        target = y if y is not None else (names[-1] if names else None)
        columns = tuple(n for n in names if n != target and n not in extra)
    try:
        _, inputs = parameter_names(formula, columns=columns)
    except GradfitError as exc:
        if "none of the data's columns" not in str(exc):
            raise
        inputs = ()
    if not inputs:
        where = (f"none of {Path(path).name}'s columns ({', '.join(columns)})" if path is not None
                 else "no input: the built-in data's input is x")
        raise GradfitError(f"the formula {formula!r} reads {where}; write the inputs' names in it, "
                           "or name them with --x")
    return ",".join(inputs)


def _model(gf, name, dataset, loss, scale, width):
    from gradfit.errors import unknown_name
    from gradfit.models import MODELS

    if _is_formula(name):
        return gf.expression(name, inputs=dataset.x_names)
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    if name == "linear":
        from gradfit.models import linear_for

        return linear_for(dataset)
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


def _parse_init(text, model, seed=0):
    from gradfit.errors import GradfitError

    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    if parts and parts[-1] == "":  # one trailing comma is harmless
        parts = parts[:-1]
    if "" in parts:
        raise GradfitError(f"--init has an empty value in {text!r}: give one number per parameter, "
                           "separated by commas")
    if any("=" in p for p in parts):
        return _named_init(text, parts, model, seed)
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise GradfitError(f"--init needs numbers separated by commas, not {text!r}") from None
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise GradfitError(f"--init holds a non-finite value: {bad[0]}; give finite numbers")
    if len(values) != model.size:
        names = ", ".join(model.flat_names[:12]) + (" ..." if model.size > 12 else "")
        raise GradfitError(
            f"--init has {len(values)} value(s); model {model.name} has {model.size}: {names}"
        )
    return values


def _named_init(text, parts, model, seed):
    """--init a=1,k=0.1: the model's default start with the named values in place."""
    import numpy as np

    from gradfit.errors import GradfitError

    parts = _split_names(text.replace(" ", ""))  # an element's name holds a comma: omega0[1,0]=2
    if not all("=" in p for p in parts):
        raise GradfitError(f"--init {text!r} mixes named and positional values: give name=value for each, "
                           "or values for every parameter in order")
    names = list(model.flat_names)
    if not hasattr(model, "default_init"):  # a regression model's coefficients have no start to keep
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        raise GradfitError(f"--init by name keeps the other parameters at their default start, and a "
                           f"{model.name} model has none: give all {len(names)} values in order ({shown})")
    values = np.array(model.default_init(seed), dtype=float)
    for name, value in _assignments([",".join(parts)], "--init", _number_value).items():
        where = [j for j, n in enumerate(names) if n == name or n.split("[", 1)[0] == name]
        if not where:
            raise GradfitError(f"--init names {name!r}, which is not a parameter of model {model.name}; its "
                               f"parameters are {', '.join(model.param_names)}")
        values[where] = value
    return values


def _assignments(texts, flag, read):
    """NAME=VALUE pairs of a repeatable option, each value read by ``read(name, text, flag)``."""
    from gradfit.errors import GradfitError

    if not texts:
        return None
    pairs = {}
    for text in texts:
        for part in _split_names(text):  # commas inside brackets belong to a name: omega0[1,0]=2
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq or not name:
                raise GradfitError(f"{flag} takes NAME=VALUE, not {part!r}")
            if name in pairs:
                raise GradfitError(f"{flag} gives {name!r} twice")
            pairs[name] = read(name, value.strip(), flag)
    return pairs


def _number_value(name, text, flag):
    from gradfit.errors import GradfitError

    try:
        value = float(text)
    except ValueError:
        raise GradfitError(f"{flag} {name}={text} needs a number") from None
    if not math.isfinite(value):
        raise GradfitError(f"{flag} {name}={text} needs a finite number")
    return value


def _bounds_value(name, text, flag):
    """LOW:HIGH, either side empty or ±inf for no bound."""
    from gradfit.errors import GradfitError

    low, colon, high = text.partition(":")
    if not colon:
        raise GradfitError(f"{flag} {name}={text} needs LOW:HIGH, e.g. {name}=0:inf")
    sides = []
    for side, none in ((low, "-inf"), (high, "inf")):
        side = side.strip() or none
        try:
            value = float(side)
        except ValueError:
            raise GradfitError(f"{flag} {name}={text}: {side!r} is not a number (use inf for no bound)") from None
        if math.isnan(value):
            raise GradfitError(f"{flag} {name}={text}: a bound cannot be NaN")
        sides.append(None if math.isinf(value) and (value < 0) == (none == "-inf") else value)
    return tuple(sides)


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _per_example(path, delimiter, dataset, *, sigma, weights):
    """sigma= and weights= for the fit: a column of the --data file, or one number for all rows."""
    import numpy as np

    from gradfit.data import read_table
    from gradfit.errors import GradfitError

    given = {}
    for flag, value in (("sigma", sigma), ("weights", weights)):
        if value is None:
            continue
        if _is_number(value):
            given[flag] = np.full(len(dataset), float(value))
            continue
        if value == getattr(dataset, "y_name", None):
            raise GradfitError(f"--{flag} {value} names the target column; name the target with --y and the "
                               f"{flag} column with --{flag}")
        if path is None:
            raise GradfitError(f"--{flag} {value} names a column, but there is no --data file: give --data, "
                               "or one number")
        column = read_table(path, delimiter=_separator(delimiter), columns=[value])[value]
        if column.dtype.kind not in "biuf":
            raise GradfitError(f"--{flag} column {value!r} holds text; it needs numbers > 0")
        given[flag] = column
    return given


def _plot_fit(result, path) -> None:
    from gradfit.errors import GradfitError
    from gradfit.plots import plot_fit

    try:
        plot_fit(result, path=path)
    except OSError as exc:
        raise GradfitError(f"cannot write --plot {path}: {exc.strerror}") from None


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


def _design(gf, path, x, y, builtin, loss, categorical, offset, init, seed, delimiter=None):
    """The regression model (GLM) of a design built from the columns, and its start from --init."""
    from types import SimpleNamespace

    import numpy as np

    from gradfit.data import BUILTIN, check_numbers, read_table
    from gradfit.errors import GradfitError, unknown_name
    from gradfit.glm import LOSS_FAMILY, glm

    if loss not in LOSS_FAMILY:
        raise GradfitError(f"--categorical and --offset fit regression models for the losses "
                           f"{', '.join(LOSS_FAMILY)}, not {loss}")
    if offset is not None and loss != "poisson":
        raise GradfitError("--offset is the exposure of counts: it is for --loss poisson")
    if path is not None:
        if builtin is not None:
            raise GradfitError("give --data or --builtin, not both")
        columns, name = read_table(path, delimiter=_separator(delimiter)), Path(path).stem
    else:
        name = builtin or "pedestrians"
        if name not in BUILTIN:
            raise unknown_name("built-in data set", name, BUILTIN)
        ds = BUILTIN[name](seed)
        builtin_inputs = list(ds.x_names)
        columns = dict(zip(ds.x_names, ds.x.T if ds.x.ndim == 2 else [ds.x], strict=True))
        columns.update({k: v for k, v in ds.notes.items() if getattr(v, "shape", None) == (len(ds),)})
        columns[ds.y_name] = ds.y
    cats = [c.strip() for c in categorical.split(",") if c.strip()] if categorical else []
    target = y if y is not None else list(columns)[-1]
    cols = [c.strip() for c in x.split(",") if c.strip()] if x else None
    if cols is None and path is None and not cats:  # a built-in set: its own input columns
        cols = builtin_inputs
    if cols is None:
        cols = [c for c in columns if c not in (target, offset, *cats) and columns[c].dtype.kind in "biuf"]
    numeric = [c for c in (*cols, offset) if c is not None and c in columns]
    if target in columns and columns[target].dtype.kind in "biuf":  # text targets are class labels
        numeric.append(target)
    if path is not None and any(columns[c].dtype.kind not in "biuf" or not np.all(np.isfinite(columns[c]))
                                for c in numeric):
        check_numbers(path, numeric, _separator(delimiter))  # the error names the file line
    problem = glm(columns, target, LOSS_FAMILY[loss], x=cols, categorical=cats, exposure=offset)
    coefficients = SimpleNamespace(name="glm", size=problem.n_coef, flat_names=problem.names)
    return _Described(name, len(problem.y)), problem, _parse_init(init, coefficients)


class _Described:
    """What the report's header says about the data: its name and size."""

    def __init__(self, name: str, n: int):
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n


def _with_inference(result, model, loss, dataset):
    """The result with standard errors and likelihood statistics, when they can be had."""
    from gradfit.errors import GradfitError
    from gradfit.inference import infer
    from gradfit.result import MultiFit

    if isinstance(result, MultiFit) or result.status == "diverged":
        return result
    try:
        # the data as the fit saw them (with --sigma or --weights, weighted): the result's own
        return infer(result) if result.source is not None else infer(result, model, loss, dataset)
    except GradfitError:
        return result


def _rows(dataset) -> int:
    """The examples of a data set, or of a stream (which is not read to count them)."""
    return dataset.n_rows if hasattr(dataset, "n_rows") else len(dataset)


def _print_report(result, dataset) -> None:
    """The fit's parameters and outcome, each number once; names and text from the data or the
    user are printed as they are, never read as Rich markup (``col[level]``)."""
    from gradfit.textreport import correlation_lines, excluded_parameters, fit_statistics, loss_meaning, p_text

    inf = result.inference
    errors = inf is not None and inf.stderr is not None
    excluded = excluded_parameters(result)
    table = Table(title=None, show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("parameter")
    table.add_column("value", justify="right")
    if errors:
        level = f"{100 * inf.level:g}%"
        for col in ("std err", f"{inf.dist} value", f"P>|{inf.dist}|", f"{level} lower", f"{level} upper"):
            table.add_column(col, justify="right")
    position, rows = 0, []
    for name in result.param_names:
        value = result.params[name]
        if isinstance(value, float):
            row = [name, f"{value:.6g}"]
            if name in excluded:  # held fixed or stopped at a bound: not estimated, no uncertainty
                if errors:
                    row += [excluded[name], "", "", "", ""]
                else:
                    row[1] += f" ({excluded[name]})"
            elif errors:
                lo, hi = inf.wald[position]
                t = f"{inf.tvalues[position]:.4g}" if inf.tvalues is not None else ""
                p = p_text(float(inf.pvalues[position])) if inf.pvalues is not None else ""
                row += [f"{inf.stderr[position]:.4g}", t, p, f"{lo:.6g}", f"{hi:.6g}"]
            position += 1
        else:
            row = [name, _array_text(value)] + ([""] * 5 if errors else [])
            position += value.size
        rows.append(row)
    for j, column in enumerate(table.columns):  # never cut a number to fit 80 columns
        column.min_width = max([len(str(column.header))] + [len(r[j]) for r in rows if j < len(r)])
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    meaning = loss_meaning(result)
    if inf is not None:
        meaning += f"; log-likelihood {inf.loglik:.10g}"
    lines = [
        f"optimizer    {_describe_opt(result.optimizer, result.settings.get('polish'))}",
        None,  # the table
        f"final loss   {result.loss:.6g} ({meaning})",
        f"grad norm    {result.grad_norm:.3g}",
        f"steps        {result.steps}",
        f"stopped      {result.stopped}",
    ]
    point = getattr(result, "point", None)
    if point is not None:
        lines.append(f"point        {point} ({_POINTS.get(point, 'by its Hessian')})")
    lines.append(f"time         {result.elapsed:.2f} s")
    if inf is not None:
        # the statistics not already printed above
        shown = {"# fitting method", "# steps", "# data points", "# variables", "status", "final loss",
                 "gradient norm", "log-likelihood"}
        if meaning.startswith("sum of squared residuals"):
            shown.add("chi-square")  # the final loss itself
        stats = [(k, v) for k, v in fit_statistics(result) if k not in shown]
        width = max(len(k) for k, _ in stats)
        lines += ["[[Fit Statistics]]", *(f"    {k:<{width}} = {v}" for k, v in stats)]
        if inf.covariance is not None:
            lines += correlation_lines(inf)
        if not errors:
            lines.append(f"no uncertainties: {inf.message}")
    out.print(Text.assemble(("gradfit fit", "bold"), f"  model {result.model}, loss {result.objective}, "
                            f"data {dataset.name} ({_rows(dataset):,} examples)"))
    for line in lines:
        out.print(table if line is None else Text(line))


#: What the Hessian says at each kind of point a fit can stop at (`gradfit.points`).
_POINTS = {
    "minimum": "the Hessian is positive semi-definite",
    "saddle": "the Hessian has a negative eigenvalue",
    "maximum": "every eigenvalue of the Hessian is negative",
    "flat": "a plateau: the Hessian is about 0",
}


def _array_text(value) -> str:
    import numpy as np

    return np.array2string(np.asarray(value), precision=4, threshold=8)


def _describe_opt(spec: dict, polished=None) -> str:
    if "ftol" in spec:
        method = "Levenberg-Marquardt" if spec["name"] == "lm" else "trust-region Newton"
        return (f"{spec['name']} ({method}): ftol={spec['ftol']:g}, xtol={spec['xtol']:g}, gtol={spec['gtol']:g}, "
                f"max_iter={spec['max_iter']}")
    if spec.get("name") == "newton":
        return f"newton ({spec.get('variant')}): damped Newton with the autodiff Hessian, tol={spec.get('tol'):g}"
    polish = "; then Newton's method to the optimum" if spec.get("polish") else ""
    if isinstance(polished, dict):
        polish = f"; then {'Levenberg-Marquardt' if polished['name'] == 'lm' else 'trust-region Newton'}"
    sched = spec.get("schedule", {})
    parts = []
    if spec.get("line_search"):
        parts.append("line search")
    else:
        parts.append(f"lr={sched.get('lr'):g}" + ("" if sched.get("kind") == "constant" else f" ({sched.get('kind')})"))
    for key in ("beta", "gamma", "eps", "weight_decay"):
        if key in spec:
            parts.append(f"{key}={spec[key]:g}")
    return f"{spec['name']} ({spec['variant']}): {', '.join(parts)}{polish}"


# -- figures: the lecture, optimisers compared, a landscape --------------------------------------------


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops a command as Ctrl-C does: it says what it kept


def _engine():
    """gradfit's library and its error type, imported when a command runs (JAX is slow to load)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminated)
    _enable_compilation_cache()
    import gradfit as gf
    from gradfit.errors import GradfitError

    return gf, GradfitError


def _fail(exc) -> None:
    """Bad input: one line on stderr, exit status 2. The message is printed as it is: a
    column named ``a[b]`` in it is not Rich markup."""
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        message = f"cannot write{where}: {exc.strerror or exc}"
    else:
        message = " ".join(str(exc).splitlines())  # verbatim, on one line
    err.print(Text.assemble(("error:", "bold red"), f" {message}"))
    raise typer.Exit(2) from None


def _usage_error(exc) -> None:
    """A usage error from Typer (unknown option, bad value) as one line, with where to look."""
    ctx = getattr(exc, "ctx", None)
    where = " ".join(["gradfit", *(ctx.command_path.split()[1:] if ctx is not None else [])])
    message = " ".join(exc.format_message().split())
    if "unexpected extra argument" in message:
        message += ("; switches take no value (--line-search, not --line-search true; --no-line-search turns "
                    "one off), and values with spaces need quotes")
    err.print(Text.assemble(("error:", "bold red"), f" {message} (see: {where} --help)"))


def _out_folder(path: Path) -> None:
    """--out names a folder to write into; an existing file there is bad input, said before any work."""
    from gradfit.errors import GradfitError

    if path.exists() and not path.is_dir():
        raise GradfitError(f"--out {path} is a file; give a folder (the figures and the HTML report go in it)")


def _interrupted_figures(out_dir: Path, since: float) -> None:
    """Ctrl-C or SIGTERM while drawing: say what was written so far; exit 130."""
    written = sorted(p.name for p in out_dir.glob("*") if p.is_file() and p.stat().st_mtime >= since - 0.05) \
        if out_dir.is_dir() else []
    shown = ", ".join(written[:6]) + (" ..." if len(written) > 6 else "")
    what = f"{len(written)} file(s) written to {out_dir} so far: {shown}" if written else "nothing written yet"
    err.print(Text(f"interrupted; {what}"))
    raise typer.Exit(130)


def _wrote(result) -> None:
    shown = ", ".join(p.name for p in result.figures[:6]) + (" ..." if len(result.figures) > 6 else "")
    out.print(Text(f"wrote {len(result.figures)} figure files ({shown}) and {result.report} "
                   f"in {result.elapsed:.1f} s"))


@app.command()
def lecture(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the figures (PNG and SVG) and lecture.html.")] = Path("lecture"),
    quick: Annotated[bool, typer.Option("--quick", help="Small settings: every figure in a few minutes.")] = False,
    seed: Annotated[int, typer.Option(help="Seed (a whole number >= 0) of the built-in data and of the mini-batches.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Every figure of the lecture on fitting, from gradfit's built-in data, and one HTML report."""
    started = time.time()
    gf, GradfitError = _engine()
    from gradfit import lecture as lecture_figures

    say = None if quiet else (lambda line: err.print(Text(f"  {line}")))
    try:
        _at_least(0, seed=seed)
        _out_folder(out_dir)
        settings = (lecture_figures.QUICK if quick else lecture_figures.FULL).replace(seed=seed)
        with _Warnings(quiet):
            result = lecture_figures.build(out_dir, settings, log=say)
    except (GradfitError, OSError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        _interrupted_figures(out_dir, started)
    if not quiet:
        _wrote(result)


def _optimizer_list(gf, text, lr, beta, gamma, eps):
    """Optimisers from ``NAME[:VARIANT][@LR],...``; ``gd:line-search`` for the line search."""
    from gradfit.errors import GradfitError
    from gradfit.optimizers import RULES

    opts = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        spec, _, rate = item.partition("@")
        name, _, variant = spec.partition(":")
        try:
            rate = float(rate) if rate else lr
        except ValueError:
            raise GradfitError(f"the learning rate after @ in {item!r} must be a number") from None
        takes = RULES[name].defaults if name in RULES else {}
        hyper = {k: (v if k in takes else None) for k, v in (("beta", beta), ("gamma", gamma), ("eps", eps))}
        search = variant == "line-search"
        opts.append(_optimizer(gf, name, None if search or not variant else variant, rate, hyper["beta"],
                               hyper["gamma"], hyper["eps"], None, "constant", 0.5, 100, 0, search))
    if not opts:
        raise GradfitError("--optimizers needs at least one name, e.g. gd,momentum,adam")
    return opts


@app.command()
def compare(
    optimizers: Annotated[str, typer.Option(help="Comma-separated NAME[:VARIANT][@LR], e.g. gd@0.05,nesterov:torch,adam@0.1, gd:line-search.")] = "gd,momentum,adam",
    data: DataOption = None,
    x: XOption = None,
    y: YOption = None,
    builtin: BuiltinOption = None,
    delimiter: DelimiterOption = None,
    model: ModelOption = None,
    loss: LossOption = "normal",
    lr: Annotated[float, typer.Option(help="Learning rate α of the optimisers not given one with @.")] = 0.1,
    beta: Annotated[float | None, typer.Option(help="Momentum / first-moment decay β, for those that have one.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Second-moment decay γ, for those that have one.")] = None,
    eps: Annotated[float | None, typer.Option(help="Stabiliser ε, for those that have one.")] = None,
    steps: Annotated[int | None, typer.Option(help="Updates per fit (default 300, or --epochs).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data per fit, instead of --steps.")] = None,
    batch_size: BatchOption = None,
    tol: Annotated[float, typer.Option(help="Stop a fit when its gradient norm is at most tol; 0 runs every step.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed (a whole number >= 0) for built-in data, default starts and batches (the same batches for all).")] = 0,
    init: Annotated[str | None, typer.Option(help="Start v0,v1,... in parameter order, the same for all.")] = None,
    scale: ScaleOption = 8.0,
    width: WidthOption = 8,
    resolution: Annotated[int, typer.Option(help="Grid points per axis of the loss surface.")] = 120,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for compare.png, compare.svg and compare.html.")] = Path("compare"),
) -> None:
    """Optimisers side by side: their paths over one loss contour, loss curves, and a table."""
    started = time.time()
    gf, GradfitError = _engine()
    from gradfit import lecture as lecture_figures

    try:
        _at_least(0, seed=seed, steps=steps)
        _at_least(1, epochs=epochs, batch_size=batch_size, width=width)
        _at_least(2, resolution=resolution)
        _at_most(MAX_RESOLUTION, resolution=resolution)
        _finite(lr=lr, tol=tol, beta=beta, gamma=gamma, eps=eps, scale=scale)
        _out_folder(out_dir)
        model = _model_name(model, data, builtin, loss)
        dataset = _dataset(gf, data, x, y, builtin, model, loss, seed, scale, delimiter)
        the_model = _model(gf, model, dataset, loss, scale, width)
        opts = _optimizer_list(gf, optimizers, lr, beta, gamma, eps)
        with _Warnings(False):
            result = lecture_figures.compare(
                the_model, gf.make_loss(loss), dataset, opts, out_dir, init=_parse_init(init, the_model),
                steps=300 if steps is None and epochs is None else steps, epochs=epochs, batch_size=batch_size,
                tol=tol, seed=seed, resolution=resolution,
            )
    except (GradfitError, OSError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        _interrupted_figures(out_dir, started)
    built = result.parts[0].results
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("optimizer", "final loss", "steps", "time (s)", "stopped"):
        table.add_column(column, justify="left" if column in ("optimizer", "stopped") else "right")
    for fit_result, label in zip(built["fits"], built["labels"], strict=True):
        # Text: a label such as "nesterov [torch] (α=0.1)" is not Rich markup
        table.add_row(Text(label), f"{fit_result.loss:.6g}", str(fit_result.steps), f"{fit_result.elapsed:.3f}",
                      Text(fit_result.status))
    out.print(table)
    _wrote(result)


def _split_names(text):
    """Comma-separated parameter names; commas inside brackets (omega0[1,0]) belong to a name."""
    names, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += char
    return [n for n in [*names, current.strip()] if n]


@app.command()
def landscape(
    data: DataOption = None,
    x: XOption = None,
    y: YOption = None,
    builtin: BuiltinOption = None,
    delimiter: DelimiterOption = None,
    model: ModelOption = None,
    loss: LossOption = "normal",
    params: Annotated[str | None, typer.Option(help="Two parameters to draw the loss over, e.g. phi0,phi1 or omega0[1,0]; default: the model's two, or a random slice.")] = None,
    at: Annotated[str | None, typer.Option(help="Hold the other parameters at v0,v1,... (all, in parameter order); default: the fit's end.")] = None,
    optimizer: Annotated[str, typer.Option(help="The optimiser whose path is drawn.")] = "adam",
    variant: Annotated[str | None, typer.Option(help="Variant of the rule, e.g. heavy-ball, book, torch, standard.")] = None,
    lr: Annotated[float, typer.Option(help="Learning rate α.")] = 0.1,
    line_search: LineSearchOption = False,
    steps: Annotated[int, typer.Option(help="Cap on updates.")] = 1000,
    batch_size: BatchOption = None,
    tol: Annotated[float, typer.Option(help="Stop when the gradient norm is at most tol; 0 runs every step.")] = 1e-6,
    seed: Annotated[int, typer.Option(help="Seed (a whole number >= 0) for built-in data, default starts, batches and the slice's directions.")] = 0,
    init: Annotated[str | None, typer.Option(help="Start v0,v1,... in parameter order.")] = None,
    span: Annotated[float | None, typer.Option(help="Random slice: half-width along each direction (default: to hold the path, at least 1).")] = None,
    scale: ScaleOption = 8.0,
    width: WidthOption = 8,
    resolution: Annotated[int, typer.Option(help="Grid points per axis of the loss surface.")] = 150,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for landscape.png, landscape.svg and landscape.html.")] = Path("landscape"),
) -> None:
    """The loss landscape around a fit: over two named parameters, or a random filter-normalised slice."""
    started = time.time()
    gf, GradfitError = _engine()
    from gradfit import lecture as lecture_figures

    try:
        _at_least(0, seed=seed, steps=steps)
        _at_least(1, batch_size=batch_size, width=width)
        _at_least(2, resolution=resolution)
        _at_most(MAX_RESOLUTION, resolution=resolution)
        _finite(lr=lr, tol=tol, span=span, scale=scale)
        _out_folder(out_dir)
        model = _model_name(model, data, builtin, loss)
        dataset = _dataset(gf, data, x, y, builtin, model, loss, seed, scale, delimiter)
        the_model = _model(gf, model, dataset, loss, scale, width)
        the_opt = _optimizer(gf, optimizer, variant, lr, None, None, None, None, "constant", 0.5, 100, 0, line_search)
        pair = None
        if params is not None:
            pair = tuple(_split_names(params))
            if len(pair) != 2:
                raise GradfitError(f"--params needs two parameter names separated by a comma, not {params!r}")
        try:
            held = _parse_init(at, the_model)
        except GradfitError as exc:
            raise GradfitError(str(exc).replace("--init", "--at")) from None
        with _Warnings(False):
            result = lecture_figures.explore(
                the_model, gf.make_loss(loss), dataset, the_opt, out_dir, params=pair, at=held,
                init=_parse_init(init, the_model), steps=steps, batch_size=batch_size, tol=tol, seed=seed, span=span,
                resolution=resolution,
            )
    except (GradfitError, OSError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        _interrupted_figures(out_dir, started)
    fit_result = result.parts[0].results["fit"]
    out.print(Text(f"fit: final loss {fit_result.loss:.6g} after {fit_result.steps} steps ({fit_result.status})"))
    _wrote(result)


@app.command()
def sweep(
    ctx: typer.Context,
    data: DataOption = None,
    x: XOption = None,
    y: YOption = None,
    builtin: BuiltinOption = None,
    delimiter: DelimiterOption = None,
    model: ModelOption = None,
    loss: LossOption = "normal",
    optimizer: Annotated[str, typer.Option(help="Optimisers to sweep, comma-separated, each NAME or NAME:VARIANT, e.g. adam,momentum:heavy-ball.")] = "adam",
    grid: Annotated[list[str] | None, typer.Option("--grid", help="A swept setting, repeatable: NAME=v1,v2,... or NAME=LOW:HIGH:log|lin:N (N points, both ends). Names: lr, beta, gamma, eps, weight_decay, decay_factor, decay_every, warmup, variant, schedule, batch_size, steps, epochs, and init.PARAM for starts.")] = None,
    random: Annotated[int | None, typer.Option("--random", help="Random search: draw N configurations (ranges as uniform or log-uniform distributions, lists as choices) instead of the grid.")] = None,
    search: Annotated[str, typer.Option(help="grid (default; random with --random) or optuna (Optuna's sampler and pruner, --trials N).")] = "grid",
    trials: Annotated[int | None, typer.Option(help="optuna: how many trials.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds 0..N-1 per configuration: a row's seed is --seed of gradfit fit (its start, unless init.PARAM is swept, and its mini-batches).")] = 1,
    data_seed: Annotated[int, typer.Option(help="Seed of the built-in data, one data set for every run (gradfit fit --data-seed).")] = 0,
    lr: Annotated[float | None, typer.Option(help="Learning rate α for every run (unless swept).")] = None,
    beta: Annotated[float | None, typer.Option(help="β for every run (unless swept).")] = None,
    gamma: Annotated[float | None, typer.Option(help="γ for every run (unless swept).")] = None,
    eps: Annotated[float | None, typer.Option(help="ε for every run (unless swept).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="λ for every run (unless swept).")] = None,
    schedule: Annotated[str, typer.Option(help="constant, step, exponential or cosine, for every run.")] = "constant",
    decay_factor: Annotated[float, typer.Option(help="step: multiply α by this every --decay-every steps; exponential: α·rate^t (as gradfit fit).")] = 0.5,
    decay_every: Annotated[int, typer.Option(help="step: steps between decays; cosine: its length (as gradfit fit).")] = 100,
    warmup: WarmupOption = 0,
    batch_size: BatchOption = None,
    steps: StepsOption = None,
    epochs: EpochsOption = None,
    tol: Annotated[float, typer.Option(help="Stop a run when its gradient norm is at most tol; 0 runs every step.")] = 1e-6,
    scale: ScaleOption = 8.0,
    width: WidthOption = 8,
    reduction: ReductionOption = "sum",
    dtype: DtypeOption = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write one row per run to this .parquet or .csv file as groups finish; rerun with the same file to resume (finished runs are skipped).")] = None,
    workers: Annotated[int | None, typer.Option(help="Run the groups on a local Dask cluster of N worker processes (127.0.0.1).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Run the groups on the Dask cluster whose scheduler is at tcp://HOST:PORT.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the final loss against the first swept number (median and quartiles over seeds; a panel per value of a second) to this image file, and with two swept numbers their heat map beside it (NAME-heatmap.png).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Fit once per configuration and seed, vmapped in one compile per group; one row per run.

    Example: gradfit sweep --model gabor --optimizer adam,momentum --grid lr=0.001:1:log:64
    --grid beta=0.5,0.9,0.99 --seeds 8 --steps 1000 --out runs.parquet
    """
    gf, GradfitError = _engine()
    try:
        _at_least(0, steps=steps, data_seed=data_seed, warmup=warmup)
        _at_least(1, decay_every=decay_every)
        _at_least(1, epochs=epochs, batch_size=batch_size, seeds=seeds, width=width, random=random, trials=trials,
                  workers=workers)
        _finite(lr=lr, tol=tol, beta=beta, gamma=gamma, eps=eps, weight_decay=weight_decay, scale=scale)
        from gradfit.sweeps import sweep as run_sweep

        model = _model_name(model, data, builtin, loss)
        gabor_data = data is None and (builtin or defaults.builtin_for(model, loss)) == "gabor"
        _for_its_model(ctx, model, scale="gabor" if not gabor_data else model, width="shallow")
        if _is_formula(model) and x is None and data is not None:
            x = _formula_inputs(model, data, y, builtin, delimiter, [])
        dataset = _dataset(gf, data, x, y, builtin, model, loss, data_seed, scale, delimiter)
        the_model = _model(gf, model, dataset, loss, scale, width)
        fixed = {"lr": lr, "beta": beta, "gamma": gamma, "eps": eps, "weight_decay": weight_decay}
        if schedule != "constant":  # the schedule's own settings, as gradfit fit reads them
            own = {"decay_factor": decay_factor, "decay_every": decay_every}
            fixed.update({k: v for k, v in own.items() if k in _SCHEDULE_NAMES.get(schedule, {})})
        if warmup:
            fixed["warmup"] = warmup
        texts = [_cli_grid(t, schedule) for t in grid or []]
        swept = {t.split("=", 1)[0].strip() for t in texts}
        given = {_cli_grid(f"{k}={v!r}", schedule) for k, v in fixed.items() if v is not None}
        texts += sorted(t for t in given if t.split("=", 1)[0] not in swept)
        if search not in ("grid", "optuna"):
            raise GradfitError(f"--search is grid or optuna, not {search!r} (random search: --random N)")
        if search == "optuna" and trials is None:
            raise GradfitError("--search optuna needs --trials N")
        if search != "optuna" and trials is not None:
            raise GradfitError("--trials is for --search optuna; a grid runs all its points, --random N draws N")
        with _SweepBar(quiet) as bar, _Warnings(quiet):
            frame = run_sweep(the_model, gf.make_loss(loss), dataset, optimizer, grid=texts, random=random,
                              seeds=seeds, steps=steps, epochs=epochs, batch_size=batch_size, tol=tol,
                              schedule=schedule, reduction=reduction, dtype=dtype, out=out_path,
                              scheduler=scheduler, workers=workers, progress=bar,
                              **({"search": "optuna", "trials": trials} if search == "optuna" else {}))
        if plot is not None:
            _plot_sweep(frame, plot, texts)
    except (GradfitError, OSError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        where = f"; the finished groups are in {out_path}: rerun the same command to go on" if out_path else ""
        err.print(Text(f"interrupted{where}"))
        raise typer.Exit(130) from None
    if not quiet:
        _print_sweep(frame, out_path)


#: gradfit fit's schedule options, by schedule: the sweep's name for each.
_SCHEDULE_NAMES = {
    "step": {"decay_factor": "factor", "decay_every": "every"},
    "exponential": {"decay_factor": "rate"},
    "cosine": {"decay_every": "decay_steps"},
}


def _cli_grid(text: str, schedule: str) -> str:
    """A --grid text in gradfit fit's spelling (batch-size, decay_factor, ...) in the sweep's (batch_size, rate)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not name.startswith("init."):
        name = name.replace("-", "_")
        name = _SCHEDULE_NAMES.get(schedule, {}).get(name, name)
    return f"{name}{sep}{rest}"


class _SweepBar(_ProgressBar):
    """The progress of a sweep: runs finished of all, on stderr, after half a second."""

    def __call__(self, done: int, total: int, skipped: int) -> None:
        if self.quiet or not err.is_terminal and not sys.stderr.isatty():
            return
        if self.progress is None:
            if time.perf_counter() - self.start < self.delay:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("sweeping"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
                                     TimeRemainingColumn(), console=err, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=total)
        self.progress.update(self.task, completed=done)


def _print_sweep(frame, out_path) -> None:
    """The best configuration of each optimiser (median final loss over seeds), and where the rows went."""
    import numpy as np

    if frame.empty:
        out.print("no runs")
        return
    numbers = [c for c in ("lr", "beta", "gamma", "eps", "weight_decay", "factor", "rate", "floor", "batch_size",
                           "max_steps", "epochs", "every", "decay_steps", "warmup") if c in frame.columns]
    keys = ["optimizer", "variant", *[c for c in numbers if frame[c].nunique(dropna=True) > 1]]
    loss = frame["final_loss"].where(np.isfinite(frame["final_loss"]))
    grouped = frame.assign(_loss=loss).groupby(keys, dropna=False)
    summary = grouped.agg(median=("_loss", "median"), runs=("_loss", "size"),
                          diverged=("status", lambda s: int((s == "diverged").sum())))
    table = Table(title=f"{len(frame)} runs; best configuration of each optimiser (median final loss over seeds)")
    for column in ["optimizer", *keys[2:], "median final loss", "runs", "diverged"]:
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for (name, variant), part in summary.reset_index().groupby(["optimizer", "variant"]):
        best = part.sort_values("median", na_position="last").iloc[0]
        table.add_row(f"{name} [{variant}]", *[f"{best[k]:g}" for k in keys[2:]],
                      f"{best['median']:.6g}" if np.isfinite(best["median"]) else "diverged",
                      str(int(best["runs"])), str(int(best["diverged"])))
    out.print(table)
    statuses = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
    out.print(Text(f"status: {statuses}" + (f"; rows in {out_path}" if out_path else "")))


def _plot_sweep(frame, path: Path, texts) -> None:
    """--plot: the final loss against the first swept number (a panel per value of a second), and, when
    two numbers are swept, their heat map beside it (``NAME-heatmap.png``)."""
    from gradfit.sweeps import plots as sweep_plots

    swept = [t.split("=", 1)[0] for t in texts if "," in t or ":" in t.split("=", 1)[1]]
    numbers = [name for name in swept if name in frame.columns]
    x = numbers[0] if numbers else "lr"
    sweep_plots.sensitivity_figure(frame, x=x).savefig(path, dpi=150, bbox_inches="tight")
    if len(numbers) == 2:
        heat = path.with_name(f"{path.stem}-heatmap{path.suffix}")
        sweep_plots.heatmap_figure(frame, x=numbers[0], y=numbers[1]).savefig(heat, dpi=150, bbox_inches="tight")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; the default keeps the app on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
) -> None:
    """Run the web playground and its JSON API (needs: pip install "gradfit[web]"); Ctrl-C stops it."""
    try:
        import uvicorn  # noqa: F401

        import gradfit.web.app  # noqa: F401  (FastAPI and plotly)
        from gradfit.web import serve as run_server
    except ImportError as exc:
        _fail(f"gradfit serve needs the web extra ({exc.name} is missing): pip install \"gradfit[web]\"")
    _enable_compilation_cache()
    out.print(Text(f"gradfit playground on http://{host}:{port}/ (Ctrl-C stops it)"))
    try:
        run_server(host, port)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def main() -> None:
    """Entry point of the ``gradfit`` script."""
    app()


if __name__ == "__main__":
    main()
