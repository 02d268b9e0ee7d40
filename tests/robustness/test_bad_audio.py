"""Bad and unusual audio through ``asr evaluate``, ``asr transcribe`` and ``asr train`` (strict).

Bad files (missing, 0 bytes, truncated, not audio, no samples, NaN/Inf...) give one line naming
the file and exit 2 (``asr transcribe``: exit 1, the other files still written), and leave no
output behind; unusual but valid files (odd rates,
6 channels, u8/24-bit/float64, one sample) just work.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import make_wav

from .helpers import (BAD_AUDIO, EXIT_FAILED, ODD_AUDIO, assert_ok, assert_user_error, listing,
                      manifest_line, run_cli)

# transcribe reads in chunks, but checks each file's header with asr.audio.audio_info first, as
# evaluate and train do: the same messages for all three commands.


@pytest.fixture(scope="module")
def good_wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("good") / "good.wav"
    make_wav(p, seconds=0.5, noise=0.05)
    return p


@pytest.mark.parametrize("name", list(BAD_AUDIO))
def test_evaluate_bad_audio_one_line_and_no_output(name, bad_audio, model_file, good_wav,
                                                    tmp_path, capsys):
    path, message = bad_audio[name]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(manifest_line(good_wav, "good") + "\n" + manifest_line(path, "bad") + "\n")
    out = tmp_path / "decode"
    assert_user_error(run_cli(["evaluate", model_file, manifest, "--out", out], capsys), message)
    assert listing(out) == []  # not even hyp.txt for the good utterance


@pytest.mark.parametrize("name", [
    n for n in BAD_AUDIO])
def test_transcribe_bad_audio_reported_others_written(name, bad_audio, model_file, good_wav,
                                                      tmp_path, capsys):
    path, message = bad_audio[name]
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(["transcribe", model_file, good_wav, path, "-o", out], capsys)
    assert_user_error((rc, stdout, stderr), message, code=EXIT_FAILED)  # some files failed
    assert "asr: 1 of 2 file(s) failed" in stderr
    assert listing(out) == ["good.txt"]  # the good file is transcribed, nothing for the bad one


@pytest.mark.parametrize("name", list(BAD_AUDIO))
def test_train_strict_fails_on_bad_audio(name, bad_audio, good_wav, tmp_path, capsys):
    path, _ = bad_audio[name]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(manifest_line(good_wav, "good") + "\n" + manifest_line(path, "bad") + "\n")
    exp = tmp_path / "exp"
    result = run_cli(["train", "--train", manifest, "--dev", manifest, "--exp-dir", exp,
                      "--device", "cpu", "data.strict=true", "model.hidden=8", "model.layers=1",
                      "features.n_mels=20", "data.speed_perturb=[1.0]"], capsys)
    assert_user_error(result, str(path), "(utterance bad; data.strict=true)")
    assert not (exp / "model.pt").exists() and not (exp / "checkpoints").exists()


@pytest.mark.parametrize("name", list(ODD_AUDIO))
def test_unusual_but_valid_audio_is_decoded(name, model_file, tmp_path, capsys):
    path = tmp_path / name
    kw = dict(seconds=0.5, noise=0.05) | ODD_AUDIO[name]
    make_wav(path, **kw)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(manifest_line(path, "u1", duration=kw["seconds"]) + "\n")
    t0 = time.time()
    assert_ok(run_cli(["evaluate", model_file, manifest, "--out", tmp_path / "dec"], capsys))
    assert_ok(run_cli(["transcribe", model_file, path, "-o", tmp_path / "out"], capsys))
    # 22 051 Hz -> 16 kHz once built a 16000 x 22000-tap kernel (6 GB, 20 s per file)
    assert time.time() - t0 < 20
    assert (tmp_path / "dec" / "hyp.txt").read_text().startswith("u1")
    assert (tmp_path / "out" / f"{path.stem}.txt").is_file()
