"""Command-line flags for pruning and approximate sparse search, shared by evaluate, encode and export.

Flags map one to one onto :class:`~sparse_tune.index.opensearch_config.OpenSearchConfig`
fields (ANN / two-phase) and :mod:`sparse_tune.index.pruning` arguments; validation lives
there, so a bad value fails with the same message from the CLI and from Python.
"""

from __future__ import annotations

import argparse
from typing import Any

from sparse_tune.cli.argtypes import non_negative_float, number
from sparse_tune.index.opensearch_config import SEISMIC_BOUNDS, TWO_PHASE_BOUNDS
from sparse_tune.index.pruning import PRUNE_TYPES

#: flag dest -> OpenSearchConfig field (same name unless listed here).
_ANN_FIELDS = (
    "sparse_index",
    "sparse_embedding_format",
    "seismic_n_postings",
    "seismic_cluster_ratio",
    "seismic_summary_prune_ratio",
    "seismic_approximate_threshold",
    "ann_top_n",
    "ann_heap_factor",
    "two_phase_prune_type",
    "two_phase_prune_ratio",
    "two_phase_expansion_rate",
    "two_phase_max_window_size",
)


def _seismic(name: str):
    """The flag's type: OpenSearchConfig's own range for ``name``, checked when the flag is parsed."""
    return number(SEISMIC_BOUNDS[name])


def add_prune_args(p: argparse.ArgumentParser, what: str = "documents") -> None:
    """``--prune-type`` / ``--prune-ratio`` with OpenSearch's sparse_encoding semantics."""
    g = p.add_argument_group("pruning (OpenSearch sparse_encoding prune_type semantics)")
    g.add_argument(
        "--prune-type",
        choices=PRUNE_TYPES,
        default="none",
        help=f"prune {what}: max_ratio (w >= r*max), top_k (r largest), abs_value (w >= r), "
        "alpha_mass (largest weights while their running sum <= r*total)",
    )
    g.add_argument(
        "--prune-ratio", type=non_negative_float, default=None, help="the prune_type's ratio / k / threshold"
    )


def add_ann_args(p: argparse.ArgumentParser, search: bool = True) -> None:
    """SEISMIC index, ANN query and two-phase flags (OpenSearch backend only).

    ``search=False`` (``export``) keeps only the parameters written into the exported bodies,
    not the flags that choose how a run searches (index mode, key format, two-phase, compare).
    """
    g = p.add_argument_group("OpenSearch approximate sparse search (3.3+ for seismic; see docs/guide.md)")
    if search:
        g.add_argument(
            "--sparse-index",
            choices=("rank_features", "seismic"),
            default=None,
            help="rank_features: exact scoring (default); seismic: sparse_vector ANN field (OpenSearch 3.3+)",
        )
        g.add_argument(
            "--sparse-embedding-format",
            choices=("WORD", "TOKEN_ID"),
            default=None,
            help="feature keys: token strings or vocabulary ids (seismic needs TOKEN_ID, its default)",
        )
    g.add_argument(
        "--seismic-n-postings",
        type=_seismic("seismic_n_postings"),
        default=None,
        help="documents kept per posting list",
    )
    g.add_argument(
        "--seismic-cluster-ratio",
        type=_seismic("seismic_cluster_ratio"),
        default=None,
        help="clusters per posting list, (0, 1)",
    )
    g.add_argument(
        "--seismic-summary-prune-ratio",
        type=_seismic("seismic_summary_prune_ratio"),
        default=None,
        help="summary weight mass kept, (0, 1]",
    )
    g.add_argument(
        "--seismic-approximate-threshold",
        type=_seismic("seismic_approximate_threshold"),
        default=None,
        help="segment size from which SEISMIC is used (OpenSearch default 1,000,000)",
    )
    g.add_argument(
        "--ann-top-n",
        type=_seismic("ann_top_n"),
        default=None,
        help="query tokens kept (method_parameters.top_n)",
    )
    g.add_argument(
        "--ann-heap-factor",
        type=_seismic("ann_heap_factor"),
        default=None,
        help="method_parameters.heap_factor",
    )
    if search:
        g.add_argument(
            "--two-phase",
            action="store_true",
            help="run neural_sparse queries through neural_sparse_two_phase_processor (needs --sparse-query "
            "neural_sparse)",
        )
    g.add_argument("--two-phase-prune-type", choices=PRUNE_TYPES, default=None)
    g.add_argument("--two-phase-prune-ratio", type=non_negative_float, default=None)
    g.add_argument(
        "--two-phase-expansion-rate", type=number(TWO_PHASE_BOUNDS["two_phase_expansion_rate"]), default=None
    )
    g.add_argument(
        "--two-phase-max-window-size",
        type=number(TWO_PHASE_BOUNDS["two_phase_max_window_size"]),
        default=None,
    )
    if search:
        g.add_argument(
            "--compare-exact",
            action="store_true",
            help="also search the same vectors exactly in memory and report recall@10/100 against it "
            "(on by default with --sparse-index seismic or --two-phase)",
        )


def ann_options(args: argparse.Namespace) -> dict[str, Any]:
    """OpenSearchConfig keyword options set on the command line."""
    opts = {name: getattr(args, name) for name in _ANN_FIELDS if getattr(args, name, None) is not None}
    if getattr(args, "two_phase", False):
        opts["two_phase"] = True
    return opts


def approximate(args: argparse.Namespace) -> bool:
    """Whether the run searches approximately (so recall against exact search is worth reporting)."""
    return bool(getattr(args, "two_phase", False) or getattr(args, "sparse_index", None) == "seismic")
