"""Cross-device collectives: for training, a gradient-carrying gather and means over ranks for logs;
for inference under torchrun, joining the group, sharing work out and gathering it on rank 0.

Everything here is the identity in a single process (no process group, or world size 1), so
the losses, the trainer and the inference verbs call it unconditionally. Collectives run on the tensors' own
device, so the same code serves gloo on CPU and NCCL on GPUs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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


# -- inference under torchrun: which rank does what, and gathering results on rank 0 ------------
#
# Sharing is switched on only by an inference verb's init_from_env(): a training run also has a
# process group, and its rank 0 may encode or mine alone while the others wait (main_process_first),
# so inside training these helpers must behave as a single process.

_sharing = False


def init_from_env() -> int:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1) and share inference work; the world size.

    The inference verbs call this first; plain ``python`` (no ``WORLD_SIZE``) stays one process
    and no group is created. NCCL when CUDA is available, else gloo (CPU).
    """
    import os

    global _sharing
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available():
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend)
        _sharing = True
    return share_world()


def share_world() -> int:
    """Ranks sharing inference work: the world size after :func:`init_from_env`, else 1."""
    return world_size() if _sharing else 1


def share_rank() -> int:
    """This process's rank among :func:`share_world` ranks (0 in a single process)."""
    return rank() if _sharing else 0


def is_main() -> bool:
    """True on the rank that searches and writes results (rank 0; any process when not sharing)."""
    return share_rank() == 0


def local_device() -> torch.device:
    """This rank's accelerator when sharing under torchrun (``cuda:LOCAL_RANK``), else the CPU."""
    import os

    if share_world() > 1 and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _collective_device() -> torch.device:
    """NCCL moves only CUDA tensors; gloo only CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every sharing rank (no-op in a single process)."""
    if share_world() > 1:
        dist.barrier()


class OtherRankFailed(RuntimeError):
    """Rank 0 raised while deciding for every rank; the other ranks stop with this instead of waiting."""


def main_decides(decide: Callable[[], bool]) -> bool:
    """``decide()`` run on rank 0 only, its answer on every rank; if it raises, every rank raises.

    A decision that can fail on rank 0 (an index check that refuses a foreign index, a server that
    is down) must not leave the other ranks waiting for a broadcast that never comes: torchrun's
    agent tears the group down when a rank exits, but other launchers (srun, mpirun) leave them
    waiting for the collective's timeout (30 minutes). Rank 0 sends a failure code and re-raises
    its own error; the other ranks raise :class:`OtherRankFailed`. In a single process: ``decide()``.
    """
    if share_world() == 1:
        return decide()
    failed = 2  # the code for "rank 0 raised"; 0 and 1 are the answer
    code, error = 0, None
    if is_main():
        try:
            code = int(bool(decide()))
        except Exception as exc:  # shared with the other ranks below, then raised again here
            code, error = failed, exc
    value = torch.tensor([code], device=_collective_device())
    dist.broadcast(value, src=0)
    if error is not None:
        raise error
    if int(value.item()) == failed:
        raise OtherRankFailed(f"rank 0 stopped with an error (in its log); rank {share_rank()} stops too")
    return bool(value.item())


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank: one decision (reuse an index, skip a step) for all ranks."""
    return main_decides(lambda: flag)


def strided_share(n_units: int) -> list[int]:
    """The units ``rank, rank + world, rank + 2 * world, ...`` of ``0..n_units``: this rank's share.

    Units are batches (or pieces of batches) formed the same way whatever the world size, so
    every unit is computed exactly as one process computes it; striding keeps the ranks' loads
    equal when units come sorted by cost (length-sorted batches).
    """
    return list(range(share_rank(), n_units, share_world()))


def gather_arrays(local: np.ndarray) -> list[np.ndarray] | None:
    """Every rank's 1-D ``local`` array on rank 0, in rank order; ``None`` on the other ranks.

    Arrays may differ in length (padded for the collective and cut back). Plain tensors, no
    object pickling. In a single process: ``[local]``.
    """
    if share_world() == 1:
        return [local]
    device = _collective_device()
    lengths = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world_size())]
    dist.all_gather(lengths, torch.tensor([local.size], dtype=torch.int64, device=device))
    sizes = [int(x.item()) for x in lengths]
    padded = torch.zeros(max(sizes), dtype=torch.from_numpy(local[:0]).dtype, device=device)
    padded[: local.size] = torch.from_numpy(np.ascontiguousarray(local)).to(device)
    parts = [torch.empty_like(padded) for _ in sizes] if is_main() else None
    dist.gather(padded, parts, dst=0)
    if parts is None:
        return None
    return [p[:s].cpu().numpy() for p, s in zip(parts, sizes, strict=True)]
