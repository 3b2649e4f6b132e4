"""Cross-device collectives for training: a gradient-carrying gather, and means over ranks for logs.

Everything here is the identity in a single process (no process group, or world size 1), so
the losses and the trainer call it unconditionally. Collectives run on the tensors' own
device, so the same code serves gloo on CPU and NCCL on GPUs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def world_size() -> int:
    """Number of ranks in the default process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group; 0 without one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_rows(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``local`` rows concatenated in rank order, and the index of this rank's first row.

    The gradient flows back to every rank's slice: the backward pass sums, over ranks, the
    gradients each rank's loss has for this rank's rows (``torch.distributed.nn``'s
    all-gather). Hence a loss computed on the gathered tensor by every rank, with DDP
    averaging parameter gradients over ranks, gets the gradient of the mean of the per-rank
    losses over the global batch. Ranks may hold different numbers of rows (the last batch of an
    epoch): rows are padded to the largest count for the gather and the padding is cut off.
    """
    n = world_size()
    if n == 1:
        return local, 0
    counts = torch.tensor([local.shape[0]], device=local.device)
    all_counts = [torch.zeros_like(counts) for _ in range(n)]
    dist.all_gather(all_counts, counts)
    sizes = [int(c) for c in all_counts]
    longest = max(sizes)
    padded = local
    if local.shape[0] < longest:
        pad = local.new_zeros((longest - local.shape[0], *local.shape[1:]))
        padded = torch.cat([local, pad])
    parts = dist_fn.all_gather(padded)  # differentiable; one (longest, ...) tensor per rank
    rows = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
    return rows, sum(sizes[: rank()])


def mean_over_ranks(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Each value averaged over ranks (one all-reduce); the input unchanged in a single process.

    Every rank must call this with the same keys; ``device`` must suit the backend (CUDA
    for NCCL).
    """
    n = world_size()
    if n == 1 or not values:
        return dict(values)
    names = sorted(values)
    summed = torch.tensor([values[k] for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return {k: float(v) / n for k, v in zip(names, summed.tolist(), strict=True)}
