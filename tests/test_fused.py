"""The fused SPLADE pooling must equal the plain head: values and gradients, every mask shape.

The reference (materialised logits + ``amax``) is the ground truth; where ``amax`` splits
the gradient among exactly tied tokens, the fused kernel routes it to the first one, so tie
tests compare against a ``torch.max`` reference (one index) and against ``amax`` on the
quantities ties cannot change.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sparse_tune.models.activations import ACTIVATIONS
from sparse_tune.models.fused import DEFAULT_CHUNK_SIZE, masked_max_logits, splade_pool_fused
from sparse_tune.models.splade_pool import splade_pool, splade_pool_reference

ACTS = ["log1p_relu", "log1p_log1p_relu"]


def _inputs(
    batch: int,
    seq: int,
    dim: int,
    vocab: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    bias: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Random leaf tensors with ragged right padding; about half the logits are positive."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, seq, dim, generator=gen, dtype=dtype).requires_grad_()
    weight = torch.randn(vocab, dim, generator=gen, dtype=dtype).requires_grad_()
    shift = -1.2 * dim**0.5  # about half the (row, entry) maxima end up positive
    b = (0.5 * torch.randn(vocab, generator=gen, dtype=dtype) + shift).requires_grad_() if bias else None
    lengths = torch.randint(1, seq + 1, (batch,), generator=gen)
    lengths[0] = seq  # at least one unpadded row
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()  # (batch, seq)
    return hidden, weight, b, mask


def _values_and_grads(
    fn, hidden, weight, bias, mask, activation, seed: int = 1, **kw
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Pooled output and grads of a random linear functional of it w.r.t. every leaf input."""
    out = fn(hidden, weight, bias, mask, activation, **kw)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    leaves = [t for t in (hidden, weight, bias) if t is not None]
    grads = torch.autograd.grad((out * upstream).sum(), leaves)
    return out.detach(), [g.detach() for g in grads]


def _assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    """Elementwise within ``rtol`` of the expected tensor's scale (absolute floor for exact zeros)."""
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale)


def _max_reference(hidden, weight, bias, mask, activation):
    """Like the reference, but ``torch.max`` routes the gradient to one (the first) tied token."""
    logits = torch.nn.functional.linear(hidden, weight, bias)  # (batch, seq, vocab)
    weights = ACTIVATIONS[activation](logits) * mask.unsqueeze(-1).to(logits.dtype)
    return weights.max(dim=1).values  # (batch, vocab)


# --- exactness against the reference -------------------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 97, 500])
def test_matches_reference_float32(activation: str, chunk_size: int) -> None:
    hidden, weight, bias, mask = _inputs(3, 9, 16, 97, seed=chunk_size)  # 97 is prime: no chunk divides it
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(
        splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=chunk_size
    )
    assert out.shape == (3, 97) and out.dtype == torch.float32
    assert 0.2 < float((ref > 0).float().mean()) < 0.9  # the test exercises both live and dead entries
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("shape", [(1, 5), (4, 1), (1, 1)], ids=["B1", "T1", "B1T1"])
def test_degenerate_shapes(activation: str, shape: tuple[int, int]) -> None:
    batch, seq = shape
    hidden, weight, bias, mask = _inputs(batch, seq, 8, 33, seed=3)
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=10)
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


@pytest.mark.parametrize("activation", ACTS)
def test_without_bias(activation: str) -> None:
    hidden, weight, _, mask = _inputs(2, 6, 8, 40, seed=4, bias=False)
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, None, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, None, mask, activation, chunk_size=16)
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


@pytest.mark.parametrize("activation", ACTS)
def test_gradcheck_float64(activation: str) -> None:
    hidden, weight, bias, mask = _inputs(2, 4, 3, 11, seed=5, dtype=torch.float64)

    def fn(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return splade_pool_fused(h, w, b, mask, activation, chunk_size=4)

    assert torch.autograd.gradcheck(fn, (hidden, weight, bias), eps=1e-6, atol=1e-7, rtol=1e-5)
    out = fn(hidden, weight, bias)
    assert out.dtype == torch.float64
    torch.testing.assert_close(
        out, splade_pool_reference(hidden, weight, bias, mask, activation), rtol=1e-12, atol=1e-12
    )


def test_only_requested_grads() -> None:
    """Frozen decoder (weight/bias without grad): only the hidden gradient is computed."""
    hidden, weight, bias, mask = _inputs(2, 5, 8, 30, seed=6)
    weight, bias = weight.detach(), bias.detach()
    out = splade_pool_fused(hidden, weight, bias, mask, "log1p_relu", chunk_size=8)
    (g,) = torch.autograd.grad(out.sum(), [hidden])
    ref = splade_pool_reference(hidden, weight, bias, mask, "log1p_relu")
    (r,) = torch.autograd.grad(ref.sum(), [hidden])
    _assert_rel_close(g, r)


# --- padding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
def test_masked_tokens_never_win(activation: str) -> None:
    """Padding positions carry huge logits; the result must equal pooling over the real tokens only."""
    hidden, weight, bias, _ = _inputs(2, 6, 8, 50, seed=7)
    with torch.no_grad():
        hidden[:, 3:] = 100.0 * weight[:3].sum(0)  # (2, 3, 8): logits of tens of thousands
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 1, 0]])  # right padding and holes / left padding
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=16)
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)
    assert float(out.max()) < 10.0  # nothing from the padding leaked in
    masked = mask == 0
    assert float(grads[0][masked].abs().max()) == 0.0  # padding gets no gradient
    max_logits, argmax = masked_max_logits(
        hidden.detach(), weight.detach(), bias.detach(), mask, chunk_size=16
    )
    live = max_logits > 0  # the entries whose index is used by backward
    assert bool(live.any()) and bool(
        mask.gather(1, argmax)[live].bool().all()
    )  # every routed token is a real one


@pytest.mark.parametrize("activation", ACTS)
def test_all_masked_row_gives_zeros(activation: str) -> None:
    hidden, weight, bias, _ = _inputs(3, 4, 8, 25, seed=8)
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]])
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=7)
    assert float(out[1].abs().max()) == 0.0
    assert float(grads[0][1].abs().max()) == 0.0
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


def test_bool_and_float_masks_agree() -> None:
    hidden, weight, bias, mask = _inputs(3, 6, 8, 20, seed=9)
    outs = [
        splade_pool_fused(hidden, weight, bias, m, "log1p_relu") for m in (mask, mask.bool(), mask.float())
    ]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=0, atol=0)


# --- zero pooled values and ties -------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
def test_dead_entries_get_zero_gradient(activation: str) -> None:
    """relu kills every token of half the vocabulary: pooled 0 and gradient exactly 0, as in autograd."""
    hidden, weight, bias, mask = _inputs(2, 5, 8, 30, seed=10)
    with torch.no_grad():
        bias[:15] = -1e4
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=8)
    assert float(out[:, :15].abs().max()) == 0.0
    assert float(grads[1][:15].abs().max()) == 0.0 and float(grads[2][:15].abs().max()) == 0.0
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


@pytest.mark.parametrize("activation", ACTS)
def test_sparse_live_entries(activation: str) -> None:
    """Trained-SPLADE regime (a few % of entries positive): the index is found on live rows only."""
    hidden, weight, bias, mask = _inputs(3, 12, 16, 200, seed=20)
    with torch.no_grad():
        bias -= 6.0
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=64)
    assert 0.0 < float((ref > 0).float().mean()) < 0.1
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)


def test_everything_dead() -> None:
    """No entry receives gradient: zero gradients of the right shapes, no empty-matrix errors."""
    hidden, weight, bias, mask = _inputs(2, 4, 8, 20, seed=19)
    with torch.no_grad():
        bias.fill_(-1e4)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, "log1p_relu", chunk_size=8)
    assert float(out.abs().max()) == 0.0
    assert [tuple(g.shape) for g in grads] == [(2, 4, 8), (20, 8), (20,)]
    assert all(float(g.abs().max()) == 0.0 for g in grads)


def _tied_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Small dyadic values (exact float arithmetic) with duplicated tokens, so logits tie exactly."""
    gen = torch.Generator().manual_seed(11)
    hidden = torch.randint(-64, 65, (2, 6, 4), generator=gen).float() / 64  # (2, 6, 4)
    hidden[:, 3] = hidden[:, 1]  # token 3 duplicates token 1 ...
    hidden[:, 5] = hidden[:, 1]  # ... and so does token 5
    hidden[1, 4] = hidden[1, 0]
    weight = torch.randint(-64, 65, (9, 4), generator=gen).float() / 64  # (9, 4)
    bias = torch.randint(-16, 17, (9,), generator=gen).float() / 64  # (9,)
    mask = torch.ones(2, 6, dtype=torch.long)
    return hidden.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(), mask


@pytest.mark.parametrize("activation", ACTS)
def test_ties_route_to_first_token(activation: str) -> None:
    hidden, weight, bias, mask = _tied_inputs()
    ref, ref_grads = _values_and_grads(splade_pool_reference, hidden, weight, bias, mask, activation)
    one, one_grads = _values_and_grads(_max_reference, hidden, weight, bias, mask, activation)
    out, grads = _values_and_grads(splade_pool_fused, hidden, weight, bias, mask, activation, chunk_size=4)

    logits = torch.nn.functional.linear(hidden, weight, bias).detach()  # (2, 6, 9)
    best = logits.amax(dim=1, keepdim=True)
    n_ties = ((logits == best) & (best > 0)).sum(dim=1)  # (2, 9)
    assert int((n_ties > 1).sum()) > 0, "the fixture must contain live ties"
    for b, v in (n_ties > 1).nonzero().tolist():  # ... and only between identical token vectors
        tied = (logits[b, :, v] == best[b, 0, v]).nonzero().squeeze(1)
        assert bool((hidden[b, tied] == hidden[b, tied[0]]).all())

    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # pooled values are tie-independent
    for g, r in zip(grads, one_grads, strict=True):  # same routing as torch.max: the first tied token
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)
    # Tied tokens are identical vectors, so weight/bias grads and the hidden grad summed over
    # each duplicate group do not depend on how the tie is split: they equal amax's too.
    torch.testing.assert_close(grads[1], ref_grads[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads[2], ref_grads[2], rtol=1e-6, atol=1e-6)
    for b, group in [(0, [1, 3, 5]), (1, [1, 3, 5]), (1, [0, 4])]:
        torch.testing.assert_close(
            grads[0][b, group].sum(0), ref_grads[0][b, group].sum(0), rtol=1e-6, atol=1e-6
        )
    assert float(grads[0][:, [3, 5]].abs().max()) == 0.0  # later duplicates never receive gradient
    assert float(grads[0][1, 4].abs().max()) == 0.0


# --- dtype handling, dispatch, memory --------------------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
def test_bf16_autocast_close_to_float32(activation: str) -> None:
    hidden, weight, bias, mask = _inputs(2, 8, 32, 64, seed=12)
    ref = splade_pool_reference(hidden, weight, bias, mask, activation)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = splade_pool(hidden, weight, bias, mask, activation, impl="fused", chunk_size=16)
        ref_bf16 = splade_pool(hidden, weight, bias, mask, activation, impl="reference")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref.detach(), rtol=3e-2, atol=6e-2)
    torch.testing.assert_close(out, ref_bf16.detach().float(), rtol=3e-2, atol=6e-2)
    grads = torch.autograd.grad(out.sum(), [hidden, weight, bias])
    ref_grads = torch.autograd.grad(ref.sum(), [hidden, weight, bias])
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == torch.float32  # back to the float32 leaves through autocast's casts
        torch.testing.assert_close(g, r, rtol=5e-2, atol=5e-2 * float(r.abs().max()))


def test_bf16_inputs_without_autocast() -> None:
    hidden, weight, bias, mask = _inputs(2, 6, 16, 40, seed=13)
    h, w, b = (t.detach().bfloat16().requires_grad_() for t in (hidden, weight, bias))
    out = splade_pool_fused(h, w, b, mask, "log1p_relu", chunk_size=16)
    assert out.dtype == torch.float32
    grads = torch.autograd.grad(out.sum(), [h, w, b])
    assert [g.dtype for g in grads] == [torch.bfloat16] * 3
    ref = splade_pool_reference(hidden, weight, bias, mask, "log1p_relu")
    torch.testing.assert_close(out, ref.detach(), rtol=3e-2, atol=6e-2)


@pytest.mark.parametrize("shift", [0, -22], ids=["dense-live", "sparse-live"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_exact_on_representable_inputs(dtype: torch.dtype, shift: int) -> None:
    """Small integers make every product and sum exact in 16-bit floats: the reduced-precision
    path must then match float32 bit for bit, ties and routing included;
    its gradients are the same float32 sums rounded once to the input dtype."""
    gen = torch.Generator().manual_seed(21)
    hidden = torch.randint(-3, 4, (3, 7, 8), generator=gen).float()  # |logit| <= 72 + 3: exact
    weight = torch.randint(-3, 4, (50, 8), generator=gen).float()
    bias = torch.randint(-3, 4, (50,), generator=gen).float() + shift
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0, 1, 1, 0, 1, 1, 1]])
    upstream = torch.rand(3, 50, generator=gen)
    results = []
    for dt in (torch.float32, dtype):
        h, w, b = (t.to(dt).requires_grad_() for t in (hidden, weight, bias))
        out = splade_pool_fused(h, w, b, mask, "log1p_relu", chunk_size=16)
        grads = torch.autograd.grad((out * upstream).sum(), [h, w, b])
        results.append((out, *(g.float() for g in grads)))
    live = float((results[0][0] > 0).float().mean())
    assert (live > 0.3) if shift == 0 else (0.0 < live < 0.2)  # both argmax branches are exercised
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)  # pooled: float32 both
    for full, half in zip(results[0][1:], results[1][1:], strict=True):  # grads: float32 sums, rounded once
        torch.testing.assert_close(half, full.to(dtype).float(), rtol=0, atol=0)


def test_no_grad_path_matches_grad_path() -> None:
    hidden, weight, bias, mask = _inputs(3, 7, 8, 45, seed=14)
    with_grad = splade_pool_fused(hidden, weight, bias, mask, "log1p_relu", chunk_size=10)
    with torch.inference_mode():
        fast = splade_pool(hidden, weight, bias, mask, "log1p_relu", chunk_size=10)
    assert not fast.requires_grad
    torch.testing.assert_close(fast, with_grad.detach(), rtol=0, atol=0)


def test_dispatcher() -> None:
    hidden, weight, bias, mask = _inputs(2, 5, 8, 20, seed=15)
    a = splade_pool(hidden, weight, bias, mask, "log1p_relu", impl="reference")
    b = splade_pool(hidden, weight, bias, mask, "log1p_relu")  # fused by default
    _assert_rel_close(b.detach(), a.detach())
    with pytest.raises(ValueError, match="impl"):
        splade_pool(hidden, weight, bias, mask, "log1p_relu", impl="triton")  # type: ignore[arg-type]


def test_input_validation() -> None:
    hidden, weight, bias, mask = _inputs(2, 5, 8, 20, seed=16)
    with pytest.raises(ValueError, match="activation"):
        splade_pool(hidden, weight, bias, mask, "gelu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        splade_pool(hidden, weight, bias, mask[:, :3], "log1p_relu")
    with pytest.raises(ValueError, match="weight"):
        splade_pool(hidden, weight[:, :4], bias, mask, "log1p_relu")
    with pytest.raises(ValueError, match="bias"):
        splade_pool(hidden, weight, bias[:5], mask, "log1p_relu")
    with pytest.raises(TypeError, match="dtype"):
        splade_pool_fused(hidden, weight.double(), bias, mask, "log1p_relu")
    with pytest.raises(ValueError, match="chunk_size"):
        splade_pool_fused(hidden, weight, bias, mask, "log1p_relu", chunk_size=0)


def test_never_saves_batch_tokens_vocab() -> None:
    """The autograd graph of the fused head holds nothing of size (batch, seq_len, vocab)."""
    batch, seq, vocab = 2, 64, 500
    hidden, weight, bias, mask = _inputs(batch, seq, 8, vocab, seed=17)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = splade_pool_fused(hidden, weight, bias, mask, "log1p_relu", chunk_size=64)
    assert saved and max(saved) < batch * seq * vocab
    out.sum().backward()

    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        splade_pool_reference(hidden, weight, bias, mask, "log1p_relu")
    assert max(saved) >= batch * seq * vocab  # the reference does (sanity check of the probe)


def test_default_chunk_covers_bert_vocab() -> None:
    hidden, weight, bias, mask = _inputs(1, 3, 4, DEFAULT_CHUNK_SIZE + 3, seed=18)
    ref = splade_pool_reference(hidden, weight, bias, mask, "log1p_relu")
    _assert_rel_close(splade_pool_fused(hidden, weight, bias, mask, "log1p_relu").detach(), ref.detach())


# --- the real tiny SPLADE model ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("cognition") is None, reason="splade-tiny package not installed")
def test_real_splade_tiny_head() -> None:
    """On real MLM-transform outputs (BERT, vocab 30,522) the fused head equals the reference."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from sparse_tune.registry import resolve_model_path

    path = resolve_model_path("splade-tiny")
    tok = AutoTokenizer.from_pretrained(path)
    mlm = AutoModelForMaskedLM.from_pretrained(path).eval()
    feats = tok(
        ["sparse retrieval with splade", "a longer second document about proteins and cells"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        seq = mlm.bert(**feats).last_hidden_state  # (2, seq_len, 128)
        hidden = mlm.cls.predictions.transform(seq)  # (2, seq_len, 128)
        full = mlm(**feats).logits  # (2, seq_len, 30522)
    decoder = mlm.get_output_embeddings()
    h = hidden.clone().requires_grad_()
    ref, ref_grads = _values_and_grads(
        splade_pool_reference, h, decoder.weight, decoder.bias, feats["attention_mask"], "log1p_relu"
    )
    out, grads = _values_and_grads(
        splade_pool_fused, h, decoder.weight, decoder.bias, feats["attention_mask"], "log1p_relu"
    )
    expected = (torch.log1p(torch.relu(full)) * feats["attention_mask"][..., None]).amax(1)
    _assert_rel_close(ref, expected)  # the probe reproduces the model's own logits
    _assert_rel_close(out, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _assert_rel_close(g, r)
