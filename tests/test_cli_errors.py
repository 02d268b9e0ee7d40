"""The ``asr`` command as a user meets it: help, and one-line errors without tracebacks.

Start-up-sensitive cases run as real processes (started together once per module); the others
call ``asr.cli.main`` in-process to keep the suite fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.config import load_config
from asr.inference import Recognizer
from asr.manifest import Utterance, write_manifest
from asr.tokenizer import CharTokenizer
from conftest import make_wav, run_cli

REPO = Path(__file__).resolve().parents[1]


def _asr_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "asr"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    found = shutil.which("asr")
    return [found] if found else [sys.executable, "-m", "asr.cli"]


def _make_inputs(d: Path) -> dict[str, str]:
    torch.manual_seed(0)
    cfg = load_config(None, ["model.hidden=8", "model.layers=1", "model.conv_dim=8",
                             "features.n_mels=20"])
    dim = cfg.features.dim
    Recognizer(cfg, CharTokenizer.build(["AB C"]),
               {"mean": torch.zeros(dim), "std": torch.ones(dim)}).save(d / "model.pt")
    make_wav(d / "a.wav", seconds=0.5, noise=0.05)
    sf.write(str(d / "tiny.wav"), 0.1 * np.random.default_rng(0).standard_normal(160), 16000)
    (d / "text.wav").write_text("this is not audio\n" * 10)
    (d / "text.pt").write_text("this is not a model\n")
    write_manifest(d / "ok.jsonl", [Utterance("u1", str(d / "a.wav"), 0.5, "AB", "s")])
    write_manifest(d / "missing_audio.jsonl",
                   [Utterance("u1", str(d / "missing.wav"), 0.5, "AB", "s")])
    (d / "broken.jsonl").write_text('{"id": "u1", "audio_path": "a.wav"\n')
    return {k: str(d / k) for k in ("model.pt", "a.wav", "tiny.wav", "text.wav", "text.pt",
                                    "ok.jsonl", "broken.jsonl", "missing_audio.jsonl")}


# Cases run as real processes (the whole start-up path, including imports, is checked); the
# argparse-level ones never import torch and cost a fraction of a second.
SUBPROCESS_CASES = {
    "help": lambda f, d: ["--help"],
    "unknown_option": lambda f, d: ["transcribe", "--bogus", f["model.pt"], f["a.wav"]],
    "unknown_command": lambda f, d: ["frobnicate", f["model.pt"]],
    "wrong_model_path": lambda f, d: ["transcribe", str(d / "missing.pt"), f["a.wav"]],
}

# The same front door called in-process (asr.cli.main), to keep the suite fast.
INPROCESS_CASES = {
    "not_a_model": lambda f, d: ["transcribe", f["text.pt"], f["a.wav"]],
    "wrong_manifest_evaluate": lambda f, d: ["evaluate", f["model.pt"], str(d / "missing.jsonl"),
                                             "--out", str(d / "dec1")],
    "broken_manifest": lambda f, d: ["evaluate", f["model.pt"], f["broken.jsonl"],
                                     "--out", str(d / "dec2")],
    "missing_audio": lambda f, d: ["evaluate", f["model.pt"], f["missing_audio.jsonl"],
                                   "--out", str(d / "dec3")],
    "bad_override_key": lambda f, d: ["train", "--train", f["ok.jsonl"], "--dev", f["ok.jsonl"],
                                      "--exp-dir", str(d / "exp3"), "model.layerz=2"],
    "bad_override_value": lambda f, d: ["train", "--train", f["ok.jsonl"], "--dev", f["ok.jsonl"],
                                        "--exp-dir", str(d / "exp2"), "model.subsample=7"],
    "wrong_manifest_train": lambda f, d: ["train", "--train", str(d / "missing.jsonl"),
                                          "--dev", f["ok.jsonl"], "--exp-dir", str(d / "exp1")],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return _make_inputs(d), d


@pytest.fixture(scope="module")
def results(files):
    f, d = files
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    procs = {name: subprocess.Popen(_asr_cmd() + argv(f, d), cwd=d, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, argv in SUBPROCESS_CASES.items()}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[name] = (p.returncode, stdout, stderr)
    return out


def test_help_lists_commands(results):
    rc, stdout, stderr = results["help"]
    assert rc == 0, stderr
    for cmd in ("train", "evaluate", "transcribe", "prepare", "score", "lm"):
        assert f"    {cmd} " in stdout, cmd


def _assert_one_line_error(rc, stdout, stderr, words):
    assert rc != 0
    assert "Traceback" not in stderr, stderr[-1500:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("asr") and "error" in lines[0]
    assert words in lines[0]


@pytest.mark.parametrize("case, words", [
    ("wrong_model_path", "model file not found"),
    ("unknown_option", "--bogus"),
    ("unknown_command", "frobnicate"),
])
def test_user_errors_are_one_line(results, case, words):
    _assert_one_line_error(*results[case], words)


@pytest.mark.parametrize("case, words", [
    ("not_a_model", "text.pt"),
    ("wrong_manifest_evaluate", "manifest not found"),
    ("broken_manifest", "broken.jsonl:1"),
    ("missing_audio", "audio file not found"),
    ("bad_override_key", "layerz"),
    ("bad_override_value", "model.subsample must be 1-4"),
    ("wrong_manifest_train", "manifest not found"),
])
def test_user_errors_are_one_line_inprocess(files, capsys, case, words):
    f, d = files
    _assert_one_line_error(*run_cli(INPROCESS_CASES[case](f, d), capsys), words)


@pytest.mark.parametrize("name, words", [("missing.wav", "audio file not found"),
                                         ("text.wav", "cannot read audio")])
def test_transcribe_unreadable_audio_is_reported_without_traceback(files, capsys, name, words):
    """transcribe goes on with the other files, so it reports each failure on its own
    "asr: error:" line (plus a count); no traceback, non-zero exit."""
    f, d = files
    rc, stdout, stderr = run_cli(["transcribe", f["model.pt"], str(d / name)], capsys)
    assert rc != 0 and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and all(ln.startswith("asr") for ln in lines), stderr
    assert words in lines[0] and name in lines[0]


def test_audio_shorter_than_a_frame_is_decoded(files, capsys):
    """A 10 ms file is decoded like any other (docs/robustness.md: "one-sample audio ... decoded,
    exit 0"): exit 0, one transcript line naming the file, nothing on stderr."""
    f, d = files
    rc, stdout, stderr = run_cli(["transcribe", "--with-names", f["model.pt"], f["tiny.wav"]],
                                 capsys)
    assert rc == 0 and "Traceback" not in stderr and "error" not in stderr, stderr[-1500:]
    lines = stdout.splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[0].endswith("tiny.wav"), stdout


def test_transcribe_ok(files, capsys):
    f, d = files
    rc, stdout, stderr = run_cli(["transcribe", "--with-names", f["model.pt"], f["a.wav"]],
                                       capsys)
    assert rc == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[0].endswith("a.wav")
