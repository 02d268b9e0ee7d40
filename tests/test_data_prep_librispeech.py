"""data_prep.librispeech on a miniature LibriSpeech/<subset>/<spk>/<chapter>/ tree."""

from __future__ import annotations

import hashlib
import tarfile

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep import librispeech
from data_prep.fake import write_librispeech
from data_prep.librispeech import download_librispeech, prepare_librispeech

# subset -> {(spk, chapter): [(utt, text, samples at 16 kHz)]}
TREE = {
    "dev-clean-2": {("84", "121123"): [("0000", "GO DO YOU HEAR", 4000), ("0001", "BUT IN LESS THAN FIVE MINUTES", 8000)],
                    ("1272", "135031"): [("0000", "BECAUSE YOU WERE SLEEPING", 1600)]},
    "train-clean-5": {("19", "198"): [("0001", "NORTHANGER ABBEY", 3200)]},
}


@pytest.fixture
def corpus(tmp_path):
    tree = {subset: {key: [(utt, text, np.zeros(n, dtype=np.int16)) for utt, text, n in utts]
                     for key, utts in chapters.items()} for subset, chapters in TREE.items()}
    return write_librispeech(tmp_path / "dl", tree)


def test_prepare_all_present_subsets(corpus, tmp_path):
    out = prepare_librispeech(corpus, tmp_path / "m")
    assert set(out) == {"dev-clean-2", "train-clean-5"}
    dev = read_manifest(out["dev-clean-2"])
    assert [u.id for u in dev] == ["1272-135031-0000", "84-121123-0000", "84-121123-0001"]
    u = dev[2]
    assert (u.text, u.speaker, u.duration) == ("BUT IN LESS THAN FIVE MINUTES", "84", 0.5)
    assert u.audio_path == str((corpus / "LibriSpeech/dev-clean-2/84/121123/84-121123-0001.flac").resolve())
    assert out["train-clean-5"].name == "librispeech_train-clean-5.jsonl"


def test_prepare_chosen_subset_and_rerun(corpus, tmp_path):
    out = prepare_librispeech(corpus / "LibriSpeech", tmp_path / "m", ["train-clean-5"])
    assert list(out) == ["train-clean-5"] and len(read_manifest(out["train-clean-5"])) == 1
    mtime = out["train-clean-5"].stat().st_mtime_ns
    assert prepare_librispeech(corpus / "LibriSpeech", tmp_path / "m", ["train-clean-5"]) == out
    assert out["train-clean-5"].stat().st_mtime_ns == mtime


def test_errors(corpus, tmp_path):
    with pytest.raises(UserError, match="unknown LibriSpeech subset.*train-clean-1000"):
        prepare_librispeech(corpus, tmp_path / "m", ["train-clean-1000"])
    with pytest.raises(UserError, match="subset folder.*missing.*test-clean"):
        prepare_librispeech(corpus, tmp_path / "m", ["test-clean"])
    (corpus / "LibriSpeech/train-clean-5/19/198/19-198-0001.flac").unlink()
    with pytest.raises(UserError, match=r"19-198.trans.txt:1: audio 19-198-0001.flac is missing"):
        prepare_librispeech(corpus, tmp_path / "m", ["train-clean-5"])


def test_download_from_a_local_mirror(corpus, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "31"
    mirror.mkdir(parents=True)
    archive = mirror / "dev-clean-2.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus / "LibriSpeech" / "dev-clean-2", arcname="LibriSpeech/dev-clean-2")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(librispeech.SUBSETS, "dev-clean-2", (31, "md5", md5))
    root = download_librispeech(tmp_path / "dl2", ["dev-clean-2"], base_url=(tmp_path / "mirror").as_uri())
    assert root == tmp_path / "dl2" / "LibriSpeech"
    out = prepare_librispeech(tmp_path / "dl2", tmp_path / "m")
    assert len(read_manifest(out["dev-clean-2"])) == 3


def test_checksum_table_is_complete():
    for subset, (resource, algo, digest) in librispeech.SUBSETS.items():
        assert resource == (31 if subset in librispeech.MINI else 12)
        assert len(digest) == {"sha256": 64, "md5": 32}[algo]
