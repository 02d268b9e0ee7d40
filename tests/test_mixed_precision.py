"""Mixed precision: float16 on CUDA, bfloat16 on CPUs with native bf16, float32 otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr.config import load_config
from asr.data import train_batches
from asr.train import Trainer, autocast_dtype
from conftest import make_tone_corpus

SMALL = ["model.hidden=32", "model.layers=2", "model.dropout=0.0", "features.n_mels=23",
         "data.max_batch=4", "train.threads=1", "train.warmup_steps=0"]


def _native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)


def test_dtype_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _native_bf16(monkeypatch, True)
    assert autocast_dtype(torch.device("cpu"), True) == torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), True) == torch.float16
    assert autocast_dtype(torch.device("cpu"), False) is None
    assert autocast_dtype(torch.device("cuda"), False) is None
    _native_bf16(monkeypatch, False)  # emulated bf16 would be slower than float32
    assert autocast_dtype(torch.device("cpu"), True) is None


def _cpu_runs_bf16_lstm() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(4, 4, batch_first=True)(torch.randn(1, 3, 4))
        return True
    except RuntimeError:  # oneDNN has no bf16 LSTM primitive for this CPU
        return False


def test_bf16_step_matches_float32_and_trains(tmp_path: Path, monkeypatch) -> None:
    if not _cpu_runs_bf16_lstm():
        # this CPU cannot run the bf16 path at all: training must then not choose it
        assert autocast_dtype(torch.device("cpu"), True) is None
        return
    _native_bf16(monkeypatch, True)
    train = make_tone_corpus(tmp_path, n_utts=6, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=2, name="dev")
    trainers = {amp: Trainer(load_config(None, [*SMALL, f"train.amp={amp}"]), str(train),
                             str(dev), tmp_path / f"exp-{amp}", device="cpu")
                for amp in ("true", "false")}
    assert trainers["true"].amp_dtype == torch.bfloat16 and not trainers["true"].use_amp
    assert trainers["false"].amp_dtype is None
    tr = trainers["true"]
    _, batch = next(train_batches(tr.examples, tr.source, tr.cfg.data, None, 1, 1))
    calls = []
    real = torch.nn.LSTM.forward
    monkeypatch.setattr(torch.nn.LSTM, "forward", lambda self, x, *a: calls.append(
        torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        or real(self, x, *a))
    losses = {amp: t._loss_backward(batch, len(batch.ids)) for amp, t in trainers.items()}
    assert set(calls) == {torch.bfloat16, None}  # the bf16 run's LSTMs ran under autocast
    # same initial weights (same seed): bf16 changes the loss only by rounding
    assert losses["true"] == pytest.approx(losses["false"], rel=2e-2)
    grads = [p.grad for p in tr.model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all()
               for g in grads)  # float32 master weights and gradients

    before = losses["true"]
    for _ in range(30):
        tr._step(batch)
    assert tr._loss_backward(batch, len(batch.ids)) < 0.5 * before
