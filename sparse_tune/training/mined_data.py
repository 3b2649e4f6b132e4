"""A recipe's ``mine_negatives``: mine the BEIR split once at the start of a run, then train on the file.

Recipes that train on hard negatives would otherwise need a ``sparse-tune mine`` step before
``train``. Mining inside the run goes through the same library call and the same writer as that
command (:func:`~sparse_tune.mining.beir.mine_beir_split`, :func:`write_training_jsonl`), so
``OUTPUT_DIR/mined.jsonl`` is byte for byte the file the command writes with the same settings,
and is then read exactly as a ``train_file``. A sidecar records what the file was mined from
(settings, split, fingerprints of corpus, queries, qrels and a local model) and the file's own
hash: a rerun or a resumed run reuses the file only while all of that still holds. How queries
short of negatives in the rank window were filled is written beside it
(``mined.mining_report.json``, see :mod:`sparse_tune.mining.shortfall`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparse_tune.config import DataConfig
from sparse_tune.fsio import sha256_of
from sparse_tune.types import BeirSplit

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

MINED_FILE = "mined.jsonl"
SIDECAR_FILE = "mined.settings.json"

__all__ = ["MINED_FILE", "SIDECAR_FILE", "mined_training_data", "mining_inputs"]


def mining_inputs(data: DataConfig, loaded: BeirSplit) -> dict[str, Any]:
    """What decides the mined file's content, as JSON values: settings, split and dataset fingerprints.

    ``loaded`` is ``data``'s split as ``load_beir`` returns it (the caller mines from the same one).
    """
    from sparse_tune.index.fingerprint import fingerprint_model, fingerprint_texts

    spec = data.mine_negatives
    if spec is None:
        raise ValueError("mining_inputs needs a DataConfig with mine_negatives")
    corpus, queries, qrels = loaded
    qids = sorted(queries)
    return {
        "settings": spec.identity(),
        "beir_split": data.beir_split,
        "corpus": fingerprint_texts(corpus.ids, corpus.texts),
        "queries": fingerprint_texts(qids, [queries[q] for q in qids]),
        "qrels": hashlib.sha256(json.dumps(qrels, sort_keys=True).encode()).hexdigest()[:16],
        # A local checkpoint may be retrained in place; a registered name or hub id is fixed weights.
        "model": fingerprint_model(spec.model) if spec.model else None,
        # Files mined before short queries were filled (mining.shortfall) are mined again.
        "shortfall": "filled",
    }


def _reusable(path: Path, sidecar: Path, inputs: dict[str, Any]) -> int | None:
    """The example count of a mined file that matches ``inputs``; ``None`` when it must be mined (again)."""
    try:
        saved = json.loads(sidecar.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("inputs") != json.loads(json.dumps(inputs)):
        return None
    if not path.is_file() or saved.get("sha256") != sha256_of(path):
        return None  # replaced or edited since it was mined
    return int(saved.get("examples", 0))


def _mine(data: DataConfig, path: Path, sidecar: Path, inputs: dict[str, Any], loaded: BeirSplit) -> int:
    from sparse_tune.data.formats import write_training_jsonl
    from sparse_tune.fsio import atomic_write_text
    from sparse_tune.mining.beir import mine_beir_split
    from sparse_tune.mining.shortfall import ShortfallReport, write_report

    report = ShortfallReport()
    examples = mine_beir_split(
        data.beir_dir, data.beir_split, loaded=loaded, report=report, **data.mine_negatives.mine_kwargs()
    )
    n = write_training_jsonl(path, examples)  # atomic; the sidecar is written last, so a crash re-mines
    if data.mine_negatives.method != "random":
        write_report(path, report)  # OUTPUT_DIR/mined.mining_report.json: how short queries were filled
    record = {"inputs": inputs, "examples": n, "sha256": sha256_of(path)}
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    return n


def mined_training_data(data: DataConfig, args: TrainingArguments) -> DataConfig:
    """``data`` with ``train_file`` = ``OUTPUT_DIR/mined.jsonl``, mined now unless an up-to-date one is there.

    ``args`` is the run's ``TrainingArguments``. Under DDP the process that saves (rank 0; each
    node's first process with ``save_on_each_node``) mines while the others wait at a barrier,
    then they check the same sidecar and read the same file.
    """
    spec = data.mine_negatives
    if spec is None:
        return data
    out = Path(args.output_dir)
    path, sidecar = out / MINED_FILE, out / SIDECAR_FILE
    with args.main_process_first(local=args.save_on_each_node, desc="mine negatives"):
        from sparse_tune.data.beir import load_beir

        loaded = load_beir(data.beir_dir, data.beir_split)  # read once: fingerprinted, then mined
        inputs = mining_inputs(data, loaded)
        n = _reusable(path, sidecar, inputs)
        if n is not None:
            log = logger.info if args.should_save else logger.debug  # one line per run, not per rank
            log("reusing %d mined examples from %s (same settings and dataset)", n, path)
        elif args.should_save:
            out.mkdir(parents=True, exist_ok=True)
            n = _mine(data, path, sidecar, inputs, loaded)
            logger.info(
                "mined %d examples from %s (%s, split %s, ranks %s, %d negatives) -> %s",
                n,
                data.beir_dir,
                spec.method,
                data.beir_split,
                spec.range,
                spec.negatives,
                path,
            )
        else:
            raise RuntimeError(
                f"{path} is missing or stale after the main process mined it (did mining fail there?)"
            )
    return dataclasses.replace(data, train_file=str(path), mine_negatives=None)
