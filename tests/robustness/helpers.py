"""Shared helpers for the robustness suite: bad files of every kind, and the ``asr`` front door
called in-process with the checks every bad input must pass (one clear line naming the culprit,
the exact exit code of docs/robustness.md's table, no traceback, no output left behind)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.config import load_config
from asr.inference import Recognizer
from asr.tokenizer import CharTokenizer
from conftest import make_wav, run_cli  # noqa: F401 - run_cli is used via this module

TINY_MODEL = ["model.hidden=8", "model.layers=1", "model.conv_dim=8", "features.n_mels=20"]


def save_tiny_model(path: Path) -> Path:
    """An untrained but complete model file (16 kHz fbank, vocabulary A B C): enough to check
    what the commands do with their inputs."""
    torch.manual_seed(0)
    cfg = load_config(None, TINY_MODEL)
    dim = cfg.features.dim
    Recognizer(cfg, CharTokenizer.build(["AB C"]),
               {"mean": torch.zeros(dim), "std": torch.ones(dim)}).save(path)
    return path


# The exit codes of docs/robustness.md ("Exit codes"); tests/robustness/test_exit_codes.py gives
# each its own test.
EXIT_OK = 0
EXIT_FAILED = 1  # some files failed (asr transcribe), or the system refused (OSError)
EXIT_USER_ERROR = 2  # bad file, manifest, config, model or option (argparse errors too)
EXIT_INTERRUPTED = 130


def assert_user_error(result: tuple[int, str, str], *substrings: str,
                      code: int = EXIT_USER_ERROR) -> str:
    """Exit code ``code`` exactly (2, a user error, unless told: 1 for ``asr transcribe`` with
    some failed files or for an OS refusal), no traceback, and one ``asr...error:`` line holding
    every substring; returns that line."""
    rc, _, err = result
    assert rc == code, f"exit code {rc}, expected {code}; stderr: {err[-1500:]}"
    assert "Traceback" not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("asr") and "error:" in ln]
    assert len(errors) == 1, err
    for s in substrings:
        assert s in errors[0], f"{s!r} not in {errors[0]!r}"
    return errors[0]


def assert_ok(result: tuple[int, str, str]) -> None:
    rc, _, err = result
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err and "error:" not in err, err[-3000:]


# --- bad audio files --------------------------------------------------------------------------

def sparse_wav(path: Path, seconds: float, sr: int = 8000) -> Path:
    """A 16-bit mono WAV of ``seconds`` of digital silence, written as a header plus a sparse
    extension (no disk blocks for the samples on most file systems)."""
    n = int(seconds * sr) * 2
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + fmt
                + b"data" + struct.pack("<I", n))
        f.truncate(44 + n)
    return path


def truncate_wav(src: Path, dst: Path, keep: float = 0.4) -> Path:
    """Copy a WAV keeping its header (which still declares every sample) and the first
    ``keep`` of its sample bytes: what an interrupted copy or download leaves."""
    data = src.read_bytes()
    dst.write_bytes(data[: 44 + int((len(data) - 44) * keep)])
    return dst


def _truncated(p: Path) -> None:
    make_wav(p, seconds=1.0)  # 16 kHz, 16-bit: 32000 sample bytes
    truncate_wav(p, p, keep=0.4)


def _garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())


def _non_finite(p: Path, bad: float) -> None:
    y = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    y[1234] = bad
    sf.write(str(p), y, 16000, subtype="FLOAT")


# name -> (how to make it, message substring; "{p}" is the file's path)
BAD_AUDIO = {
    "missing.wav": (lambda p: None, "audio file not found: {p}"),
    "zero_bytes.wav": (lambda p: p.write_bytes(b""), "audio file is empty (0 bytes): {p}"),
    "truncated.wav": (lambda p: _truncated(p),
                      "audio file is truncated: {p} (header declares 32000 bytes of samples, "
                      "the file holds 12800)"),
    "header_only.wav": (lambda p: p.write_bytes(make_wav_bytes()[:30]),
                        "cannot read audio {p}"),
    "garbage.wav": (_garbage, "cannot read audio {p}"),
    "text_file.wav": (lambda p: p.write_text("this is not audio\n" * 20),
                      "cannot read audio {p}"),
    "no_samples.wav": (lambda p: sf.write(str(p), np.zeros(0, np.float32), 16000),
                       "audio file has no samples: {p}"),
    "nan.wav": (lambda p: _non_finite(p, np.nan), "audio file contains NaN or Inf samples: {p}"),
    "inf.wav": (lambda p: _non_finite(p, -np.inf), "audio file contains NaN or Inf samples: {p}"),
    "truncated.flac": (lambda p: _cut_flac(p), "cannot read audio {p}"),
}


def make_wav_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros(800, np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _cut_flac(p: Path) -> None:
    make_wav(p, seconds=1.0, noise=0.2, format="FLAC")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def make_bad_audio(d: Path) -> dict[str, tuple[Path, str]]:
    """Write every BAD_AUDIO file into ``d``: name -> (path, expected message substring)."""
    out = {}
    for name, (make, msg) in BAD_AUDIO.items():
        p = d / name
        make(p)
        out[name] = (p, msg.format(p=p))
    return out


# name -> make_wav keyword arguments: unusual but valid audio that must simply work
ODD_AUDIO = {
    "rate_7k.wav": dict(sr=7000),
    "rate_96k.wav": dict(sr=96000),
    "rate_22051.wav": dict(sr=22051),  # shares no factor with 16 kHz
    "six_channels.wav": dict(channels=6),
    "u8.wav": dict(subtype="PCM_U8"),
    "pcm24.wav": dict(subtype="PCM_24"),
    "float64.wav": dict(subtype="DOUBLE"),
    "one_sample.wav": dict(seconds=1 / 16000),
}


def manifest_line(path: Path, uid: str = "u1", **fields) -> str:
    d = {"id": uid, "audio_path": str(path), "duration": 0.5, "text": "AB", "speaker": "s"}
    d.update(fields)
    return json.dumps(d)


def listing(d: Path) -> list[str]:
    """Every file under ``d`` (relative), or [] when ``d`` does not exist."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []
