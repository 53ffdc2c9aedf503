"""Tests and intervals for item-paired, clustered accuracy data, free of the study's
vocabulary.

Every quantity here is computed from an items x cells matrix of 0/1 correctness,
where the cells of one item (its languages, variants and prompts) belong together:
items are parallel translations, so resampling and randomization act on whole items.
Items also come in clusters (several questions on one passage) whose noise is shared,
so resampling, sign flips, the TOST and the power calculation act on whole clusters.
With one item per cluster every function gives what its item-level form gives.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .reasons import NO_INTERVAL

SIGN_FLIPS = 10_000
PERMUTATIONS = 20_000
POWER = 0.80


def cluster_totals(values: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of `values` and cluster sizes; `clusters[i]` is item i's cluster
    number (0..k-1), None for one cluster per item."""
    if clusters is None:
        return values.astype(float), np.ones(values.size)
    return np.bincount(clusters, weights=values), np.bincount(clusters).astype(float)


@dataclass(frozen=True)
class Resampling:
    """Shared randomness of one comparison: `counts[b, i]` is how often item i is drawn
    in bootstrap resample b (whole clusters are drawn; one matrix for every model and
    effect, so all are paired), and `signs` the sign flips of the randomization tests,
    one per cluster and repeated on its items. `clusters` maps items to clusters."""

    counts: np.ndarray
    signs: np.ndarray
    clusters: np.ndarray
    confidence: float
    seed: int

    @classmethod
    def draw(
        cls, clusters: np.ndarray | int, samples: int, confidence: float, seed: int, flips: int = SIGN_FLIPS
    ) -> Resampling:
        """`clusters`: each item's cluster number (0..k-1), or a number of items that
        are clusters of one. One item per cluster gives the item-level draws."""
        clusters = np.arange(clusters) if isinstance(clusters, int) else np.asarray(clusters)
        n_clusters = int(clusters.max()) + 1
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=samples).astype(float)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(flips, n_clusters))
        return cls(
            np.ascontiguousarray(counts[:, clusters]),
            np.ascontiguousarray(signs[:, clusters]),
            clusters,
            confidence,
            seed,
        )

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1

    @property
    def singletons(self) -> bool:
        """Every cluster holds one item."""
        return self.n_clusters == self.clusters.size

    @property
    def too_few(self) -> bool:
        """Too few clusters for an interval at this confidence (minimum_clusters)."""
        return self.n_clusters < minimum_clusters(self.confidence)

    def interval(self, draws: np.ndarray) -> tuple[float, float]:
        """Expanded percentile interval of bootstrap draws of a statistic of the items;
        NaN where the clusters are too few for one."""
        if self.too_few:
            return math.nan, math.nan
        return percentile_interval(draws, expanded_confidence(self.confidence, self.n_clusters))

    def means(self, values: np.ndarray) -> np.ndarray:
        """Bootstrap draws of the column means of an items x columns array (resamples x
        columns), as one matrix product; a resample's size varies with its clusters'."""
        return self.counts @ values / self.counts.sum(axis=1, keepdims=True)


def minimum_clusters(confidence: float) -> int:
    """The fewest clusters an interval at `confidence` is computed on: the fewest on which
    a two-sided paired test at 1 - confidence can reject at all. With k clusters the
    sign-flip test's smallest p-value is 2 / 2^k (the data's sign pattern and its
    mirror), so k must satisfy 2^(1-k) <= 1 - confidence: 6 at 95%, 8 at 99%. Below it
    the data cannot tell any effect from none, and a bootstrap interval would only look
    as if they could: its resamples are few (one cluster gives one: a zero-width
    "interval"), its percentiles the extreme resamples themselves."""
    return max(2, math.ceil(1 - math.log2(1 - confidence) - 1e-9))


def expanded_confidence(confidence: float, n_items: int) -> float:
    """Coverage to ask of the bootstrap percentiles so that the interval has about
    `confidence`: the percentile interval is as narrow as a z-interval with the
    divide-by-n spread, too narrow for few items. Hesterberg's expanded percentile
    interval widens it to match t(n-1) with the divide-by-(n-1) spread; for hundreds
    of items the change is negligible."""
    if n_items < 2:
        return confidence
    alpha = 1 - confidence
    z = math.sqrt(n_items / (n_items - 1)) * stats.t.ppf(1 - alpha / 2, n_items - 1)
    return float(1 - 2 * stats.norm.sf(z))


# A share of items, or a weighted sum of shares (weights such as 1/3), that is exactly 0
# comes out of float sums as 1e-17 or so, while one that is not lies at least 1/(items x
# the weights' denominator) from it. Within this of 0 a value is 0, so that "the interval
# lies below 0" reads the data and not the rounding.
ROUNDING = 1e-12


def without_rounding(value: float) -> float:
    return 0.0 if abs(value) <= ROUNDING else value


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval over the defined draws (NaN draws are resamples in which the
    statistic does not exist, e.g. a headroom of zero)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    return without_rounding(float(np.quantile(finite, tail))), without_rounding(float(np.quantile(finite, 1 - tail)))


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided p-value from inverting the percentile interval: twice the smaller share
    of draws on either side of zero."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return math.nan
    below, above = np.sum(finite <= 0), np.sum(finite >= 0)
    return float(min(1.0, 2 * (1 + min(below, above)) / (finite.size + 1)))


def sign_flip_p(values: np.ndarray, signs: np.ndarray) -> float:
    """Two-sided randomization p-value of a paired mean: with no effect, swapping the two
    conditions within a cluster flips the sign of its items' differences (`signs` is
    constant within a cluster)."""
    observed = abs(float(values.mean()))
    null = np.abs(signs @ values.astype(np.float32)) / values.size
    # 0/1 data make ties common; float32 sums round at ~1e-7, far below the spacing
    # of distinct flipped means (a weight / n), so ties are met within 1e-6.
    return float((1 + np.sum(null >= observed - 1e-6)) / (signs.shape[0] + 1))


def relabelling_p(values: np.ndarray, k: int, seed: int, limit: int = PERMUTATIONS) -> tuple[float, int, bool]:
    """Two-sided permutation p-value of mean(values[first k]) - mean(values[rest]) over
    relabellings of which k units form the first group: all of them when there are at
    most `limit` (exact), else `limit` random ones. Returns (p, relabellings, exact)."""
    units = values.size
    total = math.comb(units, k)
    observed = abs(values[:k].mean() - values[k:].mean())
    if total <= limit:
        chosen = np.zeros((total, units), dtype=bool)
        for row, combination in enumerate(itertools.combinations(range(units), k)):
            chosen[row, list(combination)] = True
        exact = True
    else:
        rng = np.random.default_rng(seed)
        chosen = np.argsort(rng.random((limit, units)), axis=1) < k
        exact = False
    null = np.abs((chosen @ values) / k - ((~chosen) @ values) / (units - k))
    extreme = int(np.sum(null >= observed - 1e-12))
    p = extreme / total if exact else (1 + extreme) / (limit + 1)
    return float(p), int(chosen.shape[0]), exact


def mcnemar_p(before: np.ndarray, after: np.ndarray) -> float:
    """Exact McNemar test of paired 0/1 outcomes (binomial on the discordant pairs)."""
    from statsmodels.stats.contingency_tables import mcnemar

    table = np.array(
        [
            [np.sum((before == 1) & (after == 1)), np.sum((before == 1) & (after == 0))],
            [np.sum((before == 0) & (after == 1)), np.sum((before == 0) & (after == 0))],
        ]
    )
    return float(mcnemar(table, exact=True).pvalue)


def _el_log_ratio(values: np.ndarray, mu: float, low: float, high: float, clusters: np.ndarray | None = None) -> float:
    """-2 log empirical likelihood ratio for "the item mean is mu", over distributions on
    the observed clusters plus one cluster at the end of the scale [low, high] beyond mu.

    The clusters enter through the estimating equation of a ratio mean: cluster c with
    total V_c over m_c items contributes z_c = V_c - mu m_c (the item value itself when
    every cluster has one item). Admitting the end as a support point (a cluster of the
    mean size at that end) is what keeps a sample without variation from looking
    certain: n identical differences are also what a true mean of mu would produce with
    probability about (1 - |mu|/|end|)^n, and the ratio says so."""
    totals, sizes = cluster_totals(values, clusters)
    n, mean = totals.size, float(totals.sum() / sizes.sum())
    if mu == mean:
        return 0.0
    end = high if mu > mean else low
    z = totals - mu * sizes
    z_end = sizes.mean() * (end - mu)
    gap = z_end - z
    if np.all(gap * z_end > 0):
        # The constrained optimum in closed form when it puts mass on the end: weight
        # z_end / (n (z_end - z_c)) on each cluster, the rest (if any) on the end.
        weights = z_end / gap
        if weights.sum() <= n:
            return float(-2 * np.sum(np.log(weights)))
    low_lambda, high_lambda = -1 / z.max(), -1 / z.min()
    shrink = 1e-10 * (high_lambda - low_lambda)
    lam = optimize.brentq(lambda t: np.sum(z / (1 + t * z)), low_lambda + shrink, high_lambda - shrink, xtol=1e-14)
    return float(2 * np.sum(np.log1p(lam * z)))


def equivalence_p(
    values: np.ndarray, margin: float, low: float, high: float, clusters: np.ndarray | None = None
) -> float:
    """TOST p-value for |mean| < margin: the larger of the one-sided empirical likelihood
    p-values against mean >= margin and against mean <= -margin, the per-item values
    lying in [low, high], clustered by `clusters`. Equivalence at level a is the
    (1 - 2a) interval of `equivalence_interval` inside the margins."""
    totals, sizes = cluster_totals(values, clusters)
    mean = float(totals.sum() / sizes.sum())
    p = []
    for mu in (margin, -margin):
        if not low < mu < high:
            p.append(0.0)  # the scale cannot reach beyond this margin
            continue
        root = math.sqrt(max(_el_log_ratio(values, mu, low, high, clusters), 0.0))
        signed = root if mean > mu else -root
        # Against mean >= +margin, small when the mean lies well below it; against
        # mean <= -margin, small when it lies well above.
        p.append(float(stats.norm.cdf(signed) if mu > 0 else stats.norm.sf(signed)))
    return max(p)


def equivalence_interval(
    values: np.ndarray, alpha: float, low: float, high: float, clusters: np.ndarray | None = None
) -> tuple[float, float]:
    """The (1 - 2 alpha) empirical likelihood interval that the TOST at level alpha
    inverts: the means whose one-sided test is not rejected at alpha. The TOST declares
    equivalence exactly when this interval lies inside the margins."""
    totals, sizes = cluster_totals(values, clusters)
    mean = float(totals.sum() / sizes.sum())
    critical = stats.norm.ppf(1 - alpha) ** 2
    bounds = []
    for end in (low, high):
        if mean == end:
            bounds.append(end)
            continue
        step = 1e-9 * (high - low)
        excess = lambda mu: _el_log_ratio(values, mu, low, high, clusters) - critical  # noqa: E731
        inner, outer = (mean + step, end - step) if end > mean else (end + step, mean - step)
        if excess(end - step if end > mean else end + step) <= 0:
            bounds.append(end)
        else:
            bounds.append(float(optimize.brentq(excess, inner, outer, xtol=1e-10)))
    return bounds[0], bounds[1]


def minimum_detectable_effect(
    values: np.ndarray, confidence: float, power: float = POWER, clusters: np.ndarray | None = None
) -> float:
    """The paired mean difference a two-sided test at level 1 - confidence detects with
    the given power, for the spread of `values` between clusters (normal approximation;
    the linearised variance of a ratio mean, the item-level one for clusters of one)."""
    totals, sizes = cluster_totals(values, clusters)
    n = totals.size
    if n < 2:
        return math.nan
    residual = totals - sizes * (totals.sum() / sizes.sum())
    spread = math.sqrt(n / (n - 1) * float(np.sum(residual**2))) / sizes.sum()
    if spread < 1e-12:
        return math.nan
    z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power)
    return float(z * spread)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values over the finite entries (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted.tolist()


def correlation(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Pearson or Spearman correlation along the last axis (any leading shape)."""
    if method == "spearman":
        x, y = stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=-1) / np.where(denominator > 0, denominator, 1), np.nan)


def _fisher_se(n: int, method: str, covariates: int) -> float:
    """Standard error of atanh(r) for n units (Fieller, Hartley and Pearson's 1.06 for
    Spearman), less a degree of freedom per covariate of a partial correlation."""
    dof = n - 3 - covariates
    return math.sqrt((1.06 if method == "spearman" else 1.0) / dof) if dof > 0 else math.inf


def fisher_interval(r: float, n: int, confidence: float, method: str, covariates: int = 0) -> tuple[float, float]:
    """Interval of a correlation across n independent units from Fisher's z: the spread
    between the units, not the measurement noise within them, sets its width. NaN where
    it has none: too few units (an infinite standard error would give [-1, 1]) or r at
    +-1, where atanh is infinite and the interval would be [r, r], zero-width
    (fisher_gap says why)."""
    if fisher_gap(r, n, method, covariates):
        return math.nan, math.nan
    half = stats.norm.ppf(1 - (1 - confidence) / 2) * _fisher_se(n, method, covariates)
    centre = math.atanh(r)
    return math.tanh(centre - half), math.tanh(centre + half)


def fisher_gap(r: float, n: int, method: str, covariates: int = 0, units: str = "units") -> str:
    """Why a correlation r across n `units` has no Fisher-z interval ("" where it has one)."""
    if not np.isfinite(r):
        return "no correlation"
    if not math.isfinite(_fisher_se(n, method, covariates)):
        return f"{NO_INTERVAL}{n} {units} are too few for a Fisher-z interval"
    if perfect_correlation(r):
        # Every unit on one line (Pearson) or in one order (Spearman, common with a few
        # models): Fisher's z is infinite, and its interval would be the point r alone.
        return f"{NO_INTERVAL}the correlation is {r:+.0f} across the {n} {units}, where Fisher's z has no spread"
    return ""


def perfect_correlation(r: float) -> bool:
    return abs(r) >= 1 - ROUNDING


def correlation_power(n: int, r: float, alpha: float, method: str = "pearson", covariates: int = 0) -> float:
    """Power of a two-sided test at `alpha` against a true correlation r across n units."""
    se = _fisher_se(n, method, covariates)
    if not math.isfinite(se):
        return math.nan
    shift, critical = math.atanh(r) / se, stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def detectable_correlation(
    n: int, alpha: float, power: float = POWER, method: str = "pearson", covariates: int = 0
) -> float:
    """The correlation that a two-sided test at `alpha` detects with `power` across n units."""
    se = _fisher_se(n, method, covariates)
    return math.tanh((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se) if math.isfinite(se) else math.nan


def unit_permutations(units: int, seed: int, limit: int = PERMUTATIONS) -> tuple[np.ndarray, bool]:
    """Orderings of `units` for a pairing permutation test: every one when there are at
    most `limit` (exact), else `limit` random ones with the identity first."""
    if math.factorial(units) <= limit:
        return np.array(list(itertools.permutations(range(units)))), True
    rng = np.random.default_rng(seed)
    orders = np.argsort(rng.random((limit, units)), axis=1)
    orders[0] = np.arange(units)
    return orders, False


def permutation_p(observed: float, null: np.ndarray, exact: bool) -> float:
    """Two-sided p from a permutation distribution that includes the observed pairing."""
    if not np.isfinite(observed):
        return math.nan
    null = null[np.isfinite(null)]
    extreme = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    return float(extreme / null.size) if exact else float((extreme + 1) / (null.size + 1))


@dataclass(frozen=True)
class LogitInteraction:
    """Interaction coefficients (log odds ratios) of a clustered logistic model, or the
    reason there are none."""

    estimates: dict[str, tuple[float, float, float, float]]  # term -> estimate, low, high, p
    note: str = ""


def gee_interactions(frame, formula: str, terms: list[str], cluster: str, confidence: float) -> LogitInteraction:
    """Fit a binomial GEE (independence working correlation, robust standard errors
    clustered by `cluster`) and return the named coefficients. Cells without both
    outcomes have no finite log odds; the caller checks them, and a fit that still
    fails or does not converge gives NaN with the reason."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    empty = {term: (math.nan,) * 4 for term in terms}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            model = smf.gee(
                formula,
                groups=cluster,
                data=frame,
                family=sm.families.Binomial(),
                cov_struct=sm.cov_struct.Independence(),
            )
            # Logistic GEE converges from zero; the default start (a full GLM fit) costs
            # ten times the GEE itself.
            result = model.fit(maxiter=100, start_params=np.zeros(len(model.exog_names)))
        except (ConvergenceWarning, PerfectSeparationWarning, np.linalg.LinAlgError, ValueError) as error:
            return LogitInteraction(empty, f"GEE fit failed: {str(error).splitlines()[0]}")
        intervals = result.conf_int(alpha=1 - confidence)
        out = {}
        for term in terms:
            estimate, se = float(result.params[term]), float(result.bse[term])
            if not (np.isfinite(estimate) and np.isfinite(se)) or se < 1e-8:
                return LogitInteraction(empty, f"GEE gave no usable standard error for {term}")
            out[term] = (
                estimate,
                float(intervals.loc[term, 0]),
                float(intervals.loc[term, 1]),
                float(result.pvalues[term]),
            )
    return LogitInteraction(out)
