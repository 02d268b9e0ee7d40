"""data_prep.nemo: NeMo JSONL manifests <-> ours."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.nemo import manifest_to_nemo, nemo_to_utterances, prepare_nemo


@pytest.fixture
def nemo(tmp_path):
    (tmp_path / "wavs").mkdir()
    sf.write(tmp_path / "wavs" / "a.wav", np.zeros(16000, dtype=np.int16), 16000)
    sf.write(tmp_path / "wavs" / "b.wav", np.zeros(8000, dtype=np.int16), 16000)
    lines = [
        {"audio_filepath": "wavs/a.wav", "duration": 1.0, "text": "hello world"},
        {"audio_filepath": str(tmp_path / "wavs" / "a.wav"), "duration": 0.4, "offset": 0.5, "text": "world"},
        {"audio_filepath": "wavs/b.wav", "text": "no duration", "speaker": "spk7", "lang": "en"},
        {"audio_filepath": "wavs/b.wav", "duration": 0.5, "text": "same file again"},
    ]
    p = tmp_path / "train_manifest.json"
    p.write_text("".join(json.dumps(d) + "\n" for d in lines))
    return p


def test_import(nemo, tmp_path):
    out = prepare_nemo(nemo, tmp_path / "m")
    assert list(out) == ["train_manifest"]
    utts = read_manifest(out["train_manifest"])
    assert [u.id for u in utts] == ["a", "a-0000050", "b", "b-2"]
    assert [u.duration for u in utts] == [1.0, 0.4, 0.5, 0.5]
    assert utts[1].extra == {"offset": 0.5}
    assert (utts[2].speaker, utts[2].extra) == ("spk7", {"lang": "en"})
    assert utts[0].speaker == "unknown" and utts[0].audio_path == str(tmp_path / "wavs" / "a.wav")
    mtime = out["train_manifest"].stat().st_mtime_ns
    assert prepare_nemo(nemo, tmp_path / "m") == out
    assert out["train_manifest"].stat().st_mtime_ns == mtime


def test_round_trip(nemo, tmp_path):
    ours = prepare_nemo(nemo, tmp_path / "m", name="train")["train"]
    back = manifest_to_nemo(ours, tmp_path / "nemo_out.json")
    rows = [json.loads(line) for line in back.read_text().splitlines()]
    assert rows[1] == {"audio_filepath": str(tmp_path / "wavs" / "a.wav"), "duration": 0.4, "text": "world",
                       "offset": 0.5, "speaker": "unknown", "id": "a-0000050"}
    again = nemo_to_utterances(back)
    assert again == read_manifest(ours)


def test_errors(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"audio_filepath": "missing.wav", "duration": 1, "text": "x"}\n')
    with pytest.raises(UserError, match=r"bad.json:1: audio file not found: .*missing.wav"):
        nemo_to_utterances(p)
    p.write_text("{not json\n")
    with pytest.raises(UserError, match=r"bad.json:1: not valid JSON"):
        nemo_to_utterances(p)
    with pytest.raises(UserError, match="NeMo manifest not found"):
        prepare_nemo(tmp_path / "none.json", tmp_path / "m")
