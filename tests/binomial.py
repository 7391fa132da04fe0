"""Bounds for randomised checks: exact binomial tails, so each check states its flake odds."""

from __future__ import annotations

from math import exp, lgamma, log

FALSE_FAILURE = 1e-6  # the most a randomised check may fail by chance


def tail_bounds(n: int, p: float, alpha: float = FALSE_FAILURE) -> tuple[int, int]:
    """The narrowest ``(lo, hi)`` with P(X < lo) + P(X > hi) < ``alpha`` for X ~ B(n, p),
    each tail below alpha / 2 (exact sums, no normal approximation)."""
    pmf = _pmf(n, p)
    lo, below = 0, 0.0
    while below + pmf[lo] < alpha / 2:
        below += pmf[lo]
        lo += 1
    hi, above = n, 0.0
    while above + pmf[hi] < alpha / 2:
        above += pmf[hi]
        hi -= 1
    return lo, hi


def false_failure(n: int, p: float, lo: int, hi: int) -> float:
    """P(X < lo or X > hi) for X ~ B(n, p): the chance a correct router fails the check."""
    return sum(q for k, q in enumerate(_pmf(n, p)) if not lo <= k <= hi)


def _pmf(n: int, p: float) -> list[float]:
    # in logs: comb(n, k) * p**k overflows a float for n in the thousands
    def log_pmf(k: int) -> float:
        return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * log(p) + (n - k) * log(1 - p)

    return [exp(log_pmf(k)) for k in range(n + 1)]
