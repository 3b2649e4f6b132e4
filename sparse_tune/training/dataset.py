"""Turn the configured data source into a list of fixed-size query groups.

Negatives are sampled once, with the run's seed, so a resumed run sees exactly the same
groups in the same order as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from sparse_tune.config import DataConfig

logger = logging.getLogger(__name__)


class GroupDataset(Dataset):
    def __init__(self, groups: list[dict[str, Any]]) -> None:
        self.groups = groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.groups[i]


def _first_record(path: Path) -> dict[str, Any] | None:
    from sparse_tune.data.errors import DataError

    try:
        with path.open(encoding="utf-8-sig") as fh:
            for line in fh:
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        return None
                    return rec if isinstance(rec, dict) else None
    except UnicodeDecodeError as e:
        raise DataError(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return None


def is_scored_file(path: str | Path) -> bool:
    """A ``{"query", "docs", "scores"}`` file (pre-computed teacher scores) rather than query/pos/neg."""
    rec = _first_record(Path(path))
    return rec is not None and "docs" in rec and "scores" in rec


def hf_examples(cfg: DataConfig) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset, validated like JSONL lines (row numbers in the errors)."""
    from datasets import load_dataset

    from sparse_tune.data.errors import DataError
    from sparse_tune.data.formats import normalize_record

    ds = load_dataset(cfg.hf_dataset, cfg.hf_subset, split=cfg.hf_split)
    examples, bad = [], 0
    for i, row in enumerate(ds):
        try:
            examples.append(normalize_record(dict(row)))
        except ValueError as exc:
            if not cfg.skip_bad_lines:
                raise DataError(f"{cfg.hf_dataset}[{cfg.hf_split}]", i + 1, str(exc)) from None
            bad += 1
    if bad:
        logger.warning("skipped %d bad rows of %s", bad, cfg.hf_dataset)
    return examples


def _labelled(examples: list[dict[str, Any]], cfg: DataConfig, seed: int) -> list[dict[str, Any]]:
    """``examples`` as labelled pairs when the recipe asks for them (``labelled_pairs``), else as they are."""
    if not cfg.labelled_pairs:
        return examples
    from sparse_tune.data.labelled_pairs import to_labelled_pairs

    pairs = to_labelled_pairs(examples, cfg.docs_per_query - 1, seed)
    n_pos = sum(p["label"] == 1.0 for p in pairs)
    logger.info("labelled pairs: %d positive and %d negative pairs", n_pos, len(pairs) - n_pos)
    return pairs


def build_groups(
    cfg: DataConfig, seed: int, skipped: list | None = None, exclude_queries: set[str] | None = None
) -> list[dict[str, Any]]:
    """Query groups from the configured source; with ``skip_bad_lines`` the skipped lines' errors go to ``skipped``.

    Groups whose query text is in ``exclude_queries`` (held-out validation queries) are
    dropped, before ``max_examples``, whatever the source: texts are what every source shares.
    """
    from sparse_tune.data.errors import DataError
    from sparse_tune.data.formats import make_groups, read_training_jsonl

    if cfg.train_file:
        path = Path(cfg.train_file)
        if not path.is_file():
            raise FileNotFoundError(f"train_file {path} does not exist")
        if is_scored_file(path):
            from sparse_tune.data.teacher_scores import read_scored_jsonl

            if cfg.labelled_pairs:
                raise ValueError(f"labelled_pairs needs query/positives data; {path} holds teacher scores")

            groups = read_scored_jsonl(path, docs_per_query=cfg.docs_per_query)
        else:
            examples = read_training_jsonl(path, skip_bad_lines=cfg.skip_bad_lines, skipped=skipped)
            try:
                groups = make_groups(_labelled(examples, cfg, seed), cfg.docs_per_query, seed=seed)
            except DataError as e:  # make_groups sees examples, not the file: name the file here
                raise DataError(path, None, f"example {e.line}: {e.message}") from None
    elif cfg.hf_dataset:
        groups = make_groups(_labelled(hf_examples(cfg), cfg, seed), cfg.docs_per_query, seed=seed)
    elif cfg.beir_dir:
        from sparse_tune.data.beir import beir_training_examples

        examples = beir_training_examples(
            cfg.beir_dir, cfg.beir_split, n_negatives=cfg.docs_per_query - 1, seed=seed
        )
        groups = make_groups(_labelled(examples, cfg, seed), cfg.docs_per_query, seed=seed)
    else:
        raise ValueError("no training data: set train_file (JSONL), hf_dataset or beir_dir (BEIR folder)")
    if exclude_queries:
        kept = [g for g in groups if g["query"] not in exclude_queries]
        removed = len(groups) - len(kept)
        n_held = len(exclude_queries)
        logger.info("held out %d validation queries: %d training groups removed", n_held, removed)
        if not removed:
            logger.warning(
                "none of the %d held-out validation queries occur in the training data; fine if it was "
                "filtered already (the distillation pipeline's files are), else is eval_dir the dataset "
                "the training data came from?",
                len(exclude_queries),
            )
        groups = kept
    if cfg.max_examples is not None:
        groups = groups[: cfg.max_examples]
    if not groups:
        raise ValueError("the training data produced no examples")
    return groups


def check_groups_fit_loss(groups: list[dict[str, Any]], loss: str) -> None:
    """Refuse, before any model is loaded, training data that the configured loss cannot read.

    Labelled pairs carry a label and one text; the ranking losses would read every pair as
    relevant, and the pair losses have nothing to read in query/positives data.
    """
    from sparse_tune.losses import LABELLED_PAIR_LOSSES

    labelled = "label" in groups[0]
    if loss in LABELLED_PAIR_LOSSES and not labelled:
        raise ValueError(
            f'loss {loss!r} trains on labelled pairs ({{"sentence1", "sentence2", "label"}} lines); '
            "the training data are query/positives (use loss infonce or triplet, or label the pairs: "
            "labelled_pairs: true)"
        )
    if labelled and loss not in LABELLED_PAIR_LOSSES:
        raise ValueError(
            f"the training data are labelled pairs (sentence1/sentence2/label) but loss {loss!r} would read "
            f"every pair as relevant; use loss {' or '.join(LABELLED_PAIR_LOSSES)}"
        )
    if loss == "triplet" and len(groups[0]["docs"]) < 2:
        raise ValueError(
            "loss 'triplet' needs a positive and >= 1 negative per query: set docs_per_query: 2 (or more) "
            "with negatives in the data"
        )
