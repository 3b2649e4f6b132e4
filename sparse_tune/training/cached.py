"""One training step's representations and loss terms, optionally cached (GradCache) for large batches.

GradCache (Gao et al., 2021) makes a contrastive loss over a large batch cost the activation
memory of a small one, with the same loss and gradients:

1. encode the batch in chunks of ``mini_batch_size`` examples without autograd, recording
   each chunk's RNG state (dropout);
2. compute the loss on the detached representations with autograd on, and take its
   gradient with respect to them (the "cached" representation gradients);
3. when the loss is back-propagated, re-encode each chunk with autograd, replaying its RNG
   state so dropout draws the same masks, and back-propagate the cached gradients through it.

With the fused SPLADE head, step 1 also records which token won each positive pooled entry
(:mod:`sparse_tune.models.pool_tape`), and step 3 recomputes only those logits instead of
projecting every token onto the whole vocabulary again. The projection is most of a SPLADE
forward, so the second encoding costs about the transformer alone, and a cached step costs
about what an uncached one does.

Step 3 runs from a hook on the returned loss, so the transformers ``Trainer`` keeps owning the
backward call: whatever scales the loss before ``backward`` (gradient accumulation, an fp16
grad scaler) reaches the chunks through the hook's incoming gradient. Under DDP every chunk but
the last is back-propagated inside ``no_sync``, so gradients are all-reduced once per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import get_device_states, set_device_states

from sparse_tune.models.pool_tape import PoolTape, recording, replaying

Features = dict[str, torch.Tensor]
LossOf = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


class RngState:
    """The CPU and accelerator RNG states at one moment, to replay a chunk's dropout masks."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.cpu = torch.get_rng_state()
        # the devices the chunk runs on (none on CPU); get_device_states knows every accelerator type
        self.devices, self.states = get_device_states(*tensors)
        self.device_type = next((t.device.type for t in tensors if t.device.type != "cpu"), None)

    @contextlib.contextmanager
    def replayed(self) -> Iterator[None]:
        """Run the block from this state; the RNG state outside the block is left as it was."""
        kwargs = {"device_type": self.device_type} if self.device_type else {}
        with torch.random.fork_rng(devices=self.devices, **kwargs):
            torch.set_rng_state(self.cpu)
            set_device_states(self.devices, self.states, **kwargs)
            yield


def rows(features: Features, lo: int, hi: int) -> Features:
    """Rows ``lo:hi`` of tokenised features, with the columns that are padding in every row dropped.

    Right padding is assumed (BERT-style tokenisers); a chunk of short texts then costs only
    its own longest text, not the whole batch's.
    """
    part = {k: v[lo:hi] for k, v in features.items()}
    mask = part.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[0] == 0:
        return part
    length = max(int(mask.sum(dim=1).max()), 1)
    if bool(mask[:, length:].any()):  # left padding or holes: keep every column
        return part
    return {
        k: (v[:, :length] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v) for k, v in part.items()
    }


def encode_and_score(
    model: nn.Module,
    query: Features,
    docs: Features,
    loss_of: LossOf,
    mini_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(q, d, loss terms) for one batch; with ``mini_batch_size`` the GradCache procedure above.

    ``model(query=..., docs=...)`` returns (batch, dim) query and (batch * group, dim) document
    representations (a ``Retriever``, possibly wrapped in DDP); ``loss_of(q, d)`` returns named
    terms with a ``"loss"`` total. Cached, the returned q and d are detached.
    """
    if mini_batch_size is None:
        q, d = model(query=query, docs=docs)
        return q, d, loss_of(q, d)
    if mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")

    batch = query["input_ids"].shape[0]
    group, extra = divmod(docs["input_ids"].shape[0], batch)
    if extra:
        raise ValueError(f"{docs['input_ids'].shape[0]} documents are not a multiple of the {batch} queries")
    chunks = [(lo, min(lo + mini_batch_size, batch)) for lo in range(0, batch, mini_batch_size)]

    def chunk_inputs(lo: int, hi: int) -> dict[str, Any]:
        return {"query": rows(query, lo, hi), "docs": rows(docs, lo * group, hi * group)}

    # 1. no-grad encoding, chunk by chunk, remembering each chunk's RNG state. Each chunk is
    #    written into one preallocated (batch, dim) buffer per side: collecting the chunks and
    #    concatenating them would hold every representation twice (at SPLADE's 30,522 dims and
    #    a batch of 1,024 x 3 texts, 360 MiB more at the peak).
    states: list[RngState] = []
    tapes: list[PoolTape] = []  # each chunk's SPLADE max-pool routes, for a cheap replay
    will_replay = torch.is_grad_enabled()
    q = d = torch.empty(0)
    with torch.no_grad():
        for lo, hi in chunks:
            states.append(RngState(query["input_ids"]))
            tapes.append(PoolTape())
            with recording(tapes[-1]) if will_replay else contextlib.nullcontext():
                q_part, d_part = model(**chunk_inputs(lo, hi))  # (hi - lo, dim), ((hi - lo) * group, dim)
            if lo == 0:
                q = q_part.new_empty((batch, *q_part.shape[1:]))  # (batch, dim)
                d = d_part.new_empty((batch * group, *d_part.shape[1:]))  # (batch * group, dim)
            q[lo:hi] = q_part
            d[lo * group : hi * group] = d_part
            del q_part, d_part
    q.requires_grad_()
    d.requires_grad_()

    # 2. the loss on detached representations, and its gradient with respect to them
    terms = loss_of(q, d)
    if not will_replay:  # evaluation: no backward will come
        return q.detach(), d.detach(), terms
    q_grad, d_grad = torch.autograd.grad(terms["loss"], [q, d])
    # The other terms are for logging; detached, they no longer hold the graph, whose leaves are
    # q and d: once the caller drops its q and d, their memory is free for the replay below.
    terms = {name: value.detach() for name, value in terms.items()}

    # 3. on backward: re-encode each chunk with autograd and push the cached gradients through
    def replay(grad_output: torch.Tensor) -> None:
        for i, (lo, hi) in enumerate(chunks):
            last = i == len(chunks) - 1
            sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
            with sync, torch.enable_grad(), states[i].replayed(), replaying(tapes[i]):
                q_part, d_part = model(**chunk_inputs(lo, hi))
                outputs, grads = [], []
                for rep, grad in ((q_part, q_grad[lo:hi]), (d_part, d_grad[lo * group : hi * group])):
                    if rep.requires_grad:  # an inference-free model's frozen IDF queries do not
                        outputs.append(rep)
                        grads.append((grad * grad_output).to(rep.dtype))
                torch.autograd.backward(outputs, grads)

    loss = terms["loss"].detach().requires_grad_()
    loss.register_hook(replay)
    terms = {**terms, "loss": loss}
    return q.detach(), d.detach(), terms
