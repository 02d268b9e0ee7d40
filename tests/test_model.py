"""asr.model: output lengths, padding-independent outputs, one training step per cell type, and
overfitting a single batch."""

from __future__ import annotations

import math

import pytest
import torch

from asr.model import CTCModel, ModelConfig, reverse_index, subsampled_lengths


def tiny(**kw) -> ModelConfig:
    base = dict(hidden=8, layers=1, conv_dim=8, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def padded(lens: list[int], F: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lens), max(lens), F, generator=g)
    for b, n in enumerate(lens):
        x[b, n:] = 0.0  # pad_sequence pads with zeros
    return x, torch.tensor(lens)


@pytest.mark.parametrize("subsampling", ["stack", "conv"])
@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_output_lengths(subsampling, s):
    torch.manual_seed(0)
    lens = [13, 7, 1, 12]
    model = CTCModel(tiny(subsample=s, subsampling=subsampling), 5, 6).eval()
    x, L = padded(lens, 5)
    log_probs, out_lens = model(x, L)
    expected = [math.ceil(n / s) for n in lens]
    assert out_lens.tolist() == expected
    assert log_probs.shape == (4, math.ceil(13 / s), 6)
    assert log_probs.shape[1] >= max(expected)
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(4, log_probs.shape[1]))


def test_subsampled_lengths_and_reverse_index():
    assert subsampled_lengths(torch.tensor([0, 1, 2, 3, 4, 5, 9]), 3).tolist() == [0, 1, 1, 1, 2, 2, 3]
    idx = reverse_index(torch.tensor([3, 5, 1]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]]
    x = torch.arange(15).reshape(3, 5)
    assert torch.equal(x.gather(1, idx).gather(1, idx), x)  # an involution


@pytest.mark.parametrize("cell, subsampling, proj, layer_norm", [
    ("lstm", "stack", 0, False),
    ("lstm", "conv", 6, True),
    ("gru", "stack", 6, False),
    ("rnn", "conv", 0, True),
])
def test_padded_batch_equals_each_utterance_alone(cell, subsampling, proj, layer_norm):
    """The backward direction reads each utterance reversed within its own length, so padding
    never changes an utterance's outputs."""
    torch.manual_seed(0)
    cfg = tiny(cell=cell, hidden=12, layers=2, bidirectional=True, subsample=2,
               subsampling=subsampling, proj=proj, layer_norm=layer_norm)
    model = CTCModel(cfg, 6, 5).eval()
    lens = [23, 17, 9, 2]
    x, L = padded(lens, 6, seed=1)
    with torch.no_grad():
        batch_lp, batch_ol = model(x, L)
        for b, n in enumerate(lens):
            alone_lp, alone_ol = model(x[b:b + 1, :n], L[b:b + 1])
            assert int(alone_ol) == int(batch_ol[b]) == alone_lp.shape[1]
            torch.testing.assert_close(batch_lp[b, :int(batch_ol[b])], alone_lp[0],
                                       atol=1e-5, rtol=0)


def test_padding_would_leak_into_a_naive_backward_pass():
    """Sanity check of the test above: with a plain bidirectional nn.LSTM (no per-length
    reversal) the padded batch does differ, so the equality is not vacuous."""
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(6, 8, batch_first=True, bidirectional=True)
    x, _ = padded([10, 4], 6)
    with torch.no_grad():
        diff = (rnn(x)[0][1, :4] - rnn(x[1:2, :4])[0][0]).abs().max()
    assert diff > 1e-4


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("proj, layer_norm", [(0, False), (6, True)])
def test_one_training_step_changes_every_parameter(cell, proj, layer_norm):
    torch.manual_seed(0)
    cfg = tiny(cell=cell, layers=2, proj=proj, layer_norm=layer_norm, dropout=0.1, subsample=2)
    model = CTCModel(cfg, 5, 4).train()
    if layer_norm:
        assert any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    if proj:
        assert model.head.in_features == proj
    x, L = padded([20, 14], 5)
    targets, tlens = torch.tensor([1, 2, 3, 1, 3]), torch.tensor([3, 2])
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    log_probs, out_lens = model(x, L)
    loss = torch.nn.CTCLoss()(log_probs.transpose(0, 1), targets, out_lens, tlens)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    opt.step()
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged


def test_overfits_one_batch():
    torch.manual_seed(0)
    B, T, F, V = 2, 40, 8, 5
    x, L = padded([40, 32], F, seed=3)
    targets, tlens = torch.tensor([1, 2, 3, 4, 2, 3, 1, 4, 2]), torch.tensor([5, 4])
    model = CTCModel(ModelConfig(hidden=32, layers=1, subsample=2, dropout=0.0), F, V)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctc = torch.nn.CTCLoss(reduction="sum")
    losses = []
    for _ in range(200):  # converges in ~30 steps for several seeds
        log_probs, out_lens = model(x, L)
        loss = ctc(log_probs.transpose(0, 1), targets, out_lens, tlens) / B
        losses.append(loss.item())
        if losses[-1] <= 0.1 * losses[0]:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] <= 0.1 * losses[0], f"loss {losses[0]:.2f} -> {losses[-1]:.2f} in 200 steps"


@pytest.mark.parametrize("kw", [dict(cell="lstmp"), dict(subsample=5), dict(subsample=0),
                                dict(subsampling="pool"), dict(dropout=1.0), dict(hidden=0)])
def test_model_config_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        ModelConfig(**kw)


def test_cpu_dropout_mask_is_fair_independent_and_scaled():
    """asr.model.Dropout (three 16-bit mask fields per 48-bit random draw): each element is
    dropped with probability p independently of its neighbours, kept ones are scaled by
    1/(1-p), gradients follow the mask, and eval mode or p=0 passes the input through."""
    from asr.model import Dropout

    torch.manual_seed(0)
    x = torch.rand(24, 100, 513) + 0.5  # no zeros of its own; numel not a multiple of 3
    for p in (0.2, 0.5):
        drop = Dropout(p).train()
        xr = x.clone().requires_grad_()
        y = drop(xr)
        keep = y != 0
        assert abs(keep.float().mean().item() - (1 - p)) < 0.005
        torch.testing.assert_close(y[keep], x[keep] / (1 - p))
        k = keep.flatten().float()
        for lag in (1, 2, 3, 4):  # neighbours within a draw and across draws
            both = (k[:-lag] * k[lag:]).mean().item()
            assert abs(both - (1 - p) ** 2) < 0.005, (p, lag, both)
        y.sum().backward()
        torch.testing.assert_close(xr.grad, keep.float() / (1 - p))
        torch.manual_seed(1)
        a = drop(x)
        torch.manual_seed(1)
        assert torch.equal(a, drop(x))  # the global generator's seed decides the mask
        assert torch.equal(Dropout(p).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    near_one = Dropout(1 - 1e-6).train()(x)  # p rounds to 1 in 1/65536: all dropped
    assert torch.equal(near_one, torch.zeros_like(x))
    m = CTCModel(ModelConfig(hidden=8, layers=2, dropout=0.2), in_dim=4, vocab_size=5)
    assert type(m.dropout) is Dropout  # the model's dropout is this one
