"""data_prep.commonvoice on a miniature language folder (TSVs + MP3 clips)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.commonvoice import prepare_commonvoice
from data_prep.fake import write_commonvoice

ROWS = {
    "train": [("c0ffee", "common_voice_cy_1.mp3", 'He said "hello" to me.', 0.5),
              ("c0ffee", "common_voice_cy_2.mp3", "Bore  da,   Cymru!", 0.75)],
    "dev": [("beef01", "common_voice_cy_3.mp3", "It's fine", 1.0)],
    "test": [("d00d02", "common_voice_cy_4.mp3", "Diolch", 0.25)],
}


@pytest.fixture
def corpus(tmp_path):
    rows = {split: [(client, clip, sentence, np.zeros(int(48000 * seconds), dtype=np.float32))
                    for client, clip, sentence, seconds in items] for split, items in ROWS.items()}
    return write_commonvoice(tmp_path / "cv-corpus-17.0" / "cy", rows)


def test_prepare_commonvoice(corpus, tmp_path):
    out = prepare_commonvoice(corpus.parent, tmp_path / "m", lang="cy")
    assert set(out) == {"train", "dev", "test"}
    train = read_manifest(out["train"])
    assert [u.id for u in train] == ["common_voice_cy_1", "common_voice_cy_2"]
    assert [u.text for u in train] == ['He said "hello" to me.', "Bore da, Cymru!"]
    assert {u.speaker for u in train} == {"c0ffee"}
    assert train[1].duration == pytest.approx(0.75, abs=0.05)
    assert train[1].audio_path == str((corpus / "clips" / "common_voice_cy_2.mp3").resolve())
    assert read_manifest(out["dev"])[0].text == "It's fine"


def test_rerun_does_nothing_and_split_choice(corpus, tmp_path):
    out = prepare_commonvoice(corpus, tmp_path / "m", splits=["dev"])
    assert list(out) == ["dev"]
    mtime = out["dev"].stat().st_mtime_ns
    assert prepare_commonvoice(corpus, tmp_path / "m", splits=["dev"]) == out
    assert out["dev"].stat().st_mtime_ns == mtime


def test_errors(corpus, tmp_path):
    with pytest.raises(UserError, match="split file.*validated.tsv"):
        prepare_commonvoice(corpus, tmp_path / "m", splits=["validated"])
    (corpus / "clips" / "common_voice_cy_3.mp3").unlink()
    with pytest.raises(UserError, match=r"dev.tsv:2: clip .*common_voice_cy_3.mp3 is missing"):
        prepare_commonvoice(corpus, tmp_path / "m")
    (corpus / "test.tsv").write_text("path\tsentence\nx.mp3\thi\n")
    with pytest.raises(UserError, match="test.tsv: missing column.*client_id"):
        prepare_commonvoice(corpus, tmp_path / "m", splits=["test"])
