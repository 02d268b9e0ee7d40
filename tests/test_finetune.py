"""Fine-tuning (`asr train --init MODEL`): training starts from a trained model's weights,
tokens and CMVN, with its feature and model settings; the run's own training settings apply."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.checkpoint import load_model_file
from asr.config import load_config
from asr.inference import Recognizer
from asr.train import Trainer
from conftest import make_tone_corpus, run_cli

TINY = ["model.hidden=16", "model.layers=2", "features.n_mels=23", "data.max_batch=3",
        "train.epochs=2", "train.warmup_steps=2", "train.threads=1", "train.average_best=1"]


def test_init_starts_from_the_model_and_keeps_its_shape(tmp_path: Path, capsys) -> None:
    train = make_tone_corpus(tmp_path, n_utts=6, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=2, name="dev")
    rc, _, err = run_cli(["train", "--train", train, "--dev", dev, "--exp-dir",
                          tmp_path / "base", "--device", "cpu", *TINY], capsys)
    assert rc == 0, err
    base = load_model_file(tmp_path / "base" / "model.pt")
    # the model file records its longest training utterance (asr transcribe decodes files no
    # longer than that whole)
    from asr.manifest import read_manifest

    assert base["longest_utterance"] == max(u.duration for u in read_manifest(train))
    assert Recognizer.from_file(tmp_path / "base" / "model.pt").longest_utterance == \
        base["longest_utterance"]

    # a different shape and feature setting on the command line: the model's own win
    cfg = load_config(None, [*TINY, "model.hidden=32", "features.n_mels=40", "train.lr=1e-4"])
    tr = Trainer(cfg, str(train), str(dev), tmp_path / "ft", device="cpu",
                 init=tmp_path / "base" / "model.pt")
    assert tr.cfg.model.hidden == 16 and tr.cfg.features.n_mels == 23
    assert tr.cfg.train.lr == 1e-4  # the run's training settings stay
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, base["model"][k], msg=k)
    assert tr.tokenizer.to_dict() == base["tokenizer"]
    torch.testing.assert_close(tr.rec.cmvn, base["cmvn"])
    # before any update it decodes exactly like the model it starts from
    base_rec = Recognizer.from_file(tmp_path / "base" / "model.pt")
    expected = base_rec.decode_utterances(tr.dev_utts)
    got = tr.rec.decode_utterances(tr.dev_utts)
    assert {u: h.tokens for u, h in got.items()} == {u: h.tokens for u, h in expected.items()}
    start = {k: base["config"][k] for k in ("features", "model")}
    out = tr.fit()
    tuned = load_model_file(out)
    assert {k: tuned["config"][k] for k in ("features", "model")} == start
    assert any(not torch.equal(v, base["model"][k]) for k, v in tuned["model"].items())


def test_init_errors_are_one_line(tmp_path: Path, capsys) -> None:
    train = make_tone_corpus(tmp_path, n_utts=2, seed=1, name="train")
    rc, _, err = run_cli(["train", "--train", train, "--dev", train, "--exp-dir",
                          tmp_path / "x", "--init", tmp_path / "missing.pt"], capsys)
    assert rc != 0 and err.strip().count("\n") == 0 and "model file not found" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    rc, _, err = run_cli(["train", "--train", train, "--dev", train, "--exp-dir",
                          tmp_path / "y", "--init", junk], capsys)
    assert rc != 0 and err.strip().count("\n") == 0 and "junk.pt" in err, err
