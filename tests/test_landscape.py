"""Loss landscapes: surfaces and slices, critical points against functions with known ones,
the Gabor critical points against finite differences, and basin maps against the Hessian
test and long runs from each basin."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradfit as gf
from gradfit import landscape as ls
from gradfit.errors import GradfitError

# -- critical points of functions whose critical points are known -------------------------

KNOWN = {
    # name: (f, box, [(point, kind), ...])
    "saddle x² - y²": (lambda v: v[0] ** 2 - v[1] ** 2, [(-1, 1), (-1.3, 0.9)], [((0, 0), "saddle")]),
    "tilted saddle x² + 3xy + y² + x": (
        lambda v: v[0] ** 2 + 3 * v[0] * v[1] + v[1] ** 2 + v[0], [(-2, 2), (-2, 2)],
        # ∇ = (2x + 3y + 1, 3x + 2y) = 0 at (0.4, -0.6); Hessian [[2, 3], [3, 2]] has eigenvalues 5 and -1
        [((0.4, -0.6), "saddle")],
    ),
    "bowl": (lambda v: (v[0] - 0.3) ** 2 + 4 * (v[1] + 0.2) ** 2, [(-1, 1), (-1, 1)], [((0.3, -0.2), "minimum")]),
    "dome": (lambda v: -(v[0] ** 2) - 2 * v[1] ** 2, [(-1, 1.5), (-1, 1)], [((0, 0), "maximum")]),
    "double well (x² - 1)² + y²": (
        lambda v: (v[0] ** 2 - 1) ** 2 + v[1] ** 2, [(-2, 2), (-1, 1)],
        [((-1, 0), "minimum"), ((1, 0), "minimum"), ((0, 0), "saddle")],
    ),
    "monkey saddle x³ - 3xy²": (lambda v: v[0] ** 3 - 3 * v[0] * v[1] ** 2, [(-1, 1), (-1, 1)], []),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_critical_points_of_known_functions(name):
    f, box, expected = KNOWN[name]
    found = ls.critical_points(f, box, grid=15)
    proper = [p for p in found if p.kind != "degenerate"]
    assert len(proper) == len(expected), [(p.theta, p.kind) for p in found]
    for point, kind in expected:
        match = [p for p in proper if np.allclose(p.theta, point, atol=1e-7)]
        assert len(match) == 1, (point, [(p.theta, p.kind) for p in found])
        assert match[0].kind == kind
        assert match[0].grad_norm < 1e-8


def test_tilted_saddle_eigenvalues_and_order():
    f, box, _ = KNOWN["tilted saddle x² + 3xy + y² + x"]
    (point,) = ls.critical_points(f, box, grid=10)
    np.testing.assert_allclose(point.eigenvalues, [-1.0, 5.0], atol=1e-10)
    np.testing.assert_allclose(point.value, 0.4**2 + 3 * 0.4 * -0.6 + 0.36 + 0.4, atol=1e-12)
    f, box, _ = KNOWN["double well (x² - 1)² + y²"]
    kinds = [p.kind for p in ls.critical_points(f, box, grid=15)]
    assert kinds == ["minimum", "minimum", "saddle"]  # minima first, then by kind


def test_monkey_saddle_is_degenerate_not_a_minimum():
    f, box, _ = KNOWN["monkey saddle x³ - 3xy²"]
    found = ls.critical_points(f, box, grid=15, gtol=1e-5)
    assert found and all(p.kind == "degenerate" for p in found)


@pytest.mark.parametrize(
    "eigenvalues,kind",
    [([1.0, 2.0], "minimum"), ([-1.0, -0.1], "maximum"), ([-1.0, 3.0], "saddle"), ([0.0, 2.0], "degenerate"),
     ([1e-12, 2.0], "degenerate"), ([1e-3, 2.0], "minimum"), ([0.5, -2.0, 3.0], "saddle")],
)
def test_classify(eigenvalues, kind):
    assert ls.classify(eigenvalues) == kind


def test_bad_box_is_refused():
    with pytest.raises(GradfitError, match="low < high"):
        ls.critical_points(lambda v: v[0] ** 2, [(1, 0)])


# -- the loss function and its surfaces -----------------------------------------------------


def test_loss_function_matches_the_reference_figures(linear_12, gabor_30):
    fn = ls.LossFunction(gf.linear(), gf.normal(), linear_12)
    assert fn(np.array([0.6, -0.2])) == pytest.approx(12.367, abs=5e-4)
    np.testing.assert_allclose(fn.grad(np.array([0.6, -0.2])), [-21.904, -26.840], atol=5e-4)
    losses = fn(np.array([[0.6, -0.2], [1.6, -0.5]]))
    np.testing.assert_allclose(losses, [12.367, 5.020], atol=5e-4)
    gab = ls.LossFunction(gf.gabor(32), gf.normal(), gabor_30)
    assert gab(np.array([0.6, -0.2])) == pytest.approx(16.419, abs=5e-4)


def test_hessian_matches_finite_differences(rng):
    data = gf.gabor_data(0)
    fn = ls.LossFunction(gf.gabor(), gf.normal(), data)
    theta = np.array([0.4, 15.0])
    h = 1e-5
    cols = [(fn.grad(theta + h * e) - fn.grad(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(fn.hessian(theta), np.column_stack(cols), rtol=1e-6, atol=1e-6)
    # the linear model's Hessian is 2 XᵀX exactly
    lin = gf.linear_data(0)
    x = np.column_stack([np.ones(len(lin)), lin.x])
    np.testing.assert_allclose(ls.LossFunction(gf.linear(), gf.normal(), lin).hessian(rng.normal(size=2)),
                               2 * x.T @ x, rtol=1e-12)


def test_surface_over_two_named_parameters_holds_the_others():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 2))
    data = gf.Dataset(x, 1.0 + 2.0 * x[:, 0] - x[:, 1])
    fn = ls.LossFunction(gf.linear(2), gf.normal(), data)
    held = np.array([0.5, 1.5, -0.7])
    surf = ls.surface(fn, ("phi2", "phi0"), ((-2.0, 1.0), (0.0, 2.0)), at=held, resolution=(7, 5))
    assert surf.loss.shape == (5, 7) and surf.labels == ("phi2", "phi0")
    j, i = 3, 2  # loss[j, i] is at (a[i], b[j])
    point = np.array([surf.b[j], held[1], surf.a[i]])
    assert surf.loss[j, i] == pytest.approx(fn(point), rel=1e-13)
    np.testing.assert_allclose(surf.theta(surf.a[i], surf.b[j]), point)
    np.testing.assert_allclose(surf.project(point[None]), [[surf.a[i], surf.b[j]]], atol=1e-12)
    assert surf.settings["held at"] == {"phi1": 1.5}


def test_surface_refuses_unknown_or_repeated_names():
    fn = ls.LossFunction(gf.gabor(), gf.normal(), gf.gabor_data(0))
    with pytest.raises(GradfitError, match="no parameter 'phi9'.*phi0, phi1"):
        ls.surface(fn, ("phi0", "phi9"))
    with pytest.raises(GradfitError, match="two different"):
        ls.surface(fn, ("phi0", "phi0"))


def test_filter_normalised_directions_scale_each_filter_to_the_point():
    model = gf.shallow(width=4, n_inputs=2)
    center = model.default_init(3) + 0.1
    d = ls.filter_normalized_directions(model, center, seed=5)
    assert d.shape == (2, model.size)
    w, dirs = model.named(center), [model.named(row) for row in d]
    for direction in dirs:
        # each row of a weight matrix (one unit's incoming weights) has the norm of that row of θ
        for name in ("omega0", "omega1"):
            np.testing.assert_allclose(np.linalg.norm(direction[name], axis=1), np.linalg.norm(w[name], axis=1))
        for name in ("beta0", "beta1"):  # a bias vector is one filter
            assert np.linalg.norm(direction[name]) == pytest.approx(np.linalg.norm(w[name]))
    np.testing.assert_array_equal(d, ls.filter_normalized_directions(model, center, seed=5))
    assert not np.allclose(d, ls.filter_normalized_directions(model, center, seed=6))
    # scalar parameters are one filter together; a zero point gets unit directions
    lin = gf.linear(3)
    d = ls.filter_normalized_directions(lin, [1.0, -2.0, 0.5, 2.0])
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), np.linalg.norm([1.0, -2.0, 0.5, 2.0]))
    np.testing.assert_allclose(np.linalg.norm(ls.filter_normalized_directions(lin, np.zeros(4)), axis=1), 1.0)


def test_random_slice_is_centred_and_projects_exactly():
    data = gf.linear_data(0)
    fn = ls.LossFunction(gf.shallow(3), gf.normal(), data)
    center = gf.shallow(3).default_init(1)
    surf = ls.random_slice(fn, center, seed=2, span=0.8, resolution=9)
    assert surf.kind == "random" and surf.box == ((-0.8, 0.8), (-0.8, 0.8))
    assert surf.loss[4, 4] == pytest.approx(fn(center), rel=1e-12)
    on_plane = surf.theta(np.array([0.3, -0.5]), np.array([-0.2, 0.1]))
    np.testing.assert_allclose(surf.project(on_plane), [[0.3, -0.2], [-0.5, 0.1]], atol=1e-12)
    np.testing.assert_allclose(surf.loss[0, 8], fn(surf.theta(0.8, -0.8)), rtol=1e-12)


# -- the Gabor model's critical points, checked independently --------------------------------


def _gabor_loss(phi, x, y, s):
    z = phi[0] + 0.06 * phi[1] * x
    return np.sum((np.sin(z) * np.exp(-z * z / s) - y) ** 2)


def _fd_grad_hessian(phi, x, y, s, h=1e-4):
    def grad(p):
        return np.array([(_gabor_loss(p + h * e, x, y, s) - _gabor_loss(p - h * e, x, y, s)) / (2 * h)
                         for e in np.eye(2)])

    hess = np.column_stack([(grad(phi + h * e) - grad(phi - h * e)) / (2 * h) for e in np.eye(2)])
    return grad(phi), 0.5 * (hess + hess.T)


@pytest.fixture(scope="module")
def gabor32():
    data = gf.gabor_data(0, s=32.0)
    fn = ls.LossFunction(gf.gabor(32.0), gf.normal(), data)
    box = ((-10.0, 10.0), (2.5, 22.5))
    return data, fn, box, ls.critical_points(fn.scalar, box, grid=30)


def test_gabor_critical_points_pass_the_finite_difference_hessian_test(gabor32):
    data, _, _, points = gabor32
    kinds = {p.kind for p in points}
    assert {"minimum", "saddle", "maximum"} <= kinds
    minima = [p for p in points if p.kind == "minimum"]
    # the global minimum lies near the parameters the data were made with
    assert np.max(np.abs(minima[0].theta - [0.0, 16.6])) < 0.2 and len(minima) > 2
    for p in points:
        g, h = _fd_grad_hessian(p.theta, data.x, data.y, 32.0)
        assert np.linalg.norm(g) < 1e-5 * (1 + p.value)
        lam = np.linalg.eigvalsh(h)
        np.testing.assert_allclose(lam, p.eigenvalues, rtol=1e-3, atol=1e-4)
        assert ls.classify(lam, rtol=1e-3) == p.kind


@pytest.fixture(scope="module")
def gabor32_basins(gabor32):
    data, _, box, _ = gabor32
    return ls.basins(gf.gabor(32.0), gf.normal(), data, gf.gd(0.1), box, resolution=24, steps=600)


def test_basin_minima_are_the_hessian_minima(gabor32, gabor32_basins):
    _, fn, box, points = gabor32
    bm = gabor32_basins
    minima = np.array([p.theta for p in points if p.kind == "minimum"])
    assert bm.labels.shape == (24, 24) and bm.ends.shape == (24, 24, 2)
    assert len(bm.minima) >= 3
    for m, loss in zip(bm.minima, bm.minima_loss, strict=True):
        distance = np.min(np.max(np.abs(minima - m), axis=1))
        assert distance < 1e-6, m  # each basin's minimum is one of the Hessian test's minima
        assert loss == pytest.approx(fn(m), rel=1e-12)
    assert np.all(np.diff(bm.minima_loss) > 0)
    np.testing.assert_allclose(bm.minima[0], minima[0], atol=1e-6)  # label 0 is the global minimum
    assert bm.shares.sum() + bm.unsettled + bm.left_box == pytest.approx(1.0)
    assert bm.shares[0] > 0.1


def test_long_runs_from_each_basin_end_at_its_minimum(gabor32, gabor32_basins):
    data, _, _, _ = gabor32
    bm = gabor32_basins
    rng = np.random.default_rng(0)
    starts, expected = [], []
    for m in range(len(bm.minima)):
        cells = np.argwhere(bm.labels == m)
        for j, i in cells[rng.choice(len(cells), size=min(3, len(cells)), replace=False)]:
            starts.append(bm.start(i, j))
            expected.append(m)
    long = gf.fit(gf.gabor(32.0), gf.normal(), data, gf.gd(0.1), init=np.array(starts), steps=20000, tol=1e-9)
    for end, m in zip(long.params, expected, strict=True):
        np.testing.assert_allclose(end, bm.minima[m], atol=1e-5)


def test_basins_with_given_minima_label_the_same(gabor32, gabor32_basins):
    data, _, box, points = gabor32
    bm = gabor32_basins
    given = ls.basins(gf.gabor(32.0), gf.normal(), data, gf.gd(0.1), box, resolution=24, steps=600,
                      minima=[p.theta for p in points if p.kind == "minimum"])
    # the same starts settle; each settles in the same minimum
    for m, centre in enumerate(bm.minima):
        k = int(np.argmin(np.max(np.abs(given.minima - centre), axis=1)))
        np.testing.assert_array_equal(given.labels == k, bm.labels == m)


def test_approach_finds_a_start_that_descends_onto_the_point():
    data = gf.gabor_data(0, s=32.0)
    fn = ls.LossFunction(gf.gabor(32.0), gf.normal(), data)
    end = np.array([0.3, 16.0])
    start, steps = ls.approach(fn, end, 0.05, 1.0)
    assert np.linalg.norm(start - end) >= 1.0 and steps > 3
    forward = gf.fit(gf.gabor(32.0), gf.normal(), data, gf.gd(0.05), init=start, steps=steps, tol=0)
    np.testing.assert_allclose(forward.x, end, atol=1e-8)


def test_restricted_surface_function_is_the_loss_on_the_plane(x64):
    data = gf.linear_data(0)
    fn = ls.LossFunction(gf.linear(), gf.normal(), data)
    surf = ls.surface(fn, ("phi0", "phi1"), ((0, 1), (0, 1)), resolution=3)
    f = surf.restricted(fn)
    assert float(f(jnp.array([0.2, 0.7]))) == pytest.approx(fn(np.array([0.2, 0.7])), rel=1e-12)
