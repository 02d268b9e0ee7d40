"""data_prep.yesno on a miniature waves_yesno folder (and a file:// download of it)."""

from __future__ import annotations

import hashlib
import tarfile

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.fake import write_yesno
from data_prep.yesno import download_yesno, prepare_yesno

NAMES = ["0_0_0_0_1_1_1_1", "0_0_1_0_0_0_1_0", "0_1_0_0_1_0_1_1", "1_0_0_0_0_0_0_1", "1_1_0_1_0_1_1_0",
         "1_1_1_1_1_1_1_1"]


@pytest.fixture
def corpus(tmp_path):
    # written out of order: prepare must sort
    d = write_yesno(tmp_path, {name: np.zeros(8000 + 800 * i, dtype=np.int16)
                               for i, name in enumerate(reversed(NAMES))})
    (d / "README").write_text("not audio")
    return d


def test_prepare_yesno_splits_texts_durations(corpus, tmp_path):
    out = prepare_yesno(corpus, tmp_path / "m")
    train, test = read_manifest(out["train"]), read_manifest(out["test"])
    assert [u.id for u in train] == NAMES[0::2] and [u.id for u in test] == NAMES[1::2]
    u = test[1]  # 1_0_0_0_0_0_0_1, the 3rd written file: 8000 + 800*2 samples at 8 kHz
    assert u.text == "YES NO NO NO NO NO NO YES" and u.speaker == "yesno"
    assert u.duration == pytest.approx(1.2)
    assert u.audio_path == str(corpus / "1_0_0_0_0_0_0_1.wav")


def test_prepare_yesno_rerun_does_nothing(corpus, tmp_path):
    out = prepare_yesno(corpus.parent, tmp_path / "m")  # the parent folder works too
    mtimes = {p: p.stat().st_mtime_ns for p in out.values()}
    assert prepare_yesno(corpus, tmp_path / "m") == out
    assert {p: p.stat().st_mtime_ns for p in out.values()} == mtimes


def test_prepare_yesno_errors(tmp_path):
    with pytest.raises(UserError, match="yesno corpus folder not found"):
        prepare_yesno(tmp_path / "nope", tmp_path / "m")
    with pytest.raises(UserError, match="no yesno files"):
        prepare_yesno(tmp_path, tmp_path / "m")


def test_download_yesno_from_a_local_mirror(corpus, tmp_path):
    archive = tmp_path / "mirror" / "waves_yesno.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname="waves_yesno")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    got = download_yesno(tmp_path / "dl", url=archive.as_uri(), sha256=sha)
    assert got == tmp_path / "dl" / "waves_yesno" and len(list(got.glob("*.wav"))) == 6
    assert len(read_manifest(prepare_yesno(got, tmp_path / "m")["train"])) == 3
