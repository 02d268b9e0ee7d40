"""Training on a corpus with 5% corrupt audio files and a few unusable transcripts completes,
lists exactly the corrupt files in EXP/skipped_utterances.tsv, counts the filtered utterances in
its log, and reaches the dev CER of a run on the clean part alone.

The tone corpus (tests/conftest.py) is learnt by the small config below in ~6 s a run on one
thread; over train.seed 1-6 both runs ended at 0-2.7% dev CER (20 dev utterances, ~75
characters: one character is 1.3%), never more than 2.7 points apart.
"""

from __future__ import annotations

import ast
import csv
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr.data
from asr.checkpoint import safe_load
from asr.config import DataConfig
from asr.data import filter_utterances
from asr.features import FeatureConfig
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.tokenizer import CharTokenizer
from conftest import make_tone_corpus

from .helpers import run_cli, sparse_wav, truncate_wav

LEARNS = ["features.hop_ms=20", "features.n_mels=23", "model.hidden=48", "model.layers=1",
          "model.subsample=1", "model.dropout=0.0", "data.speed_perturb=[1.0]",
          "specaug.freq_masks=0", "specaug.time_masks=0", "train.epochs=25", "train.lr=1e-2",
          "train.warmup_steps=10", "data.max_batch=8", "data.max_frames=100000",
          "train.average_best=1", "train.keep_checkpoints=1", "train.threads=1",
          "train.select_metric=cer", "data.max_duration=20"]
CER_TOLERANCE = 0.04  # absolute (3 characters): the runs differ in batching, not usable data
CER_CEILING = 0.05  # both runs must have learnt the task


def _corrupt(utts: list[Utterance], d: Path) -> dict[str, str]:
    """Damage 5 of 100 files in 5 different ways; returns id -> how."""
    ways = {7: "truncated", 23: "zero_bytes", 41: "garbage", 62: "missing", 88: "nan"}
    for i, how in ways.items():
        p = Path(utts[i].audio_path)
        if how == "truncated":
            truncate_wav(p, p, keep=0.3)
        elif how == "zero_bytes":
            p.write_bytes(b"")
        elif how == "garbage":
            p.write_bytes(np.random.default_rng(i).integers(0, 256, 3000, np.uint8).tobytes())
        elif how == "missing":
            p.unlink()
        else:
            y, sr = sf.read(str(p), dtype="float32")
            y[len(y) // 2] = np.nan
            sf.write(str(p), y, sr, subtype="FLOAT")
    return {utts[i].id: how for i, how in ways.items()}


def _unusable_texts(utts: list[Utterance], d: Path) -> list[Utterance]:
    """Readable audio that training must filter (and count), not list as skipped."""
    short = d / "short.wav"
    sf.write(str(short), np.zeros(1, np.float32), 16000)  # one sample
    tone = utts[0]
    ctc = d / "ctc.wav"
    y, sr = sf.read(tone.audio_path, dtype="float32")
    sf.write(str(ctc), y[: int(0.3 * sr)], sr)
    long = sparse_wav(d / "two_hours.wav", 7200.0, 16000)
    return [Utterance("x-empty", tone.audio_path, tone.duration, "", "spk0"),
            Utterance("x-punct", tone.audio_path, tone.duration, "?! ...", "spk0"),
            Utterance("x-ctc", str(ctc), 0.3, "ABCABCABCABCABCABCABCABC", "spk0"),
            Utterance("x-long", str(long), 7200.0, "AB", "spk0"),
            Utterance("x-short", str(short), 1 / 16000, "A", "spk0")]


def _train(train: Path, dev: Path, exp: Path, capsys) -> float:
    rc, out, err = run_cli(["train", "--train", train, "--dev", dev, "--exp-dir", exp,
                            "--device", "cpu", *LEARNS], capsys)
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    return safe_load(exp / "model.pt")["dev"]["dev_cer"]


def test_corrupt_files_skipped_listed_and_quality_kept(tmp_path, capsys, monkeypatch):
    full = make_tone_corpus(tmp_path, 100, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, 20, seed=2, name="dev")
    utts = read_manifest(full)
    clean_dir = tmp_path / "clean_audio"  # the clean run keeps its own intact copies
    shutil.copytree(tmp_path / "train", clean_dir)
    corrupted = _corrupt(utts, tmp_path)
    extra = _unusable_texts(utts, tmp_path)
    write_manifest(tmp_path / "corrupt.jsonl", utts + extra)
    clean = [Utterance(u.id, str(clean_dir / Path(u.audio_path).name), u.duration, u.text,
                       u.speaker) for u in utts if u.id not in corrupted]
    write_manifest(tmp_path / "clean.jsonl", clean)
    assert len(corrupted) / len(utts) == 0.05

    read = []
    real_load = asr.data.load_audio

    def spy(path, *a, **k):
        read.append(str(path))
        return real_load(path, *a, **k)

    monkeypatch.setattr(asr.data, "load_audio", spy)
    cer_bad = _train(tmp_path / "corrupt.jsonl", dev, tmp_path / "exp_corrupt", capsys)
    cer_clean = _train(tmp_path / "clean.jsonl", dev, tmp_path / "exp_clean", capsys)

    exp = tmp_path / "exp_corrupt"
    with open(exp / "skipped_utterances.tsv", encoding="utf-8") as f:
        rows = {r["id"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert set(rows) == set(corrupted), "exactly the corrupt files are listed"
    by_how = {how: rows[uid] for uid, how in corrupted.items()}
    assert "not found" in by_how["missing"]["reason"]
    assert "truncated" in by_how["truncated"]["reason"]
    assert "NaN or Inf" in by_how["nan"]["reason"]
    assert all(r["audio_path"] for r in rows.values())

    # filtered transcripts/durations are counted in the log, not listed
    log = (exp / "train.log").read_text()
    m = re.search(r"train: kept (\d+) of (\d+) utterances; dropped (\{.*\})", log)
    assert m, log[-2000:]
    assert ast.literal_eval(m.group(3)) == {"too_long": 1, "too_short": 1,
                                            "ctc_infeasible": 1, "empty": 2}
    for uid in corrupted:
        assert f"skipping utterance {uid}:" in log
    # the spy sees training's reads (else the check below proves nothing): every usable file
    # of both runs was read through it, and the two-hour file, dropped by duration, never was
    assert {u.audio_path for u in utts if u.id not in corrupted} <= set(read)
    assert {u.audio_path for u in clean} <= set(read)
    assert str(tmp_path / "two_hours.wav") not in read

    print(f"dev CER: clean run {cer_clean:.4f}, corrupt run {cer_bad:.4f}")
    assert cer_clean <= CER_CEILING and cer_bad <= CER_CEILING, (cer_clean, cer_bad)
    assert abs(cer_bad - cer_clean) <= CER_TOLERANCE, (cer_clean, cer_bad)


def test_untokenisable_transcripts_are_counted(caplog):
    """A model's vocabulary is fixed (resumed runs, phone lexicons, BPE <unk>): transcripts with
    characters outside it are dropped and counted, the way training filters its data."""
    tok = CharTokenizer.build(["AB C"])
    utts = [Utterance("ok", "a.wav", 1.0, "AB C", "s"), Utterance("oov", "b.wav", 1.0, "ABZ", "s"),
            Utterance("oov2", "c.wav", 1.0, "ÅB", "s")]
    with caplog.at_level(logging.INFO, logger="asr.data"):
        kept = filter_utterances(utts, tok.encode, FeatureConfig(), DataConfig(), 2, "train")
    assert [e.utt.id for e in kept] == ["ok"]
    assert "train: kept 1 of 3 utterances; dropped {'untokenisable': 2}" in caplog.text


def test_bad_dev_audio_is_left_out_not_fatal(tmp_path, capsys):
    train = make_tone_corpus(tmp_path, 12, seed=3, name="train")
    dev = make_tone_corpus(tmp_path, 4, seed=4, name="dev")
    utts = read_manifest(dev)
    truncate_wav(Path(utts[1].audio_path), Path(utts[1].audio_path), keep=0.3)
    y, sr = sf.read(utts[2].audio_path, dtype="float32")
    y[10] = np.inf
    sf.write(utts[2].audio_path, y, sr, subtype="FLOAT")
    exp = tmp_path / "exp"
    rc, _, err = run_cli(["train", "--train", train, "--dev", dev, "--exp-dir", exp, "--device",
                          "cpu", "model.hidden=8", "model.layers=1", "features.n_mels=20",
                          "train.epochs=1", "data.speed_perturb=[1.0]"], capsys)
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    log = (exp / "train.log").read_text()
    assert (f"dev: leaving out 2 utterances with unusable audio: {utts[1].id}, {utts[2].id}"
            in log)
