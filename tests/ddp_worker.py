"""One training step's loss, logged terms and gradients, in one process or on each rank under torchrun.

``tests/test_ddp_equivalence.py`` runs this file with two gloo ranks (per-device batch B) and
compares what rank 0 writes with :func:`run_scenarios` in a single process at batch 2B on the
same examples. Usage under torchrun: ``ddp_worker.py OUTPUT.pt``.
"""

from __future__ import annotations

import sys

import torch

from sparse_tune.config import LossConfig
from sparse_tune.distributed import mean_over_ranks, rank, world_size
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs, query_keys
from sparse_tune.models.io import build_model, model_config_for
from sparse_tune.training.cached import encode_and_score
from sparse_tune.training.collator import GroupCollator

EXAMPLES = [
    {
        "query": "aspirin heart attack",
        "docs": ["Aspirin reduces the risk of heart attack.", "Cats sleep a lot."],
        "scores": [3.0, -1.0],
    },
    {
        "query": "vitamin d bone",
        "docs": ["Vitamin D improves bone density.", "Jupiter is a big planet."],
        "scores": [2.5, 0.5],
    },
    {
        "query": "covid vaccine",
        "docs": ["The covid vaccine prevents severe disease.", "Old castles in Spain."],
        "scores": [1.0, 0.0],
    },
    {
        "query": "insulin diabetes",
        "docs": ["Insulin treats type 1 diabetes in children.", "Chess openings."],
        "scores": [4.0, 2.0],
    },
]
INFONCE_FLOPS = dict(loss="infonce", scale=0.05, flops_doc_weight=0.05, flops_query_weight=0.1)
KL = dict(loss="kl", temperature=2.0)
#: name -> (loss config, mini_batch_size or None for uncached, gather across devices, same-query keys)
SCENARIOS = {
    "infonce_flops": (INFONCE_FLOPS, None, True, False),
    "infonce_flops_cached": (INFONCE_FLOPS, 1, True, False),
    "kl": (KL, None, True, False),
    "kl_cached": (KL, 1, True, False),
    "infonce_flops_per_rank": (INFONCE_FLOPS, None, False, False),  # the old behaviour: gathering matters
    # Examples 0 and 2 as two groups of one query (one per positive): on rank 0 and rank 1 under
    # torchrun, so each positive is masked out of the other's softmax only if the keys are gathered.
    "infonce_same_query": (INFONCE_FLOPS, None, True, True),
}
#: The same-query scenario's key per example (examples 0 and 2 are one query).
SAME_QUERY = ["q0", "q1", "q0", "q3"]


def build_tiny_model() -> torch.nn.Module:
    cfg, path = model_config_for("splade-tiny", max_query_length=8, max_doc_length=16)
    model = build_model(cfg, path)
    model.eval()  # no dropout: the 1-process and 2-process runs must see the same function
    return model


def run_scenarios(examples: list[dict], model: torch.nn.Module, keys: list[str]) -> dict[str, dict]:
    """For each scenario: the global loss, the logged terms (mean over ranks) and every parameter gradient.

    ``keys``: the same-query scenario's key texts of ``examples``.
    """
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batch = GroupCollator(model)(examples)
    out = {}
    for name, (loss_kwargs, mini_batch_size, gather, same) in SCENARIOS.items():
        model.load_state_dict(initial)
        model.zero_grad(set_to_none=True)
        wrapped = model
        if world_size() > 1:
            wrapped = torch.nn.parallel.DistributedDataParallel(model)
        loss_fn = build_loss(LossConfig(**loss_kwargs), inference_free=False)

        def loss_of(q, d, loss_fn=loss_fn, gather=gather, same=same):
            keys_of = query_keys(keys) if same else None
            return loss_fn(
                LossInputs(q, d, teacher_scores=batch["teacher_scores"], gather=gather, query_keys=keys_of)
            )

        _, _, terms = encode_and_score(wrapped, batch["query"], batch["docs"], loss_of, mini_batch_size)
        terms["loss"].backward()
        logged = mean_over_ranks({k: float(v.detach()) for k, v in terms.items()})
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        # DDP leaves the averaged gradient on every rank: record how far rank 1 is from rank 0
        spread = 0.0
        if world_size() > 1:
            flat = torch.cat([g.flatten() for g in grads.values()])
            low, high = flat.clone(), flat.clone()
            torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
            spread = float((high - low).abs().max())
        out[name] = {"logged": logged, "grads": grads, "rank_spread": spread}
    return out


def main(output: str) -> None:
    torch.distributed.init_process_group("gloo")
    torch.manual_seed(0)
    n, r = world_size(), rank()
    share = len(EXAMPLES) // n
    mine = slice(r * share, (r + 1) * share)
    result = run_scenarios(EXAMPLES[mine], build_tiny_model(), SAME_QUERY[mine])
    result["_ranks"] = mean_over_ranks({"rank_plus_one": float(r + 1)})  # 1.5 with two ranks
    if r == 0:
        torch.save(result, output)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
