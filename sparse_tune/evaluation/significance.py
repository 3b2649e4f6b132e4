"""Is a checkpoint's validation gain over the base model more than query-sampling noise?

A run validates on a hundred or so queries, and a mean nDCG@10 that is higher by 0.002 on
them says little: on scifact a checkpoint kept for +0.0018 on validation scored 0.041 lower
on the test queries. The test here is the one-sided paired t-test over the validation
queries (each query scored by both models), the usual significance test of IR evaluation;
it is deterministic, so the same numbers always give the same decision.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from scipy.stats import ttest_rel


def improvement_pvalue(
    candidate: Mapping[str, float], base: Mapping[str, float], greater_is_better: bool = True
) -> float:
    """p-value of "``candidate`` is better than ``base``" over the queries both were scored on.

    Both mappings are ``{query id: metric value}`` over the same queries. Identical scores
    give 1.0 (no evidence of a gain); so does a single query. The same difference on every
    query has no spread: p is 0 for a gain, 1 for a loss.
    """
    if set(candidate) != set(base):
        missing = sorted(set(candidate) ^ set(base))
        raise ValueError(f"the two models were scored on different queries (e.g. {missing[:3]})")
    queries = sorted(base)
    if len(queries) < 2:
        return 1.0
    a = [candidate[q] for q in queries]
    b = [base[q] for q in queries]
    if a == b:
        return 1.0
    with warnings.catch_warnings():
        # every per-query difference equal: scipy warns of precision loss, and rightly gives p = 0 or 1
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_rel(a, b, alternative="greater" if greater_is_better else "less").pvalue)
