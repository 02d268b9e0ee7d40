"""data_prep.timit on a miniature TIMIT tree (NIST SPHERE audio), upper- and lower-case layouts."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.fake import write_timit
from data_prep.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS, PHONE_MAP, fold_phones, prepare_timit

PHN = ["h#", "sh", "ix", "hv", "eh", "dcl", "jh", "ih", "q", "ax-h", "pau", "zh", "h#"]
FOLDED = {
    39: "sil sh ih hh eh sil jh ih ah sil sh sil",
    48: "sil sh ix hh eh vcl jh ih ax sil zh sil",
    61: "h# sh ix hv eh dcl jh ih ax-h pau zh h#",
}
# part -> dialect region -> speaker -> sentences (SA ones must be dropped)
LAYOUT = {
    "TRAIN": {"DR1": {"FCJF0": ["SA1", "SI648", "SX37"]}, "DR2": {"MKLS0": ["SA2", "SI1437"]}},
    "TEST": {"DR1": {"MDAB0": ["SA1", "SI1039", "SX139"], "FAKS0": ["SI943"], "MZZZ0": ["SI1"]},
             "DR7": {"FDHC0": ["SX209"]}},
}


def _build(root, upper: bool):
    layout = {part: {dr: {spk: [(sent, PHN, "She had your dark suit.", np.zeros(16000 + 1600 * i, dtype=np.int16))
                                for i, sent in enumerate(sents)]
                          for spk, sents in speakers.items()}
                     for dr, speakers in regions.items()}
              for part, regions in LAYOUT.items()}
    write_timit(root, layout, upper=upper)


@pytest.mark.parametrize("upper", [True, False])
def test_prepare_timit_splits_and_folding(tmp_path, upper):
    _build(tmp_path / ("TIMIT" if upper else "timit"), upper)
    out = prepare_timit(tmp_path, tmp_path / "m")
    train, dev, test = (read_manifest(out[s]) for s in ("train", "dev", "test"))
    assert [u.id for u in train] == ["fcjf0_si648", "fcjf0_sx37", "mkls0_si1437"]
    assert [u.id for u in dev] == ["faks0_si943"]
    assert [u.id for u in test] == ["fdhc0_sx209", "mdab0_si1039", "mdab0_sx139"]
    u = train[1]
    assert (u.speaker, u.text, u.extra["words"]) == ("fcjf0", FOLDED[39], "She had your dark suit.")
    assert u.duration == pytest.approx((16000 + 1600 * 2) / 16000)
    assert sf.info(u.audio_path).format == "NIST"


@pytest.mark.parametrize("phones", [48, 61])
def test_other_phone_sets(tmp_path, phones):
    _build(tmp_path, True)
    out = prepare_timit(tmp_path, tmp_path / "m", phones=phones)
    assert {u.text for u in read_manifest(out["train"])} == {FOLDED[phones]}


def test_rerun_does_nothing(tmp_path):
    _build(tmp_path / "TIMIT", True)
    out = prepare_timit(tmp_path / "TIMIT", tmp_path / "m")
    mtimes = {p: p.stat().st_mtime_ns for p in out.values()}
    assert prepare_timit(tmp_path / "TIMIT", tmp_path / "m") == out
    assert {p: p.stat().st_mtime_ns for p in out.values()} == mtimes


def test_phone_tables():
    assert len(PHONE_MAP) == 60  # + q, which is removed
    assert len({v[0] for v in PHONE_MAP.values()}) == 48
    assert len({v[1] for v in PHONE_MAP.values()}) == 39
    assert len(set(CORE_TEST_SPEAKERS)) == 24 and len(set(DEV_SPEAKERS)) == 50
    assert not set(CORE_TEST_SPEAKERS) & set(DEV_SPEAKERS)
    assert sum(s[0] == "f" for s in CORE_TEST_SPEAKERS) == 8


def test_errors(tmp_path):
    with pytest.raises(UserError, match="no TIMIT TRAIN/ and TEST/"):
        prepare_timit(tmp_path, tmp_path / "m")
    with pytest.raises(UserError, match="x.PHN: unknown TIMIT phone 'zz'"):
        fold_phones(["h#", "zz"], 39, "x.PHN")
    _build(tmp_path, True)
    with pytest.raises(UserError, match="phone set must be 61, 48 or 39"):
        prepare_timit(tmp_path, tmp_path / "m", phones=40)
    (tmp_path / "TRAIN/DR1/FCJF0/SX37.PHN").unlink()
    with pytest.raises(UserError, match="phone transcript missing for .*SX37.WAV"):
        prepare_timit(tmp_path, tmp_path / "m")
