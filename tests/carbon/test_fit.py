"""The non-negative least-squares fit behind the shape method."""

import itertools

import pytest

from tailpipe_ai.carbon.fit import fit_shapes, nnls

SHAPES = [(100, 300), (1000, 1000), (10000, 1500)]


def test_recovers_known_coefficients_exactly():
    a, b, c = 2e-5, 1e-3, 0.05
    wh = [a * i + b * o + c for i, o in SHAPES]
    fit = fit_shapes(SHAPES, wh)
    assert fit["per_input_token"] == pytest.approx(a)
    assert fit["per_output_token"] == pytest.approx(b)
    assert fit["per_request"] == pytest.approx(c)


def test_negative_unconstrained_solution_is_clamped_and_optimal():
    # o3-mini (high): the long query uses less energy than the medium one, so OLS wants a < 0.
    wh = [2.319, 5.128, 4.596]
    fit = fit_shapes(SHAPES, wh)
    assert all(v >= 0 for v in fit.values())
    rows = [[i, o, 1.0] for i, o in SHAPES]
    best = sum(
        (sum(r * x for r, x in zip(row, fit.values(), strict=False)) - y) ** 2 for row, y in zip(rows, wh, strict=False)
    )
    # no non-negative point on a coarse grid around the optimum does better
    for da, db, dc in itertools.product((-1e-5, 0, 1e-5), (-1e-4, 0, 1e-4), (-0.05, 0, 0.05)):
        x = [
            max(fit["per_input_token"] + da, 0),
            max(fit["per_output_token"] + db, 0),
            max(fit["per_request"] + dc, 0),
        ]
        rss = sum((sum(r * v for r, v in zip(row, x, strict=False)) - y) ** 2 for row, y in zip(rows, wh, strict=False))
        assert rss >= best - 1e-12


def test_two_shapes_fix_the_request_term_at_zero():
    a, b = 5e-5, 8e-4
    fit = fit_shapes(SHAPES[:2], [a * i + b * o for i, o in SHAPES[:2]])
    assert fit == pytest.approx({"per_input_token": a, "per_output_token": b, "per_request": 0.0})


def test_two_shapes_with_a_negative_input_term_clamp_to_output_only():
    # LLaMA-3-8B (no long shape): the exact two-point solution has a negative input term.
    fit = fit_shapes(SHAPES[:2], [0.092, 0.289])
    assert fit["per_input_token"] == 0 and fit["per_request"] == 0
    assert fit["per_output_token"] > 0


def test_nnls_all_zero_when_data_is_negative():
    x, rss = nnls([[1.0, 0.0], [0.0, 1.0]], [-1.0, -2.0])
    assert x == [0.0, 0.0]
    assert rss == pytest.approx(5.0)


def test_rejects_too_few_shapes():
    with pytest.raises(ValueError):
        fit_shapes(SHAPES[:1], [1.0])
