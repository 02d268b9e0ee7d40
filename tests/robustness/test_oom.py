"""Out of memory during training: the batch is split and accumulated, a single utterance that
does not fit is skipped and counted, and the run completes."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asr.config import load_config
from asr.train import Trainer
from conftest import make_tone_corpus

TINY = ["model.hidden=8", "model.layers=1", "features.n_mels=23", "data.max_batch=4",
        "data.speed_perturb=[1.0]", "train.epochs=1", "train.average_best=1",
        "train.warmup_steps=1", "train.threads=1"]


def test_oom_batches_are_split_and_single_oversize_utterances_skipped(tmp_path: Path, caplog):
    train = make_tone_corpus(tmp_path, n_utts=8, seed=5, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=6, name="dev")
    trainer = Trainer(load_config(None, TINY), str(train), str(dev), tmp_path / "exp",
                      device="cpu")
    longest = max(ex.frames for ex in trainer.examples)
    real_encode = trainer.model.encode  # the training step's forward pass
    calls = {"oom": 0}

    def encode(feats, lens, keep=0):
        # Pretend memory holds one utterance, and never the longest one.
        if trainer.model.training and (feats.shape[0] > 1 or int(lens.max()) >= longest):
            calls["oom"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real_encode(feats, lens, keep)

    trainer.model.encode = encode
    with caplog.at_level(logging.WARNING):
        model = trainer.fit()
    assert model.is_file()
    assert calls["oom"] > 0
    assert "splitting it" in caplog.text
    assert trainer.state.oom_skipped >= 1  # the longest utterance, every time it came up
    assert trainer.state.skipped_steps == 0
    assert "out of memory on utterance" in caplog.text
