"""Each exit code of docs/robustness.md's table ("Exit codes"), through the real front door:
0 success; 2 a user error; 1 some files failed (``asr transcribe``) or the system refused an
operation; 130 interrupted (in-process, and a real SIGINT to ``python -m asr.cli train``)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_wav

from .helpers import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, TINY_MODEL,
                      assert_ok, assert_user_error, listing, manifest_line, run_cli)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("exit")
    for name in ("a", "b"):
        make_wav(d / f"{name}.wav", seconds=0.5, noise=0.05)
    (d / "bad.wav").write_bytes(b"")
    return d


def _run(argv, capsys) -> tuple[int, str, str]:
    """run_cli, but an interrupt escaping main fails the test instead of stopping pytest."""
    try:
        return run_cli(argv, capsys)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped asr.cli.main (a traceback for the user)")


def test_0_success(wavs, model_file, tmp_path, capsys):
    rc, out, err = result = _run(["transcribe", model_file, wavs / "a.wav", wavs / "b.wav",
                                  "-o", tmp_path / "out"], capsys)
    assert rc == EXIT_OK
    assert_ok(result)
    assert listing(tmp_path / "out") == ["a.txt", "b.txt"]


@pytest.mark.parametrize("case", ["bad option", "unknown command", "missing model",
                                  "bad config", "bad manifest"])
def test_2_user_error(case, wavs, model_file, tmp_path, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text(manifest_line(wavs / "a.wav") + "\n" + "{not json\n")
    argv, message = {
        "bad option": (["transcribe", model_file, wavs / "a.wav", "--batch-size", "0"],
                       "argument --batch-size: must be > 0, got 0"),
        "unknown command": (["transcribbe", model_file], "invalid choice: 'transcribbe'"),
        "missing model": (["transcribe", tmp_path / "nope.pt", wavs / "a.wav"],
                          f"model file not found: {tmp_path / 'nope.pt'}"),
        "bad config": (["train", "--train", m, "--dev", m, "--exp-dir", tmp_path / "exp",
                        "train.epochs=0"], "train.epochs must be > 0, got 0"),
        "bad manifest": (["evaluate", model_file, m, "--out", tmp_path / "dec"],
                         f"{m}:2: not valid JSON"),
    }[case]
    assert_user_error(_run(argv, capsys), message, code=EXIT_USER_ERROR)


def test_1_some_files_failed(wavs, model_file, tmp_path, capsys):
    """One bad file among good ones: its own error line, the count, the others written."""
    out = tmp_path / "out"
    rc, _, err = result = _run(["transcribe", model_file, wavs / "a.wav", wavs / "bad.wav",
                                wavs / "b.wav", "-o", out], capsys)
    assert rc == EXIT_FAILED
    assert_user_error(result, f"audio file is empty (0 bytes): {wavs / 'bad.wav'}",
                      code=EXIT_FAILED)
    assert err.splitlines()[-1] == "asr: 1 of 3 file(s) failed"
    assert listing(out) == ["a.txt", "b.txt"]


def test_1_disk_full(wavs, model_file, tmp_path, monkeypatch, capsys):
    """The system refuses the final rename (ENOSPC): one line with strerror and the file, exit 1,
    and no temporary file is left beside the target."""
    out = tmp_path / "out"

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "replace", full)
    line = assert_user_error(_run(["transcribe", model_file, wavs / "a.wav", "-o", out], capsys),
                             code=EXIT_FAILED)
    assert line == f"asr: error: {os.strerror(errno.ENOSPC)}: {out / 'a.txt'}"
    assert listing(out) == []


def test_1_os_refuses_output_folder(wavs, model_file, capsys):
    """A folder that cannot be created even by root: under /proc (exists, looks writable to
    os.access, and refuses mkdir)."""
    target = Path("/proc") / f"asr-exit-test-{os.getpid()}"
    assert Path("/proc").is_dir(), "this test needs Linux's /proc"
    line = assert_user_error(_run(["transcribe", model_file, wavs / "a.wav", "-o", target],
                                  capsys), str(target), code=EXIT_FAILED)
    assert line.startswith("asr: error: ") and not target.exists()


def test_130_interrupt_in_process(wavs, model_file, tmp_path, monkeypatch, capsys):
    from asr.transcribe import Transcriber

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Transcriber, "_run", interrupted)
    rc, _, err = _run(["transcribe", model_file, wavs / "a.wav", "-o", tmp_path / "out"], capsys)
    assert rc == EXIT_INTERRUPTED, err[-2000:]
    assert err.strip().splitlines()[-1] == "asr: interrupted" and "Traceback" not in err
    assert listing(tmp_path / "out") == []


def test_130_sigint_to_training(wavs, tmp_path):
    """A real Ctrl-C: SIGINT to ``python -m asr.cli train`` once its first epoch has started."""
    m = tmp_path / "m.jsonl"
    m.write_text(manifest_line(wavs / "a.wav", "u1") + "\n" + manifest_line(wavs / "b.wav", "u2")
                 + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr.cli", "train", "--train", m, "--dev", m, "--exp-dir",
         tmp_path / "exp", "--device", "cpu", *TINY_MODEL, "train.epochs=100000",
         "data.speed_perturb=[1.0]", "train.amp=false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a suite started as a background job (`pytest &`) ignores SIGINT and a child inherits
        # that (then `asr train` trained on after the signal): the child gets the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        log = []
        deadline = time.time() + 120
        for line in proc.stderr:  # the "model: ..." line is logged just before the first epoch
            log.append(line)
            if " model: " in line or time.time() > deadline:
                break
        assert any(" model: " in ln for ln in log), "".join(log)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(log) + rest
    assert proc.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert err.strip().splitlines()[-1] == "asr: interrupted" and "Traceback" not in err
