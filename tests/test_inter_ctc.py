"""Intermediate CTC: the auxiliary loss on a middle layer's output, through the shared head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr.config import load_config
from asr.data import train_batches
from asr.errors import UserError
from asr.train import Trainer
from conftest import make_tone_corpus

SMALL = ["model.hidden=16", "model.layers=3", "model.dropout=0.0", "features.n_mels=23",
         "data.max_batch=4", "train.threads=1", "train.amp=false"]


def _trainer(tmp_path: Path, *overrides: str) -> Trainer:
    train = make_tone_corpus(tmp_path, n_utts=6, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=2, name="dev")
    cfg = load_config(None, [*SMALL, *overrides])
    return Trainer(cfg, str(train), str(dev), tmp_path / "exp", device="cpu")


@pytest.mark.parametrize("layer,w", [(0, 0.3), (1, 0.3), (2, 0.5)])
def test_loss_mixes_final_and_intermediate_ctc(tmp_path: Path, layer: int, w: float) -> None:
    tr = _trainer(tmp_path, f"train.inter_ctc_layer={layer}", f"train.inter_ctc_weight={w}")
    _, batch = next(train_batches(tr.examples, tr.source, tr.cfg.data, None, 1, 1))
    n = len(batch.ids)
    got = tr._loss_backward(batch, n)
    grads = {k: p.grad.clone() for k, p in tr.model.named_parameters()}

    x, out_lens, inter = tr.model.encode(batch.feats, batch.lens, keep=layer)
    assert (inter is None) == (layer == 0)

    def ctc(h: torch.Tensor) -> torch.Tensor:
        return tr.ctc(tr.model.log_probs(h).transpose(0, 1), batch.targets, out_lens,
                      batch.target_lens)

    expected = ctc(x) if inter is None else (1 - w) * ctc(x) + w * ctc(inter)
    assert got == pytest.approx(expected.item() / n, rel=1e-5)
    # the forward pass used for decoding is the final layer's, unchanged
    lp, _ = tr.model(batch.feats, batch.lens)
    torch.testing.assert_close(lp, tr.model.log_probs(x))
    # gradients: the intermediate loss reaches the layers below it and the shared head
    tr.model.zero_grad()
    (expected / n).backward()
    for k, p in tr.model.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, msg=k)


def test_intermediate_layer_must_be_below_the_top(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="inter_ctc_layer must be below model.layers"):
        load_config(None, ["model.layers=3", "train.inter_ctc_layer=3"])
    with pytest.raises(UserError, match="inter_ctc_weight"):
        load_config(None, ["train.inter_ctc_weight=1.5"])
