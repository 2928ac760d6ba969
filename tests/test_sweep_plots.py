"""Sweep figures: every line, band, mark and cell is the statistic pandas computes from
the same frame; scales, panels and errors follow the documented rules."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from gradfit.errors import GradfitError  # noqa: E402
from gradfit.sweeps import plots as sp  # noqa: E402

LRS = np.logspace(-4, 0, 9)
SEEDS = 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def runs(optimizers=(("sgd", 0.0), ("adam", 1.0)), lrs=LRS, betas=(np.nan,), offset=0.01, seed=0):
    """final_loss = (log10 α + 2 - shift)² + offset + noise over four seeds; at α = 1 every sgd
    seed diverges (inf), at α ≈ 0.316 one sgd seed does (NaN), and one adam run at α = 1
    is marked diverged with a finite loss."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, shift in optimizers:
        for lr in lrs:
            for beta in betas if name != "sgd" else (np.nan,):
                for s in range(SEEDS):
                    loss = (np.log10(lr) + 2 - shift) ** 2 + offset + 0.05 * rng.random()
                    status = "converged" if s % 2 else "max_steps"
                    if name == "sgd" and np.isclose(lr, 1.0):
                        loss, status = np.inf, "diverged"
                    elif name == "sgd" and np.isclose(lr, 10**-0.5) and s == 0:
                        loss, status = np.nan, "diverged"
                    elif name == "adam" and np.isclose(lr, 1.0) and s == 0:
                        status = "diverged"
                    rows.append(dict(optimizer=name, variant="slides", lr=lr, beta=beta, gamma=0.999, seed=s,
                                     final_loss=loss, best_loss=loss, steps=100, status=status, seconds=0.01))
    return pd.DataFrame(rows)


def good(frame, y="final_loss"):
    return frame[np.isfinite(frame[y]) & (frame["status"] != "diverged")]


def named(ax, prefix):
    return {a.get_gid().split(":", 1)[1]: a for a in [*ax.lines, *ax.collections]
            if (a.get_gid() or "").startswith(prefix)}


@pytest.fixture
def frame():
    return runs()


def test_median_lines_are_the_groupby_medians(frame):
    fig = sp.sensitivity_figure(frame)
    (ax,) = fig.axes
    lines = named(ax, "median:")
    assert set(lines) == {"sgd", "adam"}
    expected = good(frame).groupby(["optimizer", "lr"])["final_loss"].median()
    for name, line in lines.items():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        np.testing.assert_allclose(x, LRS)  # every α, a gap (NaN) where all seeds diverged
        np.testing.assert_allclose(y, expected[name].reindex(x).to_numpy(float), equal_nan=True)
    assert np.isnan(lines["sgd"].get_ydata()[-1])  # α = 1: every sgd seed diverged
    assert ax.get_xlabel() == "learning rate α"


def test_band_spans_the_quartiles(frame):
    (ax,) = sp.sensitivity_figure(frame).axes
    q = good(frame).groupby(["optimizer", "lr"])["final_loss"].quantile([0.25, 0.75]).unstack()
    for name, band in named(ax, "iqr:").items():
        vertices = np.concatenate([p.vertices for p in band.get_paths()])
        for lr, (low, high) in q.loc[name].iterrows():
            at = vertices[np.isclose(vertices[:, 0], lr), 1]
            assert at.size and np.isclose(at.min(), low) and np.isclose(at.max(), high)
    sgd = np.concatenate([p.vertices for p in named(ax, "iqr:")["sgd"].get_paths()])
    assert not np.isclose(sgd[:, 0], 1.0).any()  # every seed diverged at α = 1: no band there


def test_a_mark_at_the_top_for_each_point_where_a_seed_diverged(frame):
    (ax,) = sp.sensitivity_figure(frame).axes
    marks = named(ax, "diverged:")
    bad = frame.assign(bad=~np.isfinite(frame["final_loss"]) | (frame["status"] == "diverged"))
    points = bad.groupby(["optimizer", "lr"])["bad"].any()
    assert sum(len(m.get_xdata()) for m in marks.values()) == int(points.sum()) == 3
    np.testing.assert_allclose(sorted(marks["sgd"].get_xdata()), [10**-0.5, 1.0])
    for line in marks.values():
        assert not line.get_clip_on()
        assert np.all((np.asarray(line.get_ydata()) > 0.8) & (np.asarray(line.get_ydata()) <= 1.0))  # axes units
        assert line.get_transform().contains_branch_seperately(ax.transAxes)[1]
        assert line.get_color() == sp.optimizer_style(line.get_gid().split(":")[1])[0]
    legend = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert "diverged (any seed)" in legend
    assert "sgd (4 seeds per point)" in legend


@pytest.mark.parametrize(("lrs", "offset", "log_x", "log_y"), [
    (LRS, 0.01, True, True),  # α over 4 decades; loss from ~0.01 to ~9
    (LRS, 1.0, True, False),  # loss from 1 to ~10: one decade
    (np.linspace(0.01, 0.1, 5), 0.01, False, False),
    (LRS, -1.0, True, False),  # negative values: never a log axis
])
def test_log_axes_when_positive_over_two_decades(lrs, offset, log_x, log_y):
    (ax,) = sp.sensitivity_figure(runs(lrs=lrs, offset=offset)).axes
    assert (ax.get_xscale() == "log") is log_x
    assert (ax.get_yscale() == "log") is log_y


def test_colours_are_fixed_per_optimizer():
    both = sp.sensitivity_figure(runs()).axes[0]
    alone = sp.sensitivity_figure(runs(optimizers=(("adam", 1.0),))).axes[0]
    assert named(both, "median:")["adam"].get_color() == named(alone, "median:")["adam"].get_color()
    assert {sp.optimizer_style(n)[0] for n in ("sgd", "adam", "momentum")} <= set(sp.OKABE_ITO)
    assert sp.optimizer_style("made-up") == sp.optimizer_style("made-up")


def test_a_panel_per_value_of_another_swept_column():
    frame = runs(betas=(0.5, 0.9, 0.99))
    fig = sp.sensitivity_figure(frame)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["β = 0.5", "β = 0.9", "β = 0.99"]
    for ax, beta in zip(fig.axes, (0.5, 0.9, 0.99), strict=True):
        lines = named(ax, "median:")
        assert set(lines) == {"sgd", "adam"}  # sgd has no β (NaN): in every panel
        want = good(frame[frame.beta == beta]).groupby("lr")["final_loss"].median()
        np.testing.assert_allclose(lines["adam"].get_ydata(), want.to_numpy())


def test_two_other_swept_columns_are_refused():
    frame = runs(betas=(0.5, 0.9))
    frame.loc[frame.index % 2 == 0, "gamma"] = 0.99
    with pytest.raises(GradfitError, match="beta and gamma also vary"):
        sp.sensitivity_figure(frame)
    assert len(sp.sensitivity_figure(frame[frame.gamma == 0.999]).axes) == 2


def test_variants_get_their_own_line_style():
    frame = pd.concat([runs(), runs(optimizers=(("adam", 1.2),)).assign(variant="standard")])
    lines = named(sp.sensitivity_figure(frame).axes[0], "median:")
    assert list(lines) == ["sgd", "adam [slides]", "adam [standard]"]  # as in optimizers.RULES and VARIANTS
    assert lines["adam [slides]"].get_linestyle() == "-" and lines["adam [standard]"].get_linestyle() == "--"
    assert lines["adam [slides]"].get_color() == lines["adam [standard]"].get_color()


def test_all_diverged_still_draws_the_marks_and_a_note(frame):
    frame = frame.assign(final_loss=np.inf, status="diverged")
    (ax,) = sp.sensitivity_figure(frame).axes
    assert sum(len(m.get_xdata()) for m in named(ax, "diverged:").values()) == 2 * len(LRS)
    assert any(t.get_text() == "every run diverged" for t in ax.texts)


def test_heatmap_of_runs_that_all_diverged_hatches_every_cell():
    frame = runs(optimizers=(("adam", 1.0),), betas=(0.5, 0.9)).assign(final_loss=np.inf)
    (ax,) = sp.heatmap_figure(frame).axes  # no colour bar: no values
    assert len([p for p in ax.patches if p.get_gid() == "diverged"]) == 2 * len(LRS)
    assert not [c for c in ax.collections if c.get_gid() == "cells"]


def test_heatmap_cells_are_the_groupby_medians():
    frame = runs(betas=(0.5, 0.9, 0.99))
    frame.loc[(frame.optimizer == "adam") & np.isclose(frame.lr, 1.0) & (frame.seed < 3), "final_loss"] = np.inf
    fig = sp.heatmap_figure(frame, "lr", "beta")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 1  # sgd has no β: no heat map
    (ax,) = panels
    (mesh,) = [c for c in ax.collections if c.get_gid() == "cells"]
    cells = np.ma.filled(mesh.get_array().astype(float), np.nan).reshape(3, len(LRS))
    want = good(frame[frame.optimizer == "adam"]).groupby(["beta", "lr"])["final_loss"].median().unstack()
    want.loc[:, want.columns[-1]] = np.nan  # α = 1: 3 of 4 seeds diverged at every β
    np.testing.assert_allclose(cells, want.to_numpy(), equal_nan=True)
    hatched = [p for p in ax.patches if p.get_gid() == "diverged"]
    assert len(hatched) == 3 and all(p.get_hatch() for p in hatched)
    (best,) = [p for p in ax.patches if p.get_gid() == "best"]
    j, i = np.unravel_index(np.nanargmin(cells), cells.shape)
    assert best.get_xy() == (i - 0.5, j - 0.5)
    assert ax.get_ylabel() == "β" and ax.get_xticklabels()[0].get_text() == "1e-4"
    assert "most seeds diverged" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_heatmap_panels_per_optimizer_and_a_log_colour_scale():
    from matplotlib.colors import LogNorm

    frame = runs(optimizers=(("momentum", 0.5), ("adam", 1.0)), betas=(0.5, 0.9))
    fig = sp.heatmap_figure(frame, "lr", "beta")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["momentum", "adam"]  # as in optimizers.RULES
    assert isinstance(panels[0].collections[0].norm, LogNorm)
    assert len([ax for ax in sp.heatmap_figure(frame, optimizer="adam").axes if ax.get_label() != "<colorbar>"]) == 1
    with pytest.raises(GradfitError, match="it ran adam, momentum"):
        sp.heatmap_figure(frame, optimizer="sgd")


@pytest.mark.parametrize("draw", [sp.sensitivity_figure, sp.heatmap_figure])
def test_empty_frames_and_missing_columns_are_named(frame, draw):
    with pytest.raises(GradfitError, match="no runs to plot"):
        draw(frame.iloc[:0])
    with pytest.raises(GradfitError, match=r"no column 'momentum' .*its columns: optimizer, variant, lr"):
        draw(frame, "momentum")
    with pytest.raises(GradfitError, match="no run has a value of beta"):
        sp.sensitivity_figure(runs(optimizers=(("sgd", 0.0),)), "beta")  # sgd has no β


def test_save_writes_png_and_svg(tmp_path):
    paths = sp.save_sweep_figures(runs(lrs=np.logspace(-4, 0, 5), betas=(0.5, 0.9)), tmp_path)
    assert set(paths) == {"sensitivity", "heatmap"}  # β varies: the heat map of α against it
    for png, svg in paths.values():
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
        assert svg.read_text().lstrip().startswith("<?xml")
    assert paths["heatmap"][0].name == "sweep_final_loss_lr_beta.png"


def test_no_heatmap_when_nothing_else_varies(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(sp, "save", lambda fig, folder, name: written.append(name) or (name, name))
    assert set(sp.save_sweep_figures(runs(), tmp_path)) == {"sensitivity"}
    assert written == ["sweep_final_loss_vs_lr"]


def test_compact_numbers():
    assert [sp.compact(v) for v in (1e-4, 3.1623e-4, 0.001, 0.9, 32, 2.5e-5, 1e4)] == \
        ["1e-4", "3.16e-4", "0.001", "0.9", "32", "2.5e-5", "1e4"]
    assert sp.tick_labels([0.9, 0.99, 0.999, 0.9999]) == ["0.9", "0.99", "0.999", "0.9999"]
