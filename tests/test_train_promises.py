"""Promises of asr/train.py and docs/robustness.md, each checked so that it fails when broken:
checkpoint rotation keeps a bounded number (the best by dev metric), non-finite loss or gradient
steps are skipped and counted with no update, early stopping stops (and a resumed run does not
train further), and the final model is the element-wise mean of the best epochs' weights.

Dev scores are scripted (``asr.train.score_dev`` replaced) so that "best" is known in advance.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

from asr import train as train_mod
from asr.checkpoint import load_model_file, safe_load
from asr.config import load_config
from asr.train import Trainer
from conftest import make_tone_corpus

TINY = ["model.hidden=8", "model.layers=1", "features.n_mels=23", "data.max_batch=3",
        "data.speed_perturb=[1.0]", "train.warmup_steps=1", "train.threads=1",
        "train.amp=false"]


pytestmark = pytest.mark.usefixtures("no_leaked_log_handlers")


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[str, str]:
    train = make_tone_corpus(tmp_path, n_utts=6, seed=11, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=12, name="dev")
    return str(train), str(dev)


def script_dev(monkeypatch, wers: list[float]) -> list[float]:
    """Make epoch k's dev WER (and CER) ``wers[k-1]``; later calls (the final model) get 0.5."""
    left = list(wers)

    def score(rec, utts):
        w = left.pop(0) if left else 0.5
        return {"dev_wer": w, "dev_cer": w}

    monkeypatch.setattr(train_mod, "score_dev", score)
    return left


def trainer(corpus, exp: Path, overrides: list[str], resume: bool = False) -> Trainer:
    return Trainer(load_config(None, [*TINY, *overrides]), corpus[0], corpus[1], exp,
                   resume=resume, device="cpu")


def epoch_files(exp: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (exp / "checkpoints").glob("epoch-*.pt"))


def log_rows(exp: Path) -> list[dict]:
    with open(exp / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- checkpoint rotation ---------------------------------------------------------------------
@pytest.mark.parametrize("keep,average,bound", [(2, 1, 2), (1, 3, 3)])
def test_rotation_keeps_a_bounded_number_of_the_best(corpus, tmp_path, monkeypatch,
                                                     keep, average, bound):
    wers = [0.9, 0.4, 0.7, 0.2, 0.8]  # best: epoch 4, then 2, then 3
    script_dev(monkeypatch, wers)
    tr = trainer(corpus, tmp_path / "exp", [f"train.epochs={len(wers)}",
                                            f"train.keep_checkpoints={keep}",
                                            f"train.average_best={average}"])
    seen = []
    real_rotate = tr._rotate

    def rotate():
        real_rotate()
        seen.append(epoch_files(tr.exp))

    tr._rotate = rotate
    tr.fit()
    # bounded after every epoch, not only at the end
    assert [len(s) for s in seen] == [min(e, bound) for e in range(1, len(wers) + 1)]
    best = sorted(range(1, len(wers) + 1), key=lambda e: (wers[e - 1], e))[:bound]
    assert epoch_files(tr.exp) == sorted(best)
    assert load_model_file(tr.exp / "model.pt")["averaged_epochs"] == best[:average]


# -- averaging -------------------------------------------------------------------------------
def test_final_model_is_the_mean_of_the_best_epochs(corpus, tmp_path, monkeypatch):
    wers = [0.5, 0.2, 0.6, 0.3]  # best two: epochs 2 and 4 (not the last two, nor the first)
    script_dev(monkeypatch, wers)
    # every epoch's checkpoint is kept, so the best two must be chosen by their dev metric
    tr = trainer(corpus, tmp_path / "exp", ["train.epochs=4", "train.keep_checkpoints=4",
                                            "train.average_best=2"])
    weights: dict[int, dict[str, torch.Tensor]] = {}
    real_save = tr._save_epoch

    def save_epoch(epoch, metric):
        weights[epoch] = snapshot(tr.model)
        real_save(epoch, metric)

    tr._save_epoch = save_epoch
    out = tr.fit()
    final = safe_load(out)
    assert final["averaged_epochs"] == [2, 4]
    assert epoch_files(tr.exp) == [1, 2, 3, 4]
    got = final["model"]
    assert got.keys() == weights[2].keys()
    for k, v in got.items():
        if v.is_floating_point():
            expect = ((weights[2][k].double() + weights[4][k].double()) / 2).to(v.dtype)
            torch.testing.assert_close(v, expect, rtol=1e-6, atol=1e-7, msg=k)
        else:
            assert torch.equal(v, weights[4][k]), k
    # the two epochs' weights differ, so the mean is neither of them
    assert any(not torch.equal(weights[2][k], weights[4][k]) for k in got
               if got[k].is_floating_point())


# -- non-finite steps ------------------------------------------------------------------------
def test_non_finite_loss_or_gradient_steps_are_skipped_and_counted(corpus, tmp_path, caplog):
    tr = trainer(corpus, tmp_path / "exp", ["train.epochs=2", "train.average_best=1"])
    nan_loss_at, nan_grad_at = {2}, {3}  # 1-based calls of Trainer._step
    calls = {"n": 0}
    real_ctc, real_step = tr.ctc, tr._step
    param = next(p for p in tr.model.parameters() if p.requires_grad)
    param.register_hook(lambda g: g * float("nan") if calls["n"] in nan_grad_at else g)

    def ctc(*args):
        loss = real_ctc(*args)
        # NaN loss with finite gradients: only the loss check can catch it
        return loss + float("nan") if calls["n"] in nan_loss_at else loss

    updates = []

    def step(batch):
        calls["n"] += 1
        before = snapshot(tr.model)
        opt_steps = [s.get("step") for s in tr.opt.state_dict()["state"].values()]
        lr_step = tr.sched.last_epoch
        out = real_step(batch)
        changed = any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
        updates.append(changed)
        if calls["n"] in nan_loss_at | nan_grad_at:
            assert out is None
            assert not changed, f"step {calls['n']} updated the weights"
            assert [s.get("step") for s in tr.opt.state_dict()["state"].values()] == opt_steps
            assert tr.sched.last_epoch == lr_step
        return out

    tr.ctc, tr._step = ctc, step
    with caplog.at_level(logging.WARNING):
        tr.fit()
    bad = len(nan_loss_at | nan_grad_at)
    assert calls["n"] >= 4
    assert tr.state.skipped_steps == bad
    assert safe_load(tr.last, "checkpoint")["state"]["skipped_steps"] == bad
    assert updates == [i not in nan_loss_at | nan_grad_at for i in range(1, calls["n"] + 1)]
    assert caplog.text.count("non-finite loss or gradient") == bad
    assert f"update skipped ({bad} so far)" in caplog.text
    for k, v in tr.model.state_dict().items():
        assert torch.isfinite(v.float()).all(), k
    for r in log_rows(tr.exp):  # the skipped steps' NaN loss is not averaged in
        assert float(r["train_loss"]) == float(r["train_loss"]), r


# -- early stopping --------------------------------------------------------------------------
def test_early_stopping_stops_and_a_resumed_run_does_not_train_further(corpus, tmp_path,
                                                                      monkeypatch, caplog):
    script_dev(monkeypatch, [0.5, 0.4, 0.6, 0.7, 0.8, 0.9])  # best at 2; 3 and 4 are worse
    exp = tmp_path / "exp"
    overrides = ["train.epochs=6", "train.patience=2", "train.average_best=1"]
    tr = trainer(corpus, exp, overrides)
    with caplog.at_level(logging.INFO):
        tr.fit()
    assert [int(r["epoch"]) for r in log_rows(exp)] == [1, 2, 3, 4]
    assert "early stopping: no dev improvement for 2 epochs" in caplog.text
    assert tr.state.bad_epochs == 2
    stopped_at = tr.state.global_step
    assert safe_load(tr.last, "checkpoint")["state"]["global_step"] == stopped_at

    steps = []
    real_step = Trainer._step
    monkeypatch.setattr(Trainer, "_step", lambda self, b: steps.append(1) or real_step(self, b))
    again = trainer(corpus, exp, overrides, resume=True)
    again.fit()
    assert steps == []  # not one more step
    assert again.state.global_step == stopped_at
    assert [int(r["epoch"]) for r in log_rows(exp)] == [1, 2, 3, 4]
    assert (exp / "model.pt").is_file()
