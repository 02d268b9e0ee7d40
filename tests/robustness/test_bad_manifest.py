"""Malformed manifests through ``asr evaluate`` and ``asr train``: one line naming file:line and
the field, exit 2, and nothing written (no hypotheses, no checkpoints)."""

from __future__ import annotations

import json

import pytest

from conftest import make_wav

from .helpers import assert_user_error, listing, manifest_line, run_cli

GOOD = {"id": "u1", "audio_path": "a.wav", "duration": 0.5, "text": "AB", "speaker": "s"}


def _line(**change) -> str:
    d = dict(GOOD, id="u2")
    d.update(change)
    return json.dumps({k: v for k, v in d.items() if v is not ...})


# name -> (second line of the manifest (bytes or str), message after "m.jsonl:2: ")
CASES = {
    "bad_json": ('{"id": "u2", "audio_path": "a.wav"', "not valid JSON"),
    "not_an_object": ("[1, 2]", "expected a JSON object, got list"),
    "missing_field": (_line(text=...), "missing field(s) text"),
    "missing_fields": (_line(text=..., speaker=...), "missing field(s) text, speaker"),
    "text_not_string": (_line(text=5), "field 'text' must be a string, got 5"),
    "id_not_string": (_line(id=7), "field 'id' must be a string, got 7"),
    "duration_string": (_line(duration="0.5"),
                        "field 'duration' must be a non-negative number of seconds, got '0.5'"),
    "duration_negative": (_line(duration=-1.5),
                          "field 'duration' must be a non-negative number of seconds, got -1.5"),
    "duration_nan": ('{"id": "u2", "audio_path": "a.wav", "duration": NaN, "text": "AB", '
                     '"speaker": "s"}', "field 'duration' must be a non-negative number of "
                     "seconds, got nan"),
    "duration_infinite": ('{"id": "u2", "audio_path": "a.wav", "duration": Infinity, '
                          '"text": "AB", "speaker": "s"}', "field 'duration' must be a "
                          "non-negative number of seconds, got inf"),
    "offset_negative": (_line(offset=-3), "field 'offset' must be a non-negative number of "
                        "seconds, got -3"),
    "duplicate_id": (_line(id="u1"), "duplicate id 'u1' (first on line 1)"),
    "not_utf8": (_line(text="caf\u00e9").encode("utf-8").replace(b"\\u00e9", b"\xe9"),
                 "not valid UTF-8"),
}


def _write(d, second) -> str:
    make_wav(d / "a.wav", seconds=0.5)
    p = d / "m.jsonl"
    first = (json.dumps(GOOD) + "\n").encode()
    p.write_bytes(first + (second if isinstance(second, bytes) else second.encode()) + b"\n")
    return str(p)


@pytest.mark.parametrize("name", list(CASES))
def test_evaluate_bad_manifest_line(name, model_file, tmp_path, capsys):
    second, message = CASES[name]
    m = _write(tmp_path, second)
    out = tmp_path / "decode"
    assert_user_error(run_cli(["evaluate", model_file, m, "--out", out], capsys),
                      f"{m}:2: {message}")
    assert listing(out) == []


@pytest.mark.parametrize("name", ["bad_json", "missing_field", "duration_negative",
                                  "duplicate_id", "not_utf8"])
def test_train_bad_manifest_line(name, tmp_path, capsys):
    second, message = CASES[name]
    m = _write(tmp_path, second)
    exp = tmp_path / "exp"
    assert_user_error(run_cli(["train", "--train", m, "--dev", m, "--exp-dir", exp,
                               "--device", "cpu"], capsys), f"{m}:2: {message}")
    assert not (exp / "checkpoints").exists() and not (exp / "model.pt").exists()


def test_train_bad_manifest_creates_no_experiment_folder(tmp_path, capsys):
    m = _write(tmp_path, CASES["bad_json"][0])
    exp = tmp_path / "exp"
    assert_user_error(run_cli(["train", "--train", m, "--dev", m, "--exp-dir", exp], capsys),
                      f"{m}:2: not valid JSON")
    assert not exp.exists()


def test_empty_manifest(model_file, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    out = tmp_path / "decode"
    assert_user_error(run_cli(["evaluate", model_file, empty, "--out", out], capsys),
                      f"{empty}: no utterances to evaluate")
    assert listing(out) == []
    make_wav(tmp_path / "a.wav")
    dev = tmp_path / "dev.jsonl"
    dev.write_text(manifest_line(tmp_path / "a.wav") + "\n")
    assert_user_error(run_cli(["train", "--train", empty, "--dev", dev, "--exp-dir",
                               tmp_path / "exp", "--device", "cpu"], capsys),
                      f"{empty}: no usable training utterances")


def test_segment_offset_past_the_end(model_file, tmp_path, capsys):
    """A valid line whose segment lies beyond its audio: the file and the offset are named."""
    make_wav(tmp_path / "a.wav", seconds=0.5)
    m = tmp_path / "m.jsonl"
    m.write_text(manifest_line(tmp_path / "a.wav", offset=100.0) + "\n")
    out = tmp_path / "decode"
    assert_user_error(run_cli(["evaluate", model_file, m, "--out", out], capsys),
                      f"segment offset 100 s is past the end of {tmp_path / 'a.wav'} (0.500 s)")
    assert listing(out) == []
