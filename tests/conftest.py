"""Shared test helpers: synthetic WAV files and a tiny "tone alphabet" corpus.

The tone corpus is a miniature speech task a small CTC model can learn in seconds: every letter of
A/B/C is a pure tone of its own pitch (~0.12 s), letters are separated by short silences and words
by longer ones, so a transcript such as "AB CA" is fully determined by the audio.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.manifest import Utterance, write_manifest

# Tiny models and short audio: one thread avoids oversubscribing a small (shared) CPU.
torch.set_num_threads(1)

TONE_SR = 16000
TONES = {"A": 500.0, "B": 1200.0, "C": 2500.0}  # Hz, far apart on the mel scale
LETTER_S, LETTER_GAP_S, WORD_GAP_S, EDGE_S = 0.12, 0.04, 0.12, 0.10


def make_wav(path: str | Path, seconds: float = 0.5, sr: int = 16000, freq: float = 440.0,
             amp: float = 0.5, channels: int = 1, noise: float = 0.0, seed: int = 0,
             subtype: str | None = None, format: str | None = None) -> np.ndarray:
    """Write a sine (plus optional white noise) to ``path``; return the float32 ``(T,)`` or
    ``(T, C)`` samples that were written (channel c has frequency ``freq * (c + 1)``)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    cols = [amp * np.sin(2 * np.pi * freq * (c + 1) * t) + noise * rng.standard_normal(n)
            for c in range(channels)]
    data = np.stack(cols, axis=1).astype(np.float32) if channels > 1 else cols[0].astype(np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype, format=format)
    return data


def tone_word_audio(text: str, sr: int = TONE_SR, rng: np.random.Generator | None = None
                    ) -> np.ndarray:
    """Render a text of A/B/C words as tones with silences (float32, peak ~0.5)."""
    rng = rng or np.random.default_rng(0)
    n_letter = int(LETTER_S * sr)
    t = np.arange(n_letter) / sr
    ramp = np.minimum(1.0, np.minimum(np.arange(n_letter), n_letter - 1 - np.arange(n_letter))
                      / (0.01 * sr))  # 10 ms fades: no clicks
    parts = [np.zeros(int(EDGE_S * sr))]
    for wi, word in enumerate(text.split()):
        if wi:
            parts.append(np.zeros(int(WORD_GAP_S * sr)))
        for li, letter in enumerate(word):
            if li:
                parts.append(np.zeros(int(LETTER_GAP_S * sr)))
            parts.append(0.5 * ramp * np.sin(2 * np.pi * TONES[letter] * t))
    parts.append(np.zeros(int(EDGE_S * sr)))
    y = np.concatenate(parts)
    y = y + 0.003 * rng.standard_normal(len(y))
    return y.astype(np.float32)


def random_tone_text(rng: np.random.Generator) -> str:
    words = []
    for _ in range(int(rng.integers(1, 3))):
        words.append("".join(rng.choice(list(TONES), size=int(rng.integers(1, 4)))))
    return " ".join(words)


def make_tone_corpus(dir: str | Path, n_utts: int = 16, seed: int = 0, name: str = "tones",
                     sr: int = TONE_SR, n_speakers: int = 3) -> Path:
    """Write ``n_utts`` tone utterances as ``<dir>/<name>/<id>.wav`` and their manifest
    ``<dir>/<name>.jsonl`` (absolute audio paths); return the manifest path.

    Different ``seed``s give different texts (use one for train and another for dev); ``name``
    keeps several corpora apart in one folder.
    """
    d = Path(dir)
    wav_dir = d / name
    wav_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utts = []
    for i in range(n_utts):
        text = random_tone_text(rng)
        y = tone_word_audio(text, sr, rng)
        uid = f"{name}-s{seed}-{i:03d}"
        path = wav_dir / f"{uid}.wav"
        sf.write(str(path), y, sr, subtype="PCM_16")
        utts.append(Utterance(uid, str(path.resolve()), len(y) / sr, text,
                              f"spk{i % n_speakers}"))
    manifest = d / f"{name}.jsonl"
    write_manifest(manifest, utts)
    return manifest


@pytest.fixture
def wav_factory(tmp_path):
    """``wav_factory(name, **make_wav_kwargs) -> (path, samples)`` inside ``tmp_path``."""

    def make(name: str = "a.wav", **kw):
        p = tmp_path / name
        return p, make_wav(p, **kw)

    return make


@pytest.fixture
def tone_corpus(tmp_path) -> Path:
    """Manifest of 16 tone utterances (seed 0) in a fresh temporary folder."""
    return make_tone_corpus(tmp_path / "tone_corpus", 16, 0)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``asr.cli.main(argv)`` -> (exit code, stdout, stderr). An exception escaping main is
    what a user would see as a traceback, so it is returned as one (exit code 1)."""
    from asr.cli import main

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.INFO)  # main's basicConfig is a no-op under pytest's log capture
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    except Exception:  # noqa: BLE001 - report it the way the console would
        rc = 1
        sys.stderr.write(traceback.format_exc())
    finally:
        root.setLevel(level)
        for h in root.handlers[:]:  # the trainer adds a train.log handler: do not leak it
            if h not in handlers:
                root.removeHandler(h)
                h.close()
    out = capsys.readouterr()
    return rc, out.out, out.err


def record_chunked_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every soundfile read of a whole file fail the test, and return the list that the
    frame counts of all (bounded) ``SoundFile.read`` calls are appended to."""
    sizes: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        assert frames >= 0, "a read of the whole file"
        out = real_read(self, frames, *args, **kwargs)
        sizes.append(out.shape[0])
        return out

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("sf.read loads a whole file"))
    return sizes


@pytest.fixture
def no_leaked_log_handlers():
    """The trainer adds a train.log handler to the root logger: remove it afterwards."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)
            h.close()
