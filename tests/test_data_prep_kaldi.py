"""data_prep.kaldi: import Kaldi data folders (with/without segments), refuse pipes, export back."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.errors import UserError
from asr.manifest import Utterance, read_manifest, write_manifest
from data_prep.kaldi import kaldi_to_utterances, manifest_to_kaldi, prepare_kaldi


@pytest.fixture
def audio(tmp_path):
    a = tmp_path / "audio"
    a.mkdir()
    sf.write(a / "rec1.wav", np.zeros(16000, dtype=np.int16), 16000)  # 1.0 s
    sf.write(a / "rec2.flac", np.zeros(24000, dtype=np.int16), 16000)  # 1.5 s
    return a


def _data_dir(d, files):
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_import_plain_and_relative_paths(audio, tmp_path):
    d = _data_dir(tmp_path / "data" / "train", {
        "wav.scp": f"spkA-u1 {audio}/rec1.wav\nspkB-u2 audio/rec2.flac\n",
        "text": "spkA-u1 HELLO WORLD\nspkB-u2 \n",
        "utt2spk": "spkA-u1 spkA\nspkB-u2 spkB\n",
    })
    out = prepare_kaldi(d, tmp_path / "m", audio_root=tmp_path)
    assert list(out) == ["train"] and out["train"].name == "kaldi_train.jsonl"
    utts = read_manifest(out["train"])
    assert [(u.id, u.text, u.speaker, u.duration) for u in utts] == [
        ("spkA-u1", "HELLO WORLD", "spkA", 1.0), ("spkB-u2", "", "spkB", 1.5)]
    assert utts[1].audio_path == str(audio / "rec2.flac")
    mtime = out["train"].stat().st_mtime_ns
    assert prepare_kaldi(d, tmp_path / "m", audio_root=tmp_path) == out
    assert out["train"].stat().st_mtime_ns == mtime


def test_import_segments(audio, tmp_path):
    d = _data_dir(tmp_path / "dev", {
        "wav.scp": f"r1 {audio}/rec1.wav\nr2 {audio}/rec2.flac\n",
        "segments": "s-a r1 0.10 0.60\ns-b r2 0.50 -1\n",
        "text": "s-a YES\ns-b NO\n",
        "utt2spk": "s-a s\ns-b s\n",
    })
    utts = kaldi_to_utterances(d)
    assert [(u.id, u.duration, u.extra["offset"]) for u in utts] == [("s-a", 0.5, 0.1), ("s-b", 1.0, 0.5)]


@pytest.mark.parametrize("entry", ["sph2pipe -f wav /x/a.sph |", "/x/feats.ark:1234", "-"])
def test_piped_and_ark_entries_are_refused(tmp_path, entry):
    marker = tmp_path / "ran"
    d = _data_dir(tmp_path / "d", {"wav.scp": f"u1 {entry}\nu2 touch {marker} |\n", "text": "u1 A\nu2 B\n",
                                    "utt2spk": "u1 s\nu2 s\n"})
    with pytest.raises(UserError, match=r"wav.scp \(u1\): .*not supported"):
        kaldi_to_utterances(d)
    assert not marker.exists()


def test_import_errors(audio, tmp_path):
    d = _data_dir(tmp_path / "d", {"wav.scp": f"u1 {audio}/rec1.wav\n", "text": "u1 A\n"})
    with pytest.raises(UserError, match="has no 'utt2spk'"):
        kaldi_to_utterances(d)
    _data_dir(d, {"utt2spk": "u2 s\n"})
    with pytest.raises(UserError, match="'u1' is missing from utt2spk"):
        kaldi_to_utterances(d)
    _data_dir(d, {"wav.scp": f"u1 {audio}/nope.wav\n", "utt2spk": "u1 s\n"})
    with pytest.raises(UserError, match="audio file not found: .*nope.wav"):
        kaldi_to_utterances(d)


def test_export_and_reimport_round_trip(audio, tmp_path):
    utts = [
        Utterance("s1-a", str(audio / "rec2.flac"), 0.5, "FIRST PART", "s1", {"offset": 0.25}),
        Utterance("s1-b", str(audio / "rec2.flac"), 0.5, "SECOND PART", "s1", {"offset": 1.0}),
        Utterance("s2-c", str(audio / "rec1.wav"), 1.0, "WHOLE FILE", "s2"),
    ]
    write_manifest(tmp_path / "m.jsonl", utts)
    d = manifest_to_kaldi(tmp_path / "m.jsonl", tmp_path / "kaldi")
    assert (d / "spk2utt").read_text() == "s1 s1-a s1-b\ns2 s2-c\n"
    assert (d / "segments").read_text() == "s1-a rec2 0.250 0.750\ns1-b rec2 1.000 1.500\ns2-c rec1 0.000 1.000\n"
    assert (d / "wav.scp").read_text() == f"rec1 {audio}/rec1.wav\nrec2 {audio}/rec2.flac\n"
    back = kaldi_to_utterances(d)
    assert [(u.id, u.text, u.speaker, u.duration, u.extra.get("offset")) for u in back] == [
        ("s1-a", "FIRST PART", "s1", 0.5, 0.25), ("s1-b", "SECOND PART", "s1", 0.5, 1.0),
        ("s2-c", "WHOLE FILE", "s2", 1.0, 0.0)]


def test_export_without_segments(audio, tmp_path):
    write_manifest(tmp_path / "m.jsonl", [Utterance("u1", str(audio / "rec1.wav"), 1.0, "A B", "s")])
    d = manifest_to_kaldi(tmp_path / "m.jsonl", tmp_path / "kaldi")
    assert not (d / "segments").exists()
    assert (d / "wav.scp").read_text() == f"u1 {audio}/rec1.wav\n"
    assert (d / "text").read_text() == "u1 A B\n" and (d / "utt2dur").read_text() == "u1 1.000\n"
    write_manifest(tmp_path / "bad.jsonl", [Utterance("u 1", str(audio / "rec1.wav"), 1.0, "A", "s")])
    with pytest.raises(UserError, match="utterance id 'u 1' is empty or contains whitespace"):
        manifest_to_kaldi(tmp_path / "bad.jsonl", tmp_path / "k2")
