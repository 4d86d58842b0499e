"""Fit the rational tanh of the fused engine (src/lstmkit/csrc/pointwise.h) and report its float32 error.

    python tools/fit_tanh.py

tanh(x) ~ x P(x^2) / Q(x^2) on [0, END], P of degree 5, Q of degree 3 with Q(0) = 1. The fit solves the
linearised problem x P(x^2) - tanh(x) Q(x^2) = 0 by least squares, reweighting towards the points of largest error
for a number of rounds (a cheap approach to the minimax fit), with the end point weighted heavily so that the
float result there rounds to exactly 1. Each round's coefficients are evaluated as the engine evaluates them
(float32 Horner steps) over a dense grid, and the round with the smallest float32 error wins. Needs numpy.
"""

from __future__ import annotations

import numpy as np

END = 9.0           # the clamp: tanh(9) = 1 - 3e-8 rounds to 1.0 in float32
P_DEGREE, Q_DEGREE = 5, 3
ROUNDS = 200


def horner32(coefficients: np.ndarray, x2: np.ndarray) -> np.ndarray:
    acc = np.float32(coefficients[-1])
    for c in coefficients[-2::-1]:
        acc = (acc * x2 + np.float32(c)).astype(np.float32)
    return acc


def tanh32(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    xc = np.clip(x, -END, END).astype(np.float32)
    x2 = (xc * xc).astype(np.float32)
    return (xc * horner32(p, x2) / horner32(q, x2)).astype(np.float32)


def fit() -> tuple[float, np.ndarray, np.ndarray]:
    x = np.concatenate([np.linspace(0, 1, 4000), np.linspace(1, END, 8000), np.full(50, END)])
    t = np.tanh(x)
    x2 = x * x
    a = np.concatenate([np.stack([x * x2**k for k in range(P_DEGREE + 1)], 1),
                        -np.stack([t * x2**k for k in range(1, Q_DEGREE + 1)], 1)], 1)
    grid = np.linspace(-12, 12, 400001).astype(np.float32)
    exact = np.tanh(grid.astype(np.float64))
    weights = np.ones_like(x)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(ROUNDS):
        solution, *_ = np.linalg.lstsq(a * weights[:, None], t * weights, rcond=None)
        p, q = solution[:P_DEGREE + 1], np.concatenate([[1.0], solution[P_DEGREE + 1:]])
        error = float(np.abs(tanh32(p, q, grid).astype(np.float64) - exact).max())
        if best is None or error < best[0]:
            best = (error, p.copy(), q.copy())
        residual = np.abs(x * np.polyval(p[::-1], x2) / np.polyval(q[::-1], x2) - t)
        weights = weights * (1 + 3 * residual / residual.max())
        weights /= weights.mean()
    assert best is not None
    return best


def main() -> None:
    error, p, q = fit()
    end = float(tanh32(p, q, np.array([END], np.float32))[0])
    poles = np.roots(q[::-1])
    print(f"max |error| over the float32 grid: {error:.3e}; at x = {END}: {end!r}")
    print("Q's roots in x^2 (must all be negative: no pole):", ", ".join(f"{r:.4g}" for r in poles))
    print("P, constant term first:", ", ".join(repr(float(c)) for c in p))
    print("Q, constant term first:", ", ".join(repr(float(c)) for c in q))


if __name__ == "__main__":
    main()
