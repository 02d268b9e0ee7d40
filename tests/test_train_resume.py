"""Training end to end on a synthetic corpus: a run SIGKILLed mid-epoch and resumed with
--resume ends with exactly the weights of an uninterrupted run, each resumed run continuing from
the position its checkpoint saved (not from scratch); the model file then transcribes."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from asr.checkpoint import safe_load
from asr.train import Trainer
from conftest import make_tone_corpus, run_cli

TINY = ["model.hidden=16", "model.layers=2", "model.subsample=2", "features.n_mels=23",
        "data.max_batch=3", "data.max_frames=100000", "train.epochs=3",
        "train.checkpoint_every_steps=1", "train.average_best=2", "train.keep_checkpoints=2",
        "train.warmup_steps=5", "train.threads=1"]


def _cmd(train: Path, dev: Path, exp: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "asr.cli", "train", "--train", str(train), "--dev", str(dev),
           "--exp-dir", str(exp), "--device", "cpu", *TINY]
    return cmd + (["--resume"] if resume else [])


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def _kill_midway(cmd: list[str], last: Path, rng: random.Random) -> None:
    """Start training and SIGKILL it at a random moment after it writes a new checkpoint."""
    before = last.stat().st_mtime_ns if last.exists() else 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (last.exists() and last.stat().st_mtime_ns != before):
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _position(last: Path) -> tuple[int, int, int]:
    """(epoch, batch, global_step) that the checkpoint ``last`` resumes from."""
    st = safe_load(last, "checkpoint")["state"]
    return st["epoch"], st["step_in_epoch"], st["global_step"]


def test_sigkill_three_times_then_resume_equals_uninterrupted(tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    train = make_tone_corpus(tmp_path, n_utts=24, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=4, seed=2, name="dev")

    _run(_cmd(train, dev, tmp_path / "a", resume=False))
    total_steps = _position(tmp_path / "a" / "checkpoints" / "last.pt")[2]

    exp = tmp_path / "b"
    last = exp / "checkpoints" / "last.pt"
    rng = random.Random(0)
    saved = []  # the checkpoint's position before each --resume
    _kill_midway(_cmd(train, dev, exp, resume=False), last, rng)
    for _ in range(2):
        assert not (exp / "model.pt").exists(), "a killed run must not have finished"
        saved.append(_position(last))
        _kill_midway(_cmd(train, dev, exp, resume=True), last, rng)
    assert not (exp / "model.pt").exists()
    saved.append(_position(last))
    assert saved[-1][:2] != (1, 0)  # progress was made and kept
    # The last resume runs in-process, counting the optimiser steps it executes.
    steps = []
    real_step = Trainer._step
    monkeypatch.setattr(Trainer, "_step", lambda self, b: steps.append(1) or real_step(self, b))
    rc, _, err = run_cli(_cmd(train, dev, exp, resume=True)[3:], capsys)
    assert rc == 0, err
    # It continued from the saved position: only the steps not done before it.
    assert len(steps) == total_steps - saved[-1][2], (len(steps), total_steps, saved[-1])
    assert _position(last)[2] == total_steps
    # Every resumed run (two killed, one finished) logged the position its checkpoint held.
    resumed = re.findall(r"resumed from \S+: epoch (\d+), batch (\d+)",
                         (exp / "train.log").read_text())
    assert [(int(e), int(b)) for e, b in resumed] == [p[:2] for p in saved]

    a = safe_load(tmp_path / "a" / "model.pt")["model"]
    b = safe_load(exp / "model.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # No temporary files are left behind by the atomic writes.
    assert not [p for p in exp.rglob("*.tmp")]


def test_trained_model_transcribes_and_evaluates(tmp_path: Path) -> None:
    train = make_tone_corpus(tmp_path, n_utts=12, seed=3, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=3, seed=4, name="dev")
    exp = tmp_path / "exp"
    _run(_cmd(train, dev, exp, resume=False))
    for f in ("model.pt", "log.csv", "curves.png", "config.yaml", "train.log"):
        assert (exp / f).is_file(), f
    assert any((exp / "tensorboard").iterdir())
    rows = (exp / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,train_loss,dev_wer,dev_cer")
    assert len(rows) == 1 + 3

    wavs = sorted((tmp_path / "dev").glob("*.wav"))
    r = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(exp / "model.pt"),
                        *map(str, wavs)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(wavs)

    out = tmp_path / "decode"
    r = subprocess.run([sys.executable, "-m", "asr.cli", "evaluate", str(exp / "model.pt"),
                        str(dev), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "%WER" in r.stdout and "sub" in r.stdout
    assert len((out / "hyp.txt").read_text().splitlines()) == 3
    assert os.path.isfile(out / "wer.json")
