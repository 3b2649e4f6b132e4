"""Memory-light SPLADE pooling: vocabulary projection, activation, mask and max-pool in one step.

The plain SPLADE head materialises ``(batch, tokens, vocab)`` logits, their activation, and in
the backward pass a gradient of the same size; at 30,522 vocabulary entries that tensor is
the bulk of a SPLADE model's activation memory and of its head's time. Two facts remove it:

1. Both activations are monotone non-decreasing and the padding mask only multiplies
   non-negative values by 0/1, so ``max_t act(x_t) * m_t == act(max_{t: m_t} x_t)`` (and 0
   when every token is masked). The max can therefore be taken over the raw logits of the
   real tokens, and the activation applied to the ``(batch, vocab)`` result only. Because the
   bias is the same for every token, it is added after the max (``fl(x + b)`` is monotone in
   ``x``, so this is exact).
2. Max-pooling routes the gradient to one token per (batch row, vocabulary entry). The
   backward pass only needs that token's index: the gradient is a sparse
   ``(batch * tokens, vocab)`` matrix with at most one non-zero per (row, entry), restricted to
   the entries whose pooled value is positive (the others have zero gradient: ``relu'(x <= 0)
   == 0``, exactly as the reference autograd computes it), never a ``(batch, tokens, vocab)``
   tensor; ``grad_hidden`` and ``grad_weight`` are two sparse-dense products with it
   (``O(batch * vocab * hidden)`` work instead of ``O(batch * tokens * vocab * hidden)``).

The forward pass walks the vocabulary in chunks of ``chunk_size`` columns and, within a
chunk, one batch row at a time over that row's unmasked tokens only: the largest
intermediate is a ``(chunk_size, tokens)`` block, which stays in the L2 cache, and padding costs
nothing. Only the max logit per (row, entry) is kept, plus its token index where the pooled
value is positive (elsewhere the gradient is zero and the index is never read).

Ties: when several unmasked tokens share the maximal logit, the gradient goes to the
first of them (lowest position), which is what ``torch.max(dim)`` returns. The reference
``torch.amax`` splits the gradient evenly among tied tokens instead; pooled values are
identical either way. A tie in activation space between tokens whose logits differ (e.g.
two logits that round to the same ``log1p``) routes to the larger logit.

Precision: the projection runs in the inputs' dtype (bf16 under autocast, see
:func:`sparse_tune.models.splade_pool.splade_pool`); the max logit, the bias add and the
activation are computed in float32 (float64 for float64 inputs) and the pooled output is in
that dtype. Backward accumulates in the same float32/float64 and returns gradients in the
inputs' dtypes.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from sparse_tune.models.pool_tape import PoolRoutes, active_tape

#: The activations the fused kernel knows the derivative of.
Activation = Literal["log1p_relu", "log1p_log1p_relu"]
ACTIVATION_NAMES: tuple[str, ...] = ("log1p_relu", "log1p_log1p_relu")

#: Vocabulary entries per forward step. A (2048, 256 tokens) float32 block is 2 MiB, which fits
#: the L2 cache of current server cores, and 15 chunks over BERT's 30,522 entries keep the
#: (rows x chunks) Python loop to a few percent of the matmul time. Measured on a 2-core Xeon
#: (splade-tiny, 32 x 256 tokens): 1024-4096 are within noise of each other; 512 and below lose
#: to loop overhead, and whole-batch (batch, chunk, tokens) blocks lose to cache misses.
DEFAULT_CHUNK_SIZE = 2048


def _accum_dtype(dtype: torch.dtype) -> torch.dtype:
    """Pooled values and gradients accumulate in float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def activate(max_logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Apply the SPLADE activation to the pooled max logits ``(batch, vocab)``."""
    relu = torch.relu(max_logits)  # -inf (row fully masked) -> 0
    if activation == "log1p_relu":
        return torch.log1p(relu)
    if activation == "log1p_log1p_relu":
        return torch.log1p(torch.log1p(relu))
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATION_NAMES}")


def activation_grad(max_logits: torch.Tensor, activation: str) -> torch.Tensor:
    """d act / d logit at the pooled max logit; exactly 0 where ``x <= 0`` (relu's subgradient in torch)."""
    positive = max_logits > 0
    x = torch.where(positive, max_logits, torch.zeros_like(max_logits))  # keeps -inf out of the maths
    if activation == "log1p_relu":
        grad = 1.0 / (1.0 + x)
    elif activation == "log1p_log1p_relu":
        grad = 1.0 / ((1.0 + torch.log1p(x)) * (1.0 + x))
    else:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATION_NAMES}")
    return torch.where(positive, grad, torch.zeros_like(grad))


def check_pool_inputs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor, activation: str
) -> None:
    """Fail early with the shapes in the message; a silent broadcast here would pool garbage."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (batch, seq_len, hidden), got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
        raise ValueError(
            f"weight must be (vocab, hidden={hidden.shape[2]}), got {tuple(weight.shape)} for hidden {tuple(hidden.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must be (vocab={weight.shape[0]},), got {tuple(bias.shape)}")
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"mask must be (batch, seq_len) = {tuple(hidden.shape[:2])}, got {tuple(mask.shape)}"
        )
    if activation not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATION_NAMES}")


def masked_max_logits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    with_argmax: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Max over unmasked tokens of ``hidden @ weight.T + bias``, without the (batch, tokens, vocab) logits.

    Returns ``(max_logits, argmax)``: ``max_logits`` ``(batch, vocab)`` in float32 (float64 for
    float64 inputs), ``-inf`` for rows with no unmasked token; ``argmax`` ``(batch, vocab)``
    int64 token positions (first position among exact ties) for the entries whose max logit is
    positive, 0 elsewhere (those receive no gradient), or ``None`` when ``with_argmax`` is
    False (inference needs no gradient routing).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, seq_len, _ = hidden.shape
    vocab = weight.shape[0]
    acc = _accum_dtype(hidden.dtype)
    max_logits = torch.full((batch, vocab), float("-inf"), dtype=acc, device=hidden.device)  # (batch, vocab)
    argmax = torch.zeros((batch, vocab), dtype=torch.long, device=hidden.device) if with_argmax else None

    # Per row: the unmasked tokens and their positions. Gathering them once makes padding free
    # and lets any mask pattern (left padding, holes) through the same code.
    valid = mask != 0  # (batch, seq_len)
    rows: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []
    for r in range(batch):
        if bool(valid[r].all()):
            rows.append((r, hidden[r], None))  # (seq_len, hidden); positions are the identity
        else:
            positions = valid[r].nonzero().squeeze(1)  # (n_valid,)
            if positions.numel() > 0:
                rows.append((r, hidden[r].index_select(0, positions), positions))  # (n_valid, hidden)

    bias_acc = bias.to(acc) if bias is not None else None
    for start in range(0, vocab, chunk_size):
        stop = min(vocab, start + chunk_size)
        w_c = weight[start:stop]  # (chunk, hidden)
        for r, h_r, positions in rows:
            logits = torch.mm(w_c, h_r.t())  # (chunk, n_valid) in the compute dtype
            values = logits.amax(dim=1).to(acc)  # (chunk,)
            if bias_acc is not None:
                values += bias_acc[start:stop]  # same bias for every token: adding after the max is exact
            max_logits[r, start:stop] = values
            if argmax is None:
                continue
            # Only entries with a positive pooled logit receive gradient, so only they need the
            # token index. A trained SPLADE keeps ~1% of the vocabulary alive, and the indexed
            # max over those rows is far cheaper than an indexed max over the whole chunk.
            live = (values > 0).nonzero().squeeze(1)  # (n_live,)
            if live.numel() == 0:
                continue
            if 4 * live.numel() > stop - start:
                index = logits.max(dim=1).indices[live]  # (n_live,): first position among ties
            else:
                index = logits.index_select(0, live).max(dim=1).indices  # (n_live,): idem
            argmax[r, start + live] = index if positions is None else positions[index]
    return max_logits, argmax


def _csr(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int, n_cols: int
) -> torch.Tensor:
    """CSR matrix from entries already sorted by row (no COO round trip, no coalescing sort)."""
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=values.device)
    crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, (n_rows, n_cols), check_invariants=False)


class _FusedSpladePool(torch.autograd.Function):
    """Autograd wrapper: saves (max logit, argmax token) per (row, entry), not the logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        mask: torch.Tensor,
        activation: str,
        chunk_size: int,
    ) -> torch.Tensor:
        max_logits, argmax = masked_max_logits(hidden, weight, bias, mask, chunk_size, with_argmax=True)
        ctx.save_for_backward(hidden, weight, max_logits, argmax)
        ctx.activation = activation
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return activate(max_logits, activation)  # (batch, vocab)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, max_logits, argmax = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        batch, seq_len, dim = hidden.shape
        acc = max_logits.dtype

        # d pooled / d max-logit, zero where relu killed every token or the row is fully masked.
        grad = grad_out.to(acc) * activation_grad(max_logits, ctx.activation)  # (batch, vocab)
        grad_bias = grad.sum(dim=0).to(ctx.bias_dtype) if (need_bias and ctx.has_bias) else None

        grad_hidden = grad_weight = None
        if need_hidden or need_weight:
            # The gradient as a sparse (batch * seq_len, vocab) matrix G with at most one non-zero
            # per (row, entry): grad_hidden = G @ W and grad_weight = G.T @ hidden. MKL's CSR
            # products are ~10x faster than index_add_ on CPU and never densify G.
            vocab_idx, rows = grad.t().nonzero(as_tuple=True)  # (n,), (n,): sorted by vocab entry
            values = grad[rows, vocab_idx]  # (n,)
            tokens = rows * seq_len + argmax[rows, vocab_idx]  # (n,): flat index into batch * seq_len
            if need_weight:
                g_t = _csr(
                    vocab_idx, tokens, values, weight.shape[0], batch * seq_len
                )  # (vocab, batch*seq_len)
                grad_weight = g_t @ hidden.reshape(batch * seq_len, dim).to(acc)  # (vocab, hidden)
            if need_hidden:
                order = torch.argsort(tokens, stable=True)
                g = _csr(tokens[order], vocab_idx[order], values[order], batch * seq_len, weight.shape[0])
                grad_hidden = g @ weight.to(acc)  # (batch * seq_len, hidden)

        out_hidden = (
            grad_hidden.view(batch, seq_len, dim).to(hidden.dtype) if grad_hidden is not None else None
        )
        out_weight = grad_weight.to(weight.dtype) if grad_weight is not None else None
        return out_hidden, out_weight, grad_bias, None, None, None


def splade_pool_fused(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    activation: Activation = "log1p_relu",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """SPLADE max-pooling without materialising ``(batch, seq_len, vocab)``.

    Args:
        hidden: ``(batch, seq_len, hidden)`` MLM transform output (the decoder's input).
        weight: ``(vocab, hidden)`` decoder weight, same dtype as ``hidden``.
        bias: ``(vocab,)`` decoder bias or None.
        mask: ``(batch, seq_len)`` attention mask, 1/True for real tokens; masked tokens never win.
        activation: ``"log1p_relu"`` or ``"log1p_log1p_relu"``.
        chunk_size: vocabulary columns per step (default :data:`DEFAULT_CHUNK_SIZE`).

    Returns:
        ``(batch, vocab)`` pooled weights in float32 (float64 for float64 inputs).

    Without gradients (``torch.no_grad`` / ``inference_mode`` or no input requiring grad) the
    argmax bookkeeping is skipped, unless a :class:`~sparse_tune.models.pool_tape.PoolTape` is
    recording (GradCache's first pass); under a replaying tape only the recorded routes are
    recomputed (:func:`pool_at_routes`).
    """
    check_pool_inputs(hidden, weight, bias, mask, activation)
    if weight.dtype != hidden.dtype or (bias is not None and bias.dtype != hidden.dtype):
        raise TypeError(
            f"hidden, weight and bias must share a dtype, got {hidden.dtype}, {weight.dtype}, "
            f"{None if bias is None else bias.dtype} (cast them, or call splade_pool(), which handles autocast)"
        )
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    tape = active_tape()
    if tape is not None and tape.replaying:
        return pool_at_routes(hidden, weight, bias, tape.next(_call_shape(hidden, weight)), activation)
    if not needs_grad:
        max_logits, argmax = masked_max_logits(
            hidden, weight, bias, mask, chunk, with_argmax=tape is not None
        )
        if tape is not None and argmax is not None:
            tape.record(PoolRoutes.from_pool(max_logits, argmax, hidden.shape[1]))
        return activate(max_logits, activation)
    if tape is not None:
        raise RuntimeError(
            "pool routes are recorded without autograd (under torch.no_grad()), as GradCache does"
        )
    return _FusedSpladePool.apply(hidden, weight, bias, mask, activation, chunk)


def _call_shape(hidden: torch.Tensor, weight: torch.Tensor) -> tuple[int, int, int]:
    return (hidden.shape[0], hidden.shape[1], weight.shape[0])


def pool_at_routes(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    routes: PoolRoutes,
    activation: str,
) -> torch.Tensor:
    """The pooled ``(batch, vocab)`` values, with autograd, from recorded max-pool routes.

    Each positive entry's logit is recomputed at the token that won its max in the recorded
    pass (see :mod:`sparse_tune.models.pool_tape`); every other entry is 0, as it was there.
    Given the same hidden states this is the fused pooling's value, and its gradient is the one
    the fused backward computes (the same token per entry, the same activation derivative),
    for ``O(n_positive x hidden)`` work instead of the whole vocabulary projection.
    """
    batch, seq_len, dim = hidden.shape
    acc = _accum_dtype(hidden.dtype)
    flat = hidden.reshape(batch * seq_len, dim)
    h = flat.index_select(0, routes.rows * seq_len + routes.tokens).to(acc)  # (n, hidden)
    w = weight.index_select(0, routes.entries).to(acc)  # (n, hidden)
    logits = (h * w).sum(dim=1)  # (n,)
    if bias is not None:
        logits = logits + bias.index_select(0, routes.entries).to(acc)
    pooled = torch.zeros((batch, weight.shape[0]), dtype=acc, device=hidden.device)  # (batch, vocab)
    return pooled.index_put((routes.rows, routes.entries), activate(logits, activation))
