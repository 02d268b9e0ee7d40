"""data_prep.fsdd on a miniature recordings/ folder, plus a check against the real copy if present."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.fake import write_fsdd
from data_prep.fsdd import prepare_fsdd

SPEAKERS = ("jackson", "theo", "yweweler")
ROOT = Path(__file__).resolve().parents[1]
# The real copy sits beside the checkout (../shared), as the AN4 corpus does for tests/test_an4_e2e.py;
# a missing copy fails these tests rather than skipping them.
REAL = ROOT.parent / "shared" / "data" / "fsdd"


@pytest.fixture
def corpus(tmp_path):
    # take index 0-4: official test, 5-6: train
    files = {(digit, spk, index): np.zeros(800 + 80 * index, dtype=np.int16)
             for digit in (0, 7) for spk in SPEAKERS for index in range(7)}
    d = write_fsdd(tmp_path / "fsdd", files)
    (d / "recordings" / "notes.wav.txt").write_text("ignored")
    return d


def test_official_split(corpus, tmp_path):
    out = prepare_fsdd(corpus, tmp_path / "m")
    train, test = read_manifest(out["train"]), read_manifest(out["test"])
    assert len(train) == 2 * 3 * 2 and len(test) == 2 * 3 * 5
    assert {u.id.rsplit("_", 1)[1] for u in train} == {"5", "6"}
    u = next(u for u in train if u.id == "7_theo_6")
    assert (u.text, u.speaker) == ("SEVEN", "theo")
    assert u.duration == pytest.approx((800 + 80 * 6) / 8000)
    assert u.audio_path == str((corpus / "recordings" / "7_theo_6.wav").resolve())
    assert {u.text for u in test} == {"ZERO", "SEVEN"}


def test_holdout_speaker(corpus, tmp_path):
    out = prepare_fsdd(corpus / "recordings", tmp_path / "m", holdout_speaker="theo")
    train, test = read_manifest(out["train"]), read_manifest(out["test"])
    assert {u.speaker for u in test} == {"theo"} and len(test) == 14
    assert {u.speaker for u in train} == {"jackson", "yweweler"} and len(train) == 28


def test_leave_one_speaker_out_folds(corpus, tmp_path):
    out = prepare_fsdd(corpus, tmp_path / "m", split="loso")
    assert sorted(out) == sorted(f"loso_{s}_{p}" for s in SPEAKERS for p in ("train", "test"))
    for spk in SPEAKERS:
        test = read_manifest(out[f"loso_{spk}_test"])
        train = read_manifest(out[f"loso_{spk}_train"])
        assert {u.speaker for u in test} == {spk} and spk not in {u.speaker for u in train}
        assert len(test) + len(train) == 42


def test_loso_dev_sets_hold_the_training_speakers_dev_takes(corpus, tmp_path):
    """``with_dev``: in each fold the held-out speaker stays the test set; the training speakers'
    takes 0-4 are the dev set and their takes 5+ ``train5`` (as the recipe's stage 0 needs)."""
    out = prepare_fsdd(corpus, tmp_path / "m", split="loso", with_dev=True)
    assert sorted(out) == sorted(f"loso_{s}_{p}" for s in SPEAKERS for p in ("train", "train5", "dev", "test"))
    for spk in SPEAKERS:
        fold = {p: read_manifest(out[f"loso_{spk}_{p}"]) for p in ("train", "train5", "dev", "test")}
        others = set(SPEAKERS) - {spk}
        assert {u.id for u in fold["dev"]} == {f"{d}_{s}_{i}" for d in (0, 7) for s in others for i in range(5)}
        assert {u.id for u in fold["train5"]} == {f"{d}_{s}_{i}" for d in (0, 7) for s in others for i in (5, 6)}
        assert {u.speaker for u in fold["test"]} == {spk} and len(fold["test"]) == 14
        # train5 and dev split train, each in train's order (the manifests are sorted by id)
        ids = [u.id for u in fold["train"]]
        for part in ("train5", "dev"):
            assert [u.id for u in fold[part]] == [i for i in ids if i in {u.id for u in fold[part]}]
        assert len(fold["train5"]) + len(fold["dev"]) == len(ids)
    one = prepare_fsdd(corpus, tmp_path / "s", holdout_speaker="theo", with_dev=True)
    assert sorted(one) == ["dev", "test", "train", "train5"]
    assert {u.speaker for u in read_manifest(one["dev"])} == {"jackson", "yweweler"}
    with pytest.raises(UserError, match="dev sets are for the speaker and loso splits"):
        prepare_fsdd(corpus, tmp_path / "o", with_dev=True)


def test_rerun_does_nothing_and_new_options_redo(corpus, tmp_path):
    out = prepare_fsdd(corpus, tmp_path / "m")
    mtimes = {p: p.stat().st_mtime_ns for p in out.values()}
    assert prepare_fsdd(corpus, tmp_path / "m") == out
    assert {p: p.stat().st_mtime_ns for p in out.values()} == mtimes
    other = prepare_fsdd(corpus, tmp_path / "m", holdout_speaker="jackson")
    assert {u.speaker for u in read_manifest(other["test"])} == {"jackson"}
    out["train"].write_text("")  # edited/truncated manifest: redone
    prepare_fsdd(corpus, tmp_path / "m", holdout_speaker="jackson")
    assert len(read_manifest(out["train"])) == 28


def test_errors(corpus, tmp_path):
    with pytest.raises(UserError, match="speaker 'nobody' not in .*speakers are jackson, theo, yweweler"):
        prepare_fsdd(corpus, tmp_path / "m", holdout_speaker="nobody")
    with pytest.raises(UserError, match="unknown FSDD split 'random'"):
        prepare_fsdd(corpus, tmp_path / "m", split="random")
    with pytest.raises(UserError, match="no FSDD recordings"):
        prepare_fsdd(tmp_path, tmp_path / "m2")


def test_real_copy_loso_dev_sets(tmp_path):
    assert (REAL / "transcripts.tsv").is_file(), f"real FSDD copy missing at {REAL}"
    out = prepare_fsdd(REAL, tmp_path, split="loso", with_dev=True)
    with open(REAL / "transcripts.tsv", newline="") as f:
        ref = {r["utt_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    speakers = {r["speaker"] for r in ref.values()}
    assert len(out) == 4 * len(speakers)
    for spk in speakers:
        dev = read_manifest(out[f"loso_{spk}_dev"])
        assert {u.id for u in dev} == {i for i, r in ref.items()
                                       if r["speaker"] != spk and r["official_split"] == "test"}
        train5 = read_manifest(out[f"loso_{spk}_train5"])
        assert {u.id for u in train5} == {i for i, r in ref.items()
                                          if r["speaker"] != spk and r["official_split"] == "train"}


def test_real_copy_matches_its_transcripts(tmp_path):
    assert (REAL / "transcripts.tsv").is_file(), f"real FSDD copy missing at {REAL}"
    out = prepare_fsdd(REAL, tmp_path)
    with open(REAL / "transcripts.tsv", newline="") as f:
        ref = {r["utt_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    for split in ("train", "test"):
        utts = read_manifest(out[split])
        assert len(utts) == sum(r["official_split"] == split for r in ref.values())
        for u in utts:
            r = ref[u.id]
            assert (u.text, u.speaker, r["official_split"]) == (r["text"], r["speaker"], split)
            assert u.duration == pytest.approx(float(r["duration_s"]), abs=6e-4)
