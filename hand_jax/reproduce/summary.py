"""Statistics over the study's seeds and the titles of its test columns.

``summarise`` reduces one cell's per-seed values to mean, sample standard deviation and count;
``paired_effect`` compares two rows' AUC 20-50 seed by seed, with a t-interval verdict;
``column_title`` names a test column in tables and plots. Shared by ``report`` (tables) and
``plots`` (curves), so neither needs the other for them.
"""

import numpy as np
from scipy import stats

from hand_jax.eval import published


def summarise(values) -> tuple[float, float, int]:
    """(mean, sample standard deviation (NaN for one value), count) of finite ``values``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size)


def paired_effect(new: dict, old: dict) -> str:
    """The change of AUC 20-50 from ``old`` to ``new`` ({seed: cell}), paired by seed.

    With n >= 2 seeds the verdict is "helps" or "hurts" when the 95% t interval of the mean
    paired difference (``t(0.975, n - 1) * sd / sqrt(n)``) excludes 0, else "no clear
    change"; with one seed there is no verdict.
    """
    seeds = sorted(set(new) & set(old))
    diffs = [new[s]["auc_20_50"] - old[s]["auc_20_50"] for s in seeds]
    mean, sd, n = summarise(diffs)
    if n == 0:
        return "not run"
    if n == 1:
        return f"{mean:+.3f} (one seed: no verdict)"
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    word = "no clear change" if abs(mean) <= half else ("helps" if mean > 0 else "hurts")
    return f"{mean:+.3f} ± {half:.3f} ({word})"


def column_title(cfg, column: str) -> str:
    """The title of test column ``column``: its benchmark's name, or ``"<column> (synthetic)"``.

    Args:
      cfg: the study's config (``cfg.data.sets[column].kind``).
      column: the column's name.
    """
    spec = cfg.data.sets[column]
    if spec.kind == "synthetic":
        return f"{column} (synthetic)"
    return published.title(column)
