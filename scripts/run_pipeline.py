"""The distillation pipeline end to end: ``python scripts/run_pipeline.py configs/pipeline_kd.yaml``
(same as ``sparse-tune distill-pipeline``)."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("distill-pipeline")
