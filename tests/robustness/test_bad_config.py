"""Bad configs through ``asr train``: unknown or mistyped keys (with a suggestion and the known
keys), wrong types, out-of-range values, unreadable files. One line, exit 2, and the run never
starts (no experiment folder). Library-level cases live in tests/test_config.py."""

from __future__ import annotations

import pytest

from conftest import make_wav

from .helpers import assert_user_error, manifest_line, run_cli

MODEL_KEYS = ("known: bidirectional, cell, conv_dim, dropout, hidden, layer_norm, layers, proj, "
              "subsample, subsampling")

# override -> message substring
OVERRIDES = {
    "model.layerz=2": f"unknown config key(s) in 'model': layerz (did you mean 'layers'?); "
                      f"{MODEL_KEYS}",
    "trian.epochs=2": "unknown config key(s): trian (did you mean 'train'?); known: data, "
                      "features, model, specaug, text, tokenizer, train",
    "model.hidden=big": "config key 'model.hidden' must be int, got 'big'",
    "data.strict=maybe": "config key 'data.strict' must be bool, got 'maybe'",
    "train.epochs=0": "bad config value: train.epochs must be > 0, got 0",
    "train.lr=-0.1": "bad config value: train.lr must be > 0, got -0.1",
    "train.lr=.nan": "bad config value: train.lr must be > 0, got nan",
    "data.max_duration=-1": "bad config value: data.max_duration must be > 0, got -1.0",
    "data.max_batch=0": "bad config value: data.max_batch must be > 0, got 0",
    "data.min_duration=60": "bad config value: data.min_duration (60.0) must be below "
                            "data.max_duration (30.0)",
    "data.speed_perturb=[0.9,3.0]": "bad config value: data.speed_perturb factors must be in "
                                    "[0.5, 2], got [3.0]",
    "train.select_metric=bleu": "bad config value: train.select_metric must be wer or cer, "
                                "got 'bleu'",
    "train.average_best=0": "bad config value: train.average_best must be > 0, got 0",
    "model.dropout=1.5": "bad config value: model.dropout must be in [0, 1), got 1.5",
}

# The range checks docs/robustness.md lists under "value out of range": override -> the whole
# message after "asr: error: " (each names its key).
RANGES = {
    "train.min_lr=0.01": "bad config value: train.min_lr (0.01) must not exceed train.lr (0.002)",
    "data.num_buckets=0": "bad config value: data.num_buckets must be > 0, got 0",
    "train.keep_checkpoints=0": "bad config value: train.keep_checkpoints must be > 0, got 0",
    "train.warmup_steps=-1": "bad config value: train.warmup_steps must be >= 0, got -1",
    "train.patience=-1": "bad config value: train.patience must be >= 0, got -1",
    "train.threads=-1": "bad config value: train.threads must be >= 0, got -1",
    "train.seed=-1": "bad config value: train.seed must be >= 0, got -1",
    "tokenizer.vocab_size=1": "bad config value: tokenizer.vocab_size must be >= 2, got 1",
    "data.trim_ms=-1": "bad config value: data.trim_ms must be >= 0, got -1.0",
    "data.pad_ms=-5": "bad config value: data.pad_ms must be >= 0, got -5.0",
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    make_wav(d / "a.wav")
    (d / "m.jsonl").write_text(manifest_line(d / "a.wav") + "\n")
    return d / "m.jsonl"


def _train(manifest, exp, *extra):
    return ["train", "--train", manifest, "--dev", manifest, "--exp-dir", exp, *extra]


@pytest.mark.parametrize("override", list(OVERRIDES))
def test_bad_override(override, manifest, tmp_path, capsys):
    exp = tmp_path / "exp"
    assert_user_error(run_cli(_train(manifest, exp, override), capsys), OVERRIDES[override])
    assert not exp.exists()


@pytest.mark.parametrize("override", list(RANGES))
def test_documented_range_check(override, manifest, tmp_path, capsys):
    """One line, exactly the message, exit 2 (assert_user_error), no experiment folder."""
    exp = tmp_path / "exp"
    line = assert_user_error(run_cli(_train(manifest, exp, override), capsys), RANGES[override])
    assert line == f"asr: error: {RANGES[override]}"
    assert override.split("=")[0] in line
    assert not exp.exists()


@pytest.mark.parametrize("text, message", [
    ("trian:\n  epochs: 2\n", "unknown config key(s): trian (did you mean 'train'?)"),
    ("model:\n  hiden: 8\n", "unknown config key(s) in 'model': hiden (did you mean 'hidden'?)"),
    ("- just\n- a list\n", "config section 'root' must be a mapping, got ['just', 'a list']"),
    (b"model:\n  cell: \xff\n", "c.yaml: not valid UTF-8 (byte 16)"),
])
def test_bad_config_file(text, message, manifest, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    exp = tmp_path / "exp"
    assert_user_error(run_cli(_train(manifest, exp, "--config", cfg), capsys), message)
    assert not exp.exists()


def test_missing_config_file(manifest, tmp_path, capsys):
    exp = tmp_path / "exp"
    assert_user_error(run_cli(_train(manifest, exp, "--config", tmp_path / "nope.yaml"), capsys),
                      f"config file not found: {tmp_path / 'nope.yaml'}")
    assert not exp.exists()


@pytest.mark.parametrize("override, message", [
    ("specaug.freq_width=-1", "bad config value: specaug.freq_width must be >= 0, got -1"),
    ("specaug.time_ratio=1.5", "bad config value: specaug.time_ratio must be in [0, 1], got 1.5"),
])
def test_bad_specaug_value(override, message, manifest, tmp_path, capsys):
    exp = tmp_path / "exp"
    tiny = ["model.hidden=8", "model.layers=1", "features.n_mels=20", "train.epochs=1"]
    assert_user_error(run_cli(_train(manifest, exp, override, *tiny), capsys), message)
    assert not exp.exists()
