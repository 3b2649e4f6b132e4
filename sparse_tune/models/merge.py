"""Weight-space interpolation of a fine-tuned model with its base (WiSE-FT, Wortsman et al., 2022).

``merged = (1 - alpha) * base + alpha * tuned``, parameter by parameter. Fine-tuning on one
dataset tends to cost general ability; a model part-way back to its base often keeps most of
the in-domain gain and much of what the base knew. Both models must be the same architecture:
same head, same parameter names, shapes and dtypes (a merge across heads or vocabularies has no
meaning, so it is refused rather than guessed).

``alpha`` 0 and 1 copy the base or the tuned weights exactly (bit for bit); any other value is
computed in the parameters' own dtype. The merged model keeps the tuned model's settings
(head, lengths, instructions), since those are what its weights were last trained with.
"""

from __future__ import annotations

import copy

import torch

from sparse_tune.models.retriever import Retriever


class MergeError(ValueError):
    """Two models that cannot be interpolated; the message says how they differ."""


def _tensors(model: Retriever) -> dict[str, torch.Tensor]:
    """Every parameter and buffer once (shared tensors under their first name)."""
    out = dict(model.named_parameters())
    out.update({k: v for k, v in model.named_buffers() if k not in out})
    return out


def check_mergeable(base: Retriever, tuned: Retriever) -> None:
    """Raise :class:`MergeError` naming the first difference that makes ``base`` and ``tuned`` unmergeable."""
    if base.head_name != tuned.head_name:
        raise MergeError(
            f"cannot merge a {base.head_name} base with a {tuned.head_name} tuned model: the heads differ"
        )
    b, t = _tensors(base), _tensors(tuned)
    only = sorted(set(b) ^ set(t))
    if only:
        raise MergeError(
            f"cannot merge: the architectures differ ({len(only)} tensor(s) in only one model, e.g. {only[0]!r})"
        )
    for name in b:
        if b[name].shape != t[name].shape or b[name].dtype != t[name].dtype:
            raise MergeError(
                f"cannot merge: {name!r} is {tuple(b[name].shape)} {b[name].dtype} in the base and "
                f"{tuple(t[name].shape)} {t[name].dtype} in the tuned model"
            )


def merge_models(base: Retriever, tuned: Retriever, alpha: float) -> Retriever:
    """A new model with ``(1 - alpha) * base + alpha * tuned`` weights and the tuned model's settings."""
    if not 0.0 <= alpha <= 1.0:
        raise MergeError(f"alpha must be in [0, 1], got {alpha}")
    check_mergeable(base, tuned)
    merged = copy.deepcopy(tuned)
    b = _tensors(base)
    with torch.no_grad():
        for name, tensor in _tensors(merged).items():
            if alpha == 1.0:
                continue  # the tuned weights as they are
            if alpha == 0.0 or not tensor.is_floating_point():
                tensor.copy_(b[name])  # integer buffers (position ids) are not interpolated
            else:
                tensor.copy_(b[name] * (1.0 - alpha) + tensor * alpha)
    return merged
