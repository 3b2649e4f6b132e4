"""The distillation pipeline: mine candidates, train teachers, score, report, distil a student.

One config (``configs/pipeline_kd.yaml``) and one verb (``sparse-tune distill-pipeline``) chain
the single-step verbs' library code; each stage is skipped while its output is complete.
Entry points: :func:`sparse_tune.pipeline.config.load_pipeline_config` and
:func:`sparse_tune.pipeline.run.run_pipeline`. This module stays import-light (no torch),
so the CLI can offer the stage names without loading the stages.
"""

#: The stages, in the order they run.
STAGES = ("mine", "teachers", "score", "report", "student")

__all__ = ["STAGES"]
