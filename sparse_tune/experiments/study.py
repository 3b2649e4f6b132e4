"""``sparse-tune tune``: an Optuna study over training recipes, scored by in-loop validation.

Each trial is a whole training run (``train``) of the base recipe with the trial's values,
in ``OUTPUT/trial-NNN``. The objective is the Trainer's best validation metric
(``metric_for_best_model``); every evaluation after step 0 is reported to the trial, so
the median pruner stops runs that trail the others at the same step. The study lives in
an SQLite file: a second run of the same command continues it, and ``--trials N`` is the
total the study should reach. One process per study: trials left running by a killed
process are marked failed on the next start and their parameters queued again.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from sparse_tune.config import ConfigError, absolute_recipe, load_train_config
from sparse_tune.experiments.search_space import Param
from sparse_tune.fsio import atomic_write_text
from sparse_tune.training.summary import base_metric, beats, read_summary

logger = logging.getLogger(__name__)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise RuntimeError("sparse-tune tune needs optuna: pip install 'sparse-tune[tune]'") from None
    return optuna


class PruningCallback(TrainerCallback):
    """Feeds every validation after step 0 to the trial; raises ``TrialPruned`` when the pruner says so."""

    def __init__(self, trial: Any, metric_key: str) -> None:
        self.trial = trial
        self.metric_key = metric_key

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any
    ) -> None:
        if not metrics or state.global_step == 0 or self.metric_key not in metrics:
            return  # step 0 is the base model, the same for every trial
        self.trial.report(float(metrics[self.metric_key]), state.global_step)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"pruned at step {state.global_step}")


@dataclass
class TuneSettings:
    config: str
    space: list[Param]
    trials: int
    output: Path
    storage: Path
    study_name: str
    overrides: dict[str, Any]
    seed: int = 0
    # trials to run before the sampler's own (e.g. the shipped recipe's values)
    enqueue: tuple[dict[str, Any], ...] = ()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _clear_trial_folder(out: Path, snapshot: bool = False) -> None:
    """Delete what a trial's folder must not keep: its checkpoints (the best model is saved in ``out``
    itself), and with ``snapshot`` the base-model snapshot a killed run leaves behind."""
    from sparse_tune.training.keep_base import SNAPSHOT_DIR

    for leftover in [*out.glob("checkpoint-*"), *([out / SNAPSHOT_DIR] if snapshot else [])]:
        shutil.rmtree(leftover, ignore_errors=True)


def _requeue_interrupted(study: Any) -> None:
    """Trials a killed process left RUNNING: mark them failed and run their parameters again.

    Their folders lose the checkpoints and base-model snapshot the killed run left (a finished
    trial deletes its own): the trial is rerun under a new number, so nothing would ever read them.
    """
    optuna = _optuna()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, t._trial_id)  # a FrozenTrial's id is the only way back to it
        trial.set_user_attr("error", "interrupted (the tuning process stopped)")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
        if t.user_attrs.get("output_dir"):
            _clear_trial_folder(Path(t.user_attrs["output_dir"]), snapshot=True)
        logger.warning("trial %d was interrupted; its parameters are queued again", t.number)


def make_objective(settings: TuneSettings, metric: str) -> Any:
    from sparse_tune.training.run import train

    metric_key = f"eval_{metric.removeprefix('eval_')}"

    def objective(trial: Any) -> float:
        params = {p.name: p.suggest(trial) for p in settings.space}
        out = settings.output / f"trial-{trial.number:03d}"
        trial.set_user_attr("output_dir", str(out))
        try:
            cfg = load_train_config(settings.config, {**settings.overrides, **params, "output_dir": str(out)})
            train(cfg, callbacks=[PruningCallback(trial, metric_key)], owned=True)  # the study decides reruns
            state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
            if state.get("best_metric") is None:
                raise RuntimeError("no validation after step 0 (eval_steps larger than max_steps?)")
            trial.set_user_attr("best_step", state.get("best_global_step"))
            # the base model's score (step 0) and what the run kept, so the study can say whether training helped
            trial.set_user_attr("base", base_metric(state, metric_key))
            trial.set_user_attr("kept", (read_summary(out) or {}).get("kept"))
            return float(state["best_metric"])
        except _optuna().TrialPruned:
            raise
        except Exception as exc:  # recorded on the trial; optimize(catch=...) lets the study go on
            trial.set_user_attr("error", _one_line(exc))
            logger.warning("trial %d failed: %s", trial.number, _one_line(exc))
            raise
        finally:
            _clear_trial_folder(out)

    return objective


def base_verdict(best: float, base: float | None, greater_is_better: bool = True) -> str:
    """Whether the study's best trial beat the base model it started from (every trial starts from the same one).

    A study whose best checkpoint is below the untrained model found no setting in the space
    that helps on this validation split; saying so is the point of validating.
    """
    if base is None:
        return "the base model was not evaluated"
    if beats(best, base, greater_is_better):
        return f"base model {base:.4f} ({best - base:+.4f})"
    return (
        f"no trial beat the base model ({base:.4f}): no setting in this space helped on this validation split"
    )


def _blank(value: Any) -> Any:
    return "" if value is None else value


def write_trials_table(study: Any, path: Path) -> Path:
    """``trials.csv``: number, state, value, duration, every parameter, best step and error."""
    names = sorted({k for t in study.trials for k in t.params})
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["number", "state", "value", "duration_s", *names, "best_step", "base", "kept", "error"]
        )
        for t in study.trials:
            duration = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow(
                [t.number, t.state.name, _blank(t.value), duration,
                 *[t.params.get(n, "") for n in names], t.user_attrs.get("best_step", ""),
                 _blank(t.user_attrs.get("base")), _blank(t.user_attrs.get("kept")), t.user_attrs.get("error", "")]
            )  # fmt: skip
    return path


def write_plots(study: Any, folder: Path) -> list[Path]:
    """Optuna's matplotlib optimisation history and parameter importances (skipped, with a reason, if impossible)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    for name, plot in (("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances)):  # fmt: skip
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = plot(study)
            path = folder / f"{name}.png"
            ax.figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need 2+ completed trials
            logger.warning("skipped the %s plot: %s", name, _one_line(exc))
    return written


def run_study(settings: TuneSettings) -> dict[str, Any]:
    """Run (or continue) the study up to ``settings.trials`` finished trials; write its outputs."""
    optuna = _optuna()
    base = load_train_config(settings.config, dict(settings.overrides))
    if not base.eval.enabled:
        raise ConfigError("tune needs in-loop validation: set eval_split or eval_holdout in the recipe")
    metric = base.training.metric_for_best_model
    settings.output.mkdir(parents=True, exist_ok=True)
    settings.storage.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{settings.storage.resolve()}",
        study_name=settings.study_name,
        direction="maximize" if base.training.greater_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
        load_if_exists=True,
    )
    _requeue_interrupted(study)
    for params in settings.enqueue:  # a rerun does not queue values the study has already tried
        study.enqueue_trial(params, skip_if_exists=True)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    finished = len(study.get_trials(deepcopy=False, states=done))
    remaining = max(0, settings.trials - finished)
    logger.info("study %r: %d trial(s) finished, running %d more", settings.study_name, finished, remaining)
    if remaining:
        study.optimize(make_objective(settings, metric), n_trials=remaining, catch=(Exception,))

    table = write_trials_table(study, settings.output / "trials.csv")
    plots = write_plots(study, settings.output)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"no trial completed; errors are in {table}")
    best = study.best_trial
    # Local paths made absolute: best_config.yaml lies in --output, not beside the recipe, and must
    # load from any working directory.
    recipe = absolute_recipe(settings.config, {**settings.overrides, **best.params})
    recipe.pop("output_dir", None)
    verdict = base_verdict(best.value, best.user_attrs.get("base"), base.training.greater_is_better)
    header = f"# best of study {settings.study_name!r}: {metric} {best.value:.4f} (trial {best.number}); {verdict}\n"
    best_path = settings.output / "best_config.yaml"
    atomic_write_text(best_path, header + yaml.safe_dump(recipe, sort_keys=False))
    return {"best_value": best.value, "best_trial": best.number, "best_params": best.params, "metric": metric,
            "verdict": verdict,
            "best_config": best_path, "trials_table": table, "plots": plots, "n_trials": len(study.trials)}  # fmt: skip


def default_storage(output: str | PathLike[str]) -> Path:
    return Path(output) / "study.db"
