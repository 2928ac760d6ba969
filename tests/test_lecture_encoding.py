"""How the lecture's figures encode what they show: one colour per optimiser in every
figure, from Okabe and Ito's palette; φ on the axes; the inset on the main panel's
colour scale; no marks for minima on the box's edge; the basins' plateau; and the
captions' claims (a decaying rate ends SGD lower) true of the settings that draw them."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.colors import to_rgb

import gradfit as gf
from gradfit import landscape as ls
from gradfit import lecture, plots
from gradfit.optimizers import RULES
from test_lecture import TINY


@pytest.fixture(scope="module")
def drawn(tiny_lecture):
    """Every figure `build` draws at toy sizes (name -> Figure), the traces each paths figure got, the folder."""
    out, _, figures, traced = tiny_lecture
    return figures, traced, out


def test_the_palette_is_okabe_ito_with_one_colour_per_optimiser():
    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(plots.OKABE_ITO.values()) == okabe_ito
    assert set(plots.PALETTE) == okabe_ito
    for name in RULES:
        assert plots.optimizer_color(name) in okabe_ito
    lecture_methods = ("gd", "line search", "sgd", "momentum", "nesterov", "normalized", "adam")
    assert len({plots.optimizer_color(name) for name in lecture_methods}) == len(lecture_methods)
    assert plots.optimizer_color({"name": "gd", "line_search": True}) == plots.optimizer_color("line search")


def test_runs_of_one_optimiser_share_its_colour_and_differ_in_style():
    data = gf.linear_data(0, 12)
    fits = [gf.fit(gf.linear(), gf.normal(), data, opt, init=[0.0, 0.0], steps=3, tol=0)
            for opt in (gf.sgd(0.01), gf.sgd(0.02), gf.adam(0.1))]
    traces = plots.traces(fits)
    assert traces[0].color == traces[1].color == plots.optimizer_color("sgd") != traces[2].color
    assert traces[0].style != traces[1].style


def test_every_path_is_drawn_in_its_optimisers_colour(drawn):
    _, traced, _ = drawn
    assert len(traced) >= 6  # linear, two Gabor, SGD, momentum, Adam
    for fig, runs in traced:
        lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
        for run in runs:
            assert run.color == plots.optimizer_color(run.result.optimizer), run.label
            assert lines[run.label].get_color() == run.color


def test_colours_of_one_method_match_across_figures(drawn):
    _, traced, _ = drawn
    by_method: dict[str, set[str]] = {}
    for _, runs in traced:
        for run in runs:
            by_method.setdefault(plots.optimizer_key(run.result.optimizer), set()).add(run.color)
    assert {"gd", "sgd", "momentum", "nesterov", "normalized", "adam"} <= set(by_method)
    assert all(len(colors) == 1 for colors in by_method.values()), by_method


def test_parameter_axes_are_phi_in_mathtext(drawn):
    figures, _, _ = drawn
    with_phi = 0
    for name, fig in figures.items():
        for ax in fig.axes:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert not re.search(r"(?<!\\)phi\d", label), (name, label)
                with_phi += bool(re.fullmatch(r"\$\\phi_\{\d\}\$", label))
    # at least both axes of the six paths figures' contour panels, the two surfaces and the two
    # basin maps; the figures drawn on the loss surface since add their own
    assert with_phi >= 2 * (6 + 2 + 2)


def test_inset_shares_the_main_panels_colour_scale(drawn):
    figures, _, _ = drawn
    main = figures["normalized_vs_adam"].axes[0]
    (inset,) = main.child_axes
    outer, inner = main.collections[0].norm, inset.collections[0].norm
    assert (inner.vmin, inner.vmax) == (outer.vmin, outer.vmax)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figures["normalized_vs_adam"]).draw()
    bar = figures["normalized_vs_adam"].axes[-1]
    assert any(label.get_text() for label in bar.get_yticklabels())  # the colour bar keeps its numbers


def test_maxima_are_grey_and_minima_on_the_edge_are_not_marked():
    data = gf.linear_data(0, 12)
    fn = ls.LossFunction(gf.linear(), gf.normal(), data)
    surf = ls.surface(fn, ("phi0", "phi1"), ((-1.0, 1.0), (-1.0, 1.0)), resolution=8)
    point = lambda xy, kind: ls.CriticalPoint(np.array(xy), 1.0, 0.0, np.ones(2), kind)
    fig, ax = plots.new_figure()
    plots.draw_critical_points(ax, [point((0.0, 0.2), "minimum"), point((1.0, 0.5), "minimum"),
                                    point((-0.3, -1.0), "saddle"), point((0.4, 0.4), "maximum")], surf)
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert drawn["global minimum"].get_xydata().tolist() == [[0.0, 0.2]]
    assert "local minimum" not in drawn and "saddle point" not in drawn
    red, green, blue = to_rgb(drawn["local maximum"].get_markerfacecolor())
    assert red == green == blue < 1  # a grey, not white


def test_basin_codes_set_the_plateau_apart():
    labels = np.array([[0, -1, -2], [1, -1, -2]])
    end_loss = np.array([[0.5, 2.5, 2.51], [1.0, 4.0, 3.0]])
    bm = SimpleNamespace(labels=labels, end_loss=end_loss)
    codes = plots.basin_codes(bm, 2.5)
    assert codes.tolist() == [[0, plots.PLATEAU, plots.PLATEAU], [1, -1, -2]]
    assert plots.basin_codes(bm, None).tolist() == labels.tolist()


def test_basins_section_explains_the_plateau(drawn):
    _, _, folder = drawn
    html = (folder / "lecture.html").read_text()
    section = html[html.index('id="basins"'):]
    section = section[: section.index("</section>")]
    for s in TINY.scales:
        level = float(np.sum(gf.gabor_data(TINY.seed, TINY.gabor_n, s=s).y ** 2))
        assert f"For s = {s:g} the plateau is at Σy² = {level:.3g}" in section


@pytest.mark.parametrize("settings", [lecture.QUICK, lecture.FULL], ids=["quick", "full"])
def test_a_decaying_rate_ends_sgd_lower_as_the_caption_says(settings):
    s = settings
    data = gf.linear_data(s.seed, s.linear_n)
    per_epoch = -(-len(data) // s.batch_size)
    common = dict(init=list(s.linear_start), tol=0, seed=s.seed, epochs=s.sgd_epochs, batch_size=s.batch_size)
    plain = gf.fit(gf.linear(), gf.normal(), data, gf.sgd(s.sgd_lr), **common)
    decayed = gf.fit(gf.linear(), gf.normal(), data,
                     gf.sgd(gf.step_decay(s.sgd_lr, s.decay_factor, s.decay_epochs * per_epoch)), **common)
    last_epoch = slice(-per_epoch, None)
    assert np.mean(decayed.history.loss[last_epoch]) < np.mean(plain.history.loss[last_epoch])


def test_quick_settings_are_no_larger_than_full():
    q, f = lecture.QUICK, lecture.FULL
    for name in ("resolution", "critical_grid", "path_steps", "basin_resolution", "basin_steps", "hyper_seeds",
                 "hyper_epochs", "sgd_epochs"):
        assert getattr(q, name) <= getattr(f, name), name


def test_hyperparameter_panels_share_one_y_scale(drawn):
    figures, _, _ = drawn
    panels = [ax for ax in figures["hyperparameters"].axes if ax.get_xlabel()]
    assert len(panels) == 3
    assert len({ax.get_ylim() for ax in panels}) == 1


def test_every_section_says_what_a_student_should_see(drawn):
    _, _, folder = drawn
    html = (folder / "lecture.html").read_text()
    for anchor in ("linear", "gabor-model", "gabor-surface", "gabor-surface-minima", "basins", "sgd", "sgd-gabor",
                   "sgd-batches", "momentum", "momentum-gabor", "nesterov-lookahead", "normalized-steep",
                   "normalized-example", "normalized", "normalized-bias", "hyperparameters", "poisson"):
        start = html.index(f'id="{anchor}"')
        section = html[start:html.index("</section>", start)]
        assert "What to see" in section, anchor


def test_the_sgd_text_quotes_the_fits_it_draws(drawn):
    _, _, folder = drawn
    s, data = TINY, gf.linear_data(TINY.seed, TINY.linear_n)
    floor = float(np.sum((data.y - np.polyval(np.polyfit(data.x, data.y, 1), data.x)) ** 2))
    common = dict(init=list(s.linear_start), tol=0, seed=s.seed)
    plain = gf.fit(gf.linear(), gf.normal(), data, gf.sgd(s.sgd_lr), epochs=s.sgd_epochs, batch_size=s.batch_size,
                   **common)
    html = (folder / "lecture.html").read_text()
    assert f"noise floor (final excess loss {float(plain.loss) - floor:.2g})" in html


def test_hyperparameters_use_the_batch_mean_so_alpha_is_one_step_size(tmp_path, drawn):
    s = TINY  # the sizes `drawn` compiled already
    built = lecture.hyper_figure(s, lecture.linear_problem(s), tmp_path)
    data = gf.linear_data(s.seed, s.linear_n)
    floor = lecture.linear_problem(s).floor / len(data)
    for k, batch in enumerate(s.hyper_batches):
        run = gf.fit(gf.linear(), gf.normal(), data, gf.sgd(s.hyper_lr), init=list(s.linear_start), tol=0,
                     seed=s.seed, epochs=s.hyper_epochs, batch_size=batch, reduction="mean")
        np.testing.assert_allclose(built.results["batch"][k, 0], float(run.loss) - floor, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("settings", [lecture.QUICK, lecture.FULL], ids=["quick", "full"])
def test_the_batch_size_trend_is_the_same_in_quick_and_full_runs(settings, tmp_path):
    """At a fixed number of epochs the largest batch (fewest steps) ends higher than the smallest: the
    trend the text states, in both settings (it flipped when the loss was summed over the batch)."""
    built = lecture.hyper_figure(settings, lecture.linear_problem(settings), tmp_path)
    median = np.nanmedian(built.results["batch"], axis=1)
    assert median[-1] > 10 * median[0]


def test_compare_draws_each_path_on_its_own_panel(tmp_path):
    figures = {}
    save = plots.save

    def keep(fig, folder, name):
        figures[name] = fig
        return save(fig, folder, name)

    opts = [gf.gd(0.01), gf.momentum(0.01), gf.adam(0.05)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", keep)
        lecture.compare(gf.linear(), gf.normal(), gf.linear_data(0), opts, tmp_path, init=[-0.4, 2.2], steps=20,
                        resolution=16)
    fig = figures["compare"]
    contours = [ax for ax in fig.axes if ax.collections and ax.get_xlabel() != "step"]
    assert len(contours) == len(opts)
    for ax, name in zip(contours, ("gd", "momentum", "adam"), strict=True):
        colours = {to_rgb(line.get_color()) for line in ax.get_lines() if len(line.get_xdata()) > 2}
        assert colours == {to_rgb(plots.optimizer_color(name))}
