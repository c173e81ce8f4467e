"""Fit per-input-token, per-output-token and per-request energy to measured prompt shapes.

"How Hungry is AI?" gives Wh per query for three fixed shapes (in/out tokens 100/300, 1000/1000,
10000/1500). Energy per query = e_in * input + e_out * output + e_req is still "tokens x draw per
token", only per token kind. With three unknowns and three (or two) shapes we solve a non-negative
least-squares problem exactly by trying every set of free coefficients (at most 2^3 = 8 cases), which
is tiny, dependency-free and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

# Column order of the design matrix.
COEFFICIENTS = ("per_input_token", "per_output_token", "per_request")


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Solve the square system a x = b by Gauss-Jordan elimination with partial pivoting."""
    n = len(b)
    m = [[*row[:], rhs] for row, rhs in zip(a, b, strict=False)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                factor = m[r][col] / m[col][col]
                for c in range(col, n + 1):
                    m[r][c] -= factor * m[col][c]
    return [m[i][n] / m[i][i] for i in range(n)]


def _least_squares(rows: Sequence[Sequence[float]], y: Sequence[float], free: Sequence[int]) -> list[float] | None:
    """Ordinary least squares restricted to the `free` columns (normal equations)."""
    k = len(free)
    ata = [[sum(r[free[i]] * r[free[j]] for r in rows) for j in range(k)] for i in range(k)]
    aty = [sum(r[free[i]] * v for r, v in zip(rows, y, strict=False)) for i in range(k)]
    return _solve(ata, aty)


def nnls(rows: Sequence[Sequence[float]], y: Sequence[float]) -> tuple[list[float], float]:
    """Non-negative least squares for a handful of columns: (coefficients, residual sum of squares).

    Every subset of columns is solved without the constraint; a subset whose solution is non-negative
    is feasible, and the feasible solution with the smallest residual is the NNLS optimum (the problem
    is convex, so the optimum is the unconstrained optimum over its own support). Ties go to the
    larger support, so an exact fit uses all coefficients it can.
    """
    ncols = len(rows[0])
    best: tuple[list[float], float] | None = None
    for size in range(ncols, -1, -1):
        for free in combinations(range(ncols), size):
            x = [0.0] * ncols
            if free:
                sol = _least_squares(rows, y, free)
                if sol is None or any(v < 0 for v in sol):
                    continue
                for idx, v in zip(free, sol, strict=False):
                    x[idx] = v
            rss = sum((sum(c * v for c, v in zip(r, x, strict=False)) - t) ** 2 for r, t in zip(rows, y, strict=False))
            if best is None or rss < best[1] - 1e-15:
                best = (x, rss)
    assert best is not None  # the empty support is always feasible
    return best


def fit_shapes(shapes: Sequence[tuple[int, int]], wh: Sequence[float]) -> dict[str, float]:
    """Fit (per_input_token, per_output_token, per_request) Wh to measured (input, output) shapes.

    With only two shapes the system is under-determined; the per-request term is then fixed at zero
    and the two per-token terms are fitted (documented in docs/methodology.md).
    """
    if len(shapes) != len(wh) or len(shapes) < 2:
        raise ValueError("need at least two measured shapes, each with its Wh")
    if len(shapes) >= 3:
        rows = [[float(i), float(o), 1.0] for i, o in shapes]
        x, _ = nnls(rows, wh)
    else:
        rows = [[float(i), float(o)] for i, o in shapes]
        x2, _ = nnls(rows, wh)
        x = [x2[0], x2[1], 0.0]
    return dict(zip(COEFFICIENTS, x, strict=False))
