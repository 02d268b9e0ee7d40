"""Out of memory during training: the batch is split and accumulated, a single utterance that
does not fit is skipped and counted, and the run completes. The halves of a split batch give
exactly the gradient of the whole batch (each half's summed loss is divided by the whole
batch's utterance count), and every other utterance is still trained."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from asr.config import load_config
from asr.data import train_batches
from asr.train import Trainer
from conftest import make_tone_corpus

TINY = ["model.hidden=8", "model.layers=1", "features.n_mels=23", "data.max_batch=4",
        "data.speed_perturb=[1.0]", "train.epochs=1", "train.average_best=1",
        "train.warmup_steps=1", "train.threads=1"]


pytestmark = pytest.mark.usefixtures("no_leaked_log_handlers")


def _oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")


def test_oom_batches_are_split_and_single_oversize_utterances_skipped(tmp_path: Path, caplog):
    train = make_tone_corpus(tmp_path, n_utts=8, seed=5, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=6, name="dev")
    trainer = Trainer(load_config(None, TINY), str(train), str(dev), tmp_path / "exp",
                      device="cpu")
    longest = max(ex.frames for ex in trainer.examples)
    too_long = [ex.utt.id for ex in trainer.examples if ex.frames >= longest]
    assert len(too_long) == 1  # the corpus has one longest utterance: exactly one skip
    real_encode = trainer.model.encode  # the training step's forward pass
    real_loss_backward = trainer._loss_backward
    calls = {"oom": 0}
    current: list[list[str]] = [[]]  # ids of the (part of a) batch being tried
    trained: list[str] = []  # ids whose forward (and backward) went through

    def loss_backward(batch, n_total):
        current[0] = list(batch.ids)
        return real_loss_backward(batch, n_total)

    def encode(feats, lens, keep=0):
        # Pretend memory holds one utterance, and never the longest one.
        if trainer.model.training and (feats.shape[0] > 1 or int(lens.max()) >= longest):
            calls["oom"] += 1
            raise _oom()
        if trainer.model.training:
            trained.extend(current[0])
        return real_encode(feats, lens, keep)

    trainer.model.encode = encode
    trainer._loss_backward = loss_backward  # the halves go through it too (self._loss_backward)
    with caplog.at_level(logging.WARNING):
        model = trainer.fit()
    assert model.is_file()
    assert calls["oom"] > 0
    assert "splitting it" in caplog.text
    # one epoch without speed perturbation: the longest utterance comes up exactly once
    assert trainer.state.oom_skipped == 1
    assert f"out of memory on utterance {too_long[0]}" in caplog.text
    assert trainer.state.skipped_steps == 0
    # every other utterance was trained, once, one at a time after the splits
    assert sorted(trained) == sorted(ex.utt.id for ex in trainer.examples
                                     if ex.utt.id not in too_long)
    n_batches = sum(1 for _, b in train_batches(trainer.examples, trainer.source,
                                                trainer.cfg.data, trainer.cfg.specaug,
                                                trainer.cfg.train.seed, 1) if b is not None)
    assert trainer.state.global_step == n_batches  # every batch made its optimiser update


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _singles(batch):
    return [batch] if len(batch.ids) == 1 else [s for h in batch.split() for s in _singles(h)]


def test_split_halves_give_the_whole_batch_gradient(tmp_path: Path):
    train = make_tone_corpus(tmp_path, n_utts=8, seed=5, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=6, name="dev")
    cfg = load_config(None, [*TINY, "model.dropout=0.0", "train.amp=false"])
    trainer = Trainer(cfg, str(train), str(dev), tmp_path / "exp", device="cpu")
    batch = next(b for _, b in train_batches(trainer.examples, trainer.source, cfg.data,
                                             cfg.specaug, cfg.train.seed, 1)
                 if b is not None and len(b.ids) >= 3)
    n = len(batch.ids)
    model, real_encode = trainer.model, trainer.model.encode
    model.train()

    def backward(b, n_total):
        model.zero_grad(set_to_none=True)
        loss = trainer._loss_backward(b, n_total)
        return loss, _grads(model)

    whole_loss, whole = backward(batch, n)  # fits in memory: no split
    # Reference: the mean over the batch's utterances of each one's own gradient.
    singles = [backward(s, 1) for s in _singles(batch)]
    assert len(singles) == n
    mean = {k: sum(g[k] for _, g in singles) / n for k in whole}

    def encode(feats, lens, keep=0):  # memory holds one utterance: split down to singles
        if feats.shape[0] > 1:
            raise _oom()
        return real_encode(feats, lens, keep)

    model.encode = encode
    split_loss, split = backward(batch, n)
    model.encode = real_encode
    trainer.logger.close()
    assert trainer.state.oom_skipped == 0
    assert whole.keys() == split.keys() and whole
    for k in whole:
        torch.testing.assert_close(split[k], whole[k], rtol=1e-4, atol=1e-6, msg=k)
        torch.testing.assert_close(whole[k], mean[k], rtol=1e-4, atol=1e-6, msg=k)
    assert abs(split_loss - whole_loss) <= 1e-4 * abs(whole_loss)
    assert abs(whole_loss - sum(l for l, _ in singles) / n) <= 1e-4 * abs(whole_loss)
