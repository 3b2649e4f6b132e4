"""Wire a TrainConfig into a trained, saved model. Reads top to bottom like the recipe it runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import set_seed

from sparse_tune.config import ConfigError, TrainConfig
from sparse_tune.data.holdout import ValidationSplit
from sparse_tune.evaluation.validator_set import ValidatorSet
from sparse_tune.losses import build_loss
from sparse_tune.models.io import CheckpointError, build_model, model_config_for
from sparse_tune.models.retriever import Retriever
from sparse_tune.training.collator import GroupCollator
from sparse_tune.training.dataset import GroupDataset, build_groups, check_groups_fit_loss, is_scored_file
from sparse_tune.training.mined_data import mined_training_data
from sparse_tune.training.run_folder import (
    RECIPE_FILE,
    check_run_folder,
    inspect_run_folder,
    interrupted,
    start_run,
)
from sparse_tune.training.trainer import RetrievalTrainer, checkpoint_problem, last_complete_checkpoint

logger = logging.getLogger(__name__)


def idf_from_training_corpus(cfg: TrainConfig, model_path: str, out_dir: str | Path | None = None) -> Path:
    """An inference-free model with no idf.json gets one from the training corpus, saved with the run.

    The BEIR corpus when training from a BEIR folder, else every document text of the
    training file; computed with the model's own tokenizer so columns line up. Written to
    ``out_dir`` (default: the run's output_dir).
    """
    from transformers import AutoTokenizer

    from sparse_tune.data.idf import compute_idf, save_idf

    if cfg.data.beir_dir:
        from sparse_tune.data.beir import load_corpus_any

        texts = load_corpus_any(cfg.data.beir_dir).texts
    elif cfg.data.train_file and is_scored_file(cfg.data.train_file):
        from sparse_tune.data.teacher_scores import iter_scored_rows

        texts = sorted({t for row in iter_scored_rows(cfg.data.train_file) for t in row["docs"]})
    elif cfg.data.train_file:
        from sparse_tune.data.formats import read_training_jsonl

        texts = sorted(
            {
                t
                for ex in read_training_jsonl(cfg.data.train_file, skip_bad_lines=True)
                for t in (*ex["pos"], *ex["neg"])
            }
        )
    else:
        raise ValueError("inference_free needs idf_path, or training data to compute IDF from")
    out = Path(out_dir if out_dir is not None else cfg.training.output_dir) / "idf.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Rank 0 writes (atomically); the other ranks wait for it and read the same file.
    with cfg.training.main_process_first(desc="compute idf"):
        if cfg.training.should_save:
            save_idf(out, compute_idf(texts, AutoTokenizer.from_pretrained(model_path)))
    logger.info("computed IDF over %d training documents -> %s", len(texts), out)
    return out


def starting_model(cfg: TrainConfig, idf_dir: str | Path | None = None) -> Retriever:
    """The model a recipe starts from: backbone + heads from a name, folder or hub id.

    An inference-free head without ``idf_path`` gets IDF from the training corpus, written to
    ``idf_dir`` (default: the run's output_dir, where it is saved with the run). The
    distillation pipeline's teacher report builds the student this way before it trains.
    """
    overrides = {k: v for k, v in vars(cfg.model).items() if k != "model_name_or_path"}
    model_cfg, path = model_config_for(cfg.model.model_name_or_path, **overrides)
    if model_cfg.head == "inference_free" and not model_cfg.idf_path:
        model_cfg.idf_path = str(idf_from_training_corpus(cfg, path, idf_dir))
    return build_model(model_cfg, path)


def resume_checkpoint(resume: str | bool | None, output_dir: str) -> str | None:
    """The checkpoint folder to resume from: ``true``/``last`` is the last *complete* ``checkpoint-N``.

    A folder left half-written by a run killed while saving is never trusted (see
    :func:`~sparse_tune.training.trainer.checkpoint_problem`).
    """
    if resume in (None, False, "") or (isinstance(resume, str) and resume.lower() in ("false", "none")):
        return None
    if resume is True or (isinstance(resume, str) and resume.lower() in ("true", "last")):
        found = last_complete_checkpoint(output_dir)
        if found is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint: no complete checkpoint-* folder in {output_dir}"
            )
        logger.info("resuming from %s", found)
        return found
    problem = checkpoint_problem(resume)
    if problem:
        raise CheckpointError(
            f"cannot resume from {resume}: {problem} (an interrupted save?); "
            "delete it or resume from an earlier checkpoint"
        )
    return str(resume)


def validation_split(cfg: TrainConfig) -> ValidationSplit | None:
    """The validation queries, or ``None`` when the recipe asks for none; written to the run folder."""
    if not cfg.eval.enabled:
        return None
    from sparse_tune.data.holdout import SPLIT_FILE, load_validation_split
    from sparse_tune.fsio import atomic_write_text

    seed = cfg.eval.eval_holdout_seed if cfg.eval.eval_holdout_seed is not None else cfg.training.seed
    folder = cfg.eval.eval_dir or cfg.data.beir_dir
    split = load_validation_split(
        folder,
        cfg.eval.eval_split,
        cfg.eval.eval_holdout,
        cfg.data.beir_split,
        seed,
        cfg.eval.eval_max_queries,
    )
    if cfg.training.should_save:
        out = Path(cfg.training.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SPLIT_FILE, json.dumps(split.to_json(), indent=2) + "\n")
    return split


def pair_validator(cfg: TrainConfig, split: ValidationSplit | None) -> Any:
    """Binary classification of labelled pairs: the recipe's ``eval_pairs_file``, or pairs from the split."""
    from sparse_tune.evaluation.binary_classification import BinaryClassificationValidator, split_pairs

    batch = cfg.training.per_device_eval_batch_size
    if cfg.eval.eval_pairs_file:
        from sparse_tune.data.formats import is_labelled, read_training_jsonl

        pairs = read_training_jsonl(cfg.eval.eval_pairs_file)
        if not is_labelled(pairs[0]):
            raise ValueError(
                f"eval_pairs_file {cfg.eval.eval_pairs_file}: expected sentence1/sentence2/label lines"
            )
        labels = [p["label"] for p in pairs]
        return BinaryClassificationValidator(
            [p["query"] for p in pairs], [p["pos"][0] for p in pairs], labels, batch
        )
    assert split is not None and cfg.eval.eval_pairs_negatives is not None
    return BinaryClassificationValidator(*split_pairs(split, cfg.eval.eval_pairs_negatives), batch_size=batch)


def start_point(cfg: TrainConfig, owned: bool = False) -> str | None:
    """The checkpoint this run starts from: the one asked for, or the interrupted run's in output_dir.

    An explicit ``resume_from_checkpoint`` is honoured as before (the folder is still never a
    finished run unless ``overwrite_output_dir``); otherwise :func:`start_run` decides.
    """
    args, run = cfg.training, cfg.run
    explicit = resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if explicit is None:
        return start_run(
            args.output_dir, cfg.source, run.overwrite_output_dir, run.resume, owned, write=args.should_save
        )
    if not run.resume:
        raise ConfigError("resume: false (--no-resume) contradicts resume_from_checkpoint; drop one of them")
    folder = inspect_run_folder(args.output_dir)  # a file is refused here too
    if folder.state == "finished" and not (run.overwrite_output_dir or owned):
        check_run_folder(args.output_dir, cfg.source)  # raises: the finished-run message
    return explicit


def train(cfg: TrainConfig, callbacks: list[Any] | None = None, owned: bool = False) -> Path:
    """Train and save; returns the output folder (a loadable model folder).

    ``callbacks`` are extra ``TrainerCallback``s (``sparse-tune tune`` adds its pruner here).
    ``owned``: the caller decides when a run is redone (pipeline markers, a tune study), so an
    earlier run in the folder is replaced instead of refused (see :mod:`~sparse_tune.training.run_folder`).
    """
    args = cfg.training
    # 1. Seed everything the run touches, so a rerun (or a resumed run) matches.
    set_seed(args.seed)

    resume = start_point(cfg, owned)  # checked before any work

    # 2. Data first, so bad input fails before any model is loaded: the validation queries (a
    #    BEIR split, or training queries held out by seed), then fixed-size query groups
    #    (1 positive + negatives) without the held-out queries, sampled once with the seed. With
    #    mine_negatives the BEIR split is first mined into OUTPUT_DIR/mined.jsonl, the train_file.
    split = validation_split(cfg)
    held_out = set(split.queries.values()) if split is not None and split.holdout else None
    data = mined_training_data(cfg.data, args)
    skipped: list = []
    groups = build_groups(data, seed=args.seed, skipped=skipped, exclude_queries=held_out)
    check_groups_fit_loss(groups, cfg.loss.loss)
    pairs = pair_validator(cfg, split) if cfg.eval.pairs_enabled else None  # read before the model loads
    logger.info(
        "training on %d query groups of %d documents (%d queries; one group per positive)",
        len(groups),
        len(groups[0]["docs"]),
        len({g["query"] for g in groups}),
    )

    # 3. The model: backbone + heads, from a name, folder or hub id.
    model = starting_model(cfg)
    if model.kind == "dense" and args.ddp_find_unused_parameters is None:
        args.ddp_find_unused_parameters = True  # a dense backbone's pooler is never used

    # 4. Loss: ranking or distillation, plus FLOPS on the sides that have an encoder.
    loss_fn = build_loss(
        cfg.loss,
        inference_free=model.head_name == "inference_free",
        idf=model.idf,
        dense=model.kind == "dense",
    )

    # 5. Live teachers, if any, score each batch's candidates without gradients.
    teachers = None
    if cfg.loss.teachers:
        from sparse_tune.training.teachers import TeacherEnsemble

        teachers = TeacherEnsemble(
            cfg.loss.teachers, score_scale=cfg.loss.score_scale, device=args.device, bf16=args.bf16
        )

    # 6. Validation through the Trainer's evaluation hook: every eval_steps and at step 0, best
    #    checkpoint kept by metric_for_best_model, the base model instead when no checkpoint beats
    #    it (keep_base_if_best), optional early stopping.
    validator = None
    keeper = None
    per_query_log = None
    callbacks = list(callbacks or [])
    if split is not None or cfg.eval.pairs_enabled:
        from transformers import EarlyStoppingCallback

        from sparse_tune.evaluation.validation import RetrievalValidator
        from sparse_tune.training.keep_base import KeepBaseCallback
        from sparse_tune.training.validation_log import PerQueryLog

        validators: list[Any] = []
        if split is not None:
            validators.append(
                RetrievalValidator(
                    split,
                    cfg.eval.eval_corpus_budget,
                    cfg.eval.eval_pool_bm25_k,
                    batch_size=args.per_device_eval_batch_size,
                )
            )
        if pairs is not None:
            validators.append(pairs)
        validator = validators[0] if len(validators) == 1 else ValidatorSet(validators)
        per_query_log = PerQueryLog(args.output_dir, write=args.should_save, resume=resume is not None)
        keeper = KeepBaseCallback(cfg.eval.keep_base_if_best, cfg.eval.keep_significance, per_query_log)
        callbacks.append(keeper)
        if cfg.eval.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.eval.early_stopping_patience))

    # 7. Train with transformers' loop; resume if asked.
    trainer = RetrievalTrainer(
        model=model,
        args=args,
        train_dataset=GroupDataset(groups),
        eval_dataset=validator,
        data_collator=GroupCollator(model),
        loss_fn=loss_fn,
        teachers=teachers,
        callbacks=callbacks or None,
        gather_across_devices=cfg.loss.gather_across_devices,
        mini_batch_size=cfg.loss.mini_batch_size if cfg.loss.cached else None,
        per_query_log=per_query_log,
    )
    try:
        trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        raise interrupted(args.output_dir, trainer.state.global_step) from None

    # 8. Save the final model where evaluate can load it: the best checkpoint's with
    #    load_best_model_at_end, or the base model's when no checkpoint beat it.
    out = Path(args.output_dir)
    trainer.save_model(str(out))
    if args.should_save:
        import yaml

        from sparse_tune.fsio import atomic_write_text

        # The recipe as run (YAML + overrides), so the folder says how it was made (also written at the start).
        atomic_write_text(out / RECIPE_FILE, yaml.safe_dump(cfg.source, sort_keys=False))
        trainer.save_state()  # trainer_state.json: steps and logged loss terms, read by export's model card
    if keeper is not None:
        # 9. One closing line (base vs best, and which model was saved), also in validation_summary.json.
        from sparse_tune.fsio import atomic_write_text
        from sparse_tune.index.fusion import HYBRID_FILE
        from sparse_tune.training.summary import SUMMARY_FILE, kept_hybrid, metric_name, summary_record

        state = trainer.state
        # BM25 on the same validation queries and documents, which the closing line compares with
        bm25 = None if validator is None else validator.bm25.get(metric_name(args.metric_for_best_model))
        # The kept model fused with BM25 (fusion chosen at its evaluation), for export's search pipeline
        hybrid = kept_hybrid(trainer.hybrid_by_step, keeper.kept or "last", state.best_global_step, split)
        if hybrid is not None and args.should_save:
            atomic_write_text(out / HYBRID_FILE, json.dumps(hybrid, indent=2) + "\n")
        record = summary_record(
            {
                "log_history": state.log_history,
                "best_metric": state.best_metric,
                "best_global_step": state.best_global_step,
            },
            args.metric_for_best_model,
            bool(args.greater_is_better),
            keeper.kept or "last",
            keeper.test,
            bm25,
            hybrid,
        )
        if args.should_save:
            atomic_write_text(out / SUMMARY_FILE, json.dumps(record, indent=2) + "\n")
        if record["summary"]:
            logger.info(record["summary"])
    if skipped:  # repeated at the end, where it is seen: the warning at load time scrolled away
        logger.warning(
            "skipped %d bad line(s) of %s (skip_bad_lines); first: %s",
            len(skipped),
            data.train_file,
            skipped[0],
        )
    return out
