"""data_prep.tedlium on a miniature TEDLIUM_release-3/legacy tree (SPHERE talks + STM)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.fake import write_tedlium
from data_prep.tedlium import prepare_tedlium

STM = {
    "train": {"AaronHuey_2010X": (30.0, [
        "AaronHuey_2010X 1 AaronHuey_2010X 0.00 2.50 <o,f0,male> ignore_time_segment_in_scoring",
        "AaronHuey_2010X 1 AaronHuey_2010X 2.50 7.25 <o,f0,male> i 'm here today to show <unk> photographs",
        "AaronHuey_2010X 1 AaronHuey_2010X 7.25 12.00 <o,f0,male> it 's the lakota",
        "AaronHuey_2010X 1 AaronHuey_2010X 12.00 13.00 <o,f0,male> <unk>",
        "AaronHuey_2010X 1 AaronHuey_2010X 29.00 31.50 <o,f0,male> the end",
    ])},
    "dev": {"BillGates_2010": (10.0, [
        ";; a comment line",
        "BillGates_2010 1 BillGates_2010 1.20 4.80 <o,f0,male> energy and climate",
    ])},
    "test": {"AimeeMullins_2009P": (5.0, [
        "AimeeMullins_2009P 1 AimeeMullins_2009P 0.50 3.00 <o,f0,female> i 'd like to share",
    ])},
}


@pytest.fixture
def corpus(tmp_path):
    talks = {split: {talk: (np.zeros(int(seconds * 1000), dtype=np.int16), lines)
                     for talk, (seconds, lines) in items.items()} for split, items in STM.items()}
    return write_tedlium(tmp_path, talks, sr=1000)


def test_prepare_tedlium_segments(corpus, tmp_path):
    out = prepare_tedlium(corpus, tmp_path / "m")
    train = read_manifest(out["train"])
    assert [u.id for u in train] == ["AaronHuey_2010X-0000250-0000725", "AaronHuey_2010X-0000725-0001200",
                                     "AaronHuey_2010X-0002900-0003000"]
    u = train[0]
    assert u.text == "i'm here today to show photographs" and u.speaker == "AaronHuey_2010X"
    assert (u.extra["offset"], u.duration) == (2.5, 4.75)
    assert u.audio_path == str((corpus / "legacy/train/sph/AaronHuey_2010X.sph").resolve())
    assert train[1].text == "it's the lakota"
    assert train[2].duration == pytest.approx(1.0)  # end clipped to the 30 s talk
    dev = read_manifest(out["dev"])
    assert [(u.id, u.text, u.extra["offset"]) for u in dev] == [("BillGates_2010-0000120-0000480", "energy and climate", 1.2)]
    assert read_manifest(out["test"])[0].text == "i'd like to share"


def test_unk_replacement_and_no_join(corpus, tmp_path):
    out = prepare_tedlium(corpus / "legacy", tmp_path / "m", splits=["train"], unk="<UNK>", join_suffixes=False)
    texts = [u.text for u in read_manifest(out["train"])]
    assert texts[0] == "i 'm here today to show <UNK> photographs" and "<UNK>" in texts


def test_rerun_does_nothing(corpus, tmp_path):
    out = prepare_tedlium(corpus.parent, tmp_path / "m")
    mtimes = {p: p.stat().st_mtime_ns for p in out.values()}
    assert prepare_tedlium(corpus.parent, tmp_path / "m") == out
    assert {p: p.stat().st_mtime_ns for p in out.values()} == mtimes


def test_errors(corpus, tmp_path):
    with pytest.raises(UserError, match="unknown TED-LIUM split.*valid"):
        prepare_tedlium(corpus, tmp_path / "m", splits=["valid"])
    (corpus / "legacy/dev/sph/BillGates_2010.sph").unlink()
    with pytest.raises(UserError, match="BillGates_2010.stm: audio .*BillGates_2010.sph is missing"):
        prepare_tedlium(corpus, tmp_path / "m")
    with pytest.raises(UserError, match="no TED-LIUM 3 legacy"):
        prepare_tedlium(corpus / "legacy/train/sph", tmp_path / "m2")
