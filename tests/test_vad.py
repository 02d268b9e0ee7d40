"""The pause detectors of asr/vad.py (silero-vad, energy), the endpointing clock, and their use
by ``asr transcribe`` (pause segments) and ``asr stream`` (endpoints), on synthetic audio: vowels
made from a pulse train through formant resonators, between stretches of faint noise."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from asr.chunks import ChunkConfig, iter_chunks
from asr.errors import UserError
from asr.segment import find_pause
from asr.vad import EnergyFrames, PauseClock, check_endpoint, vad_available

SR = 16000
VOWELS = [((700, 130), (1220, 70), (2600, 160)), ((300, 60), (2300, 100), (3000, 150)),
          ((500, 80), (900, 80), (2400, 150))]
needs_vad = pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")


def vowel(seconds: float, f0: float, formants) -> np.ndarray:
    """A voiced vowel: a glottal pulse train at ``f0`` Hz through three formant resonators."""
    n = int(seconds * SR)
    phase = np.cumsum(np.full(n, f0 / SR))
    y = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    for fc, bw in formants:
        r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * fc / SR
        y = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], y)
    return 0.3 * y / np.abs(y).max() * np.sin(np.pi * np.arange(n) / n) ** 0.5


def utterances(n: int = 3, pause: float = 0.8, seed: int = 0) -> tuple[np.ndarray, list]:
    """``n`` "words" of four 0.2 s vowels, ``pause`` s of faint noise around each; returns the
    audio and the words' (start, end) in seconds."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for k in range(n):
        parts.append(np.zeros(int(pause * SR)))
        t += pause
        parts += [vowel(0.2, 100 + 20 * j, VOWELS[(j + k) % 3]) for j in range(4)]
        spans.append((t, t + 0.8))
        t += 0.8
    parts.append(np.zeros(int(pause * SR)))
    x = np.concatenate(parts)
    return (x + 0.003 * rng.standard_normal(len(x))).astype(np.float32), spans


def frames_of(det, x: np.ndarray, step: int = 1600) -> np.ndarray:
    out = [det.accept(x[i:i + step], final=i + step >= len(x)) for i in range(0, len(x), step)]
    return np.concatenate(out)


@needs_vad
@pytest.mark.parametrize("step", [1600, 512, 777, 16000])
def test_silero_finds_the_vowels_and_not_the_noise(step):
    from asr.vad import VadFrames
    x, spans = utterances()
    speech = frames_of(VadFrames(SR), x, step)
    assert len(speech) == len(x) // 160  # one decision per 10 ms frame, whatever the pieces
    t = np.arange(len(speech)) * 0.01
    inside = np.zeros(len(speech), bool)
    for a, b in spans:
        inside |= (t >= a + 0.1) & (t < b - 0.1)
    outside = np.ones(len(speech), bool)
    for a, b in spans:
        outside &= (t < a - 0.2) | (t >= b + 0.3)
    assert speech[inside].mean() > 0.9
    assert speech[outside].mean() < 0.05
    # the same decisions for any split of the audio into pieces
    assert np.array_equal(speech, frames_of(VadFrames(SR), x, 1600))


@needs_vad
def test_silero_runs_at_other_rates():
    from asr.audio import resample
    import torch
    from asr.vad import VadFrames
    x, spans = utterances()
    x8 = resample(torch.from_numpy(x), SR, 8000).numpy()
    speech = frames_of(VadFrames(8000), x8, 800)
    assert abs(len(speech) - len(x) // 160) <= 1
    a, b = spans[1]
    assert speech[int(a * 100) + 10:int(b * 100) - 10].mean() > 0.9


@needs_vad
def test_white_noise_is_not_speech():
    from asr.vad import VadFrames
    x = (0.1 * np.random.default_rng(1).standard_normal(3 * SR)).astype(np.float32)
    assert frames_of(VadFrames(SR), x).mean() < 0.05


def test_energy_frames_find_the_vowels():
    x, spans = utterances()
    speech = frames_of(EnergyFrames(SR), x)
    a, b = spans[0]
    assert speech[int(a * 100) + 10:int(b * 100) - 10].mean() > 0.9
    assert not speech[:int(a * 100) - 10].any()


def test_pause_clock_counts_non_speech_after_speech():
    c = PauseClock()
    c.add(np.array([False] * 30))
    assert c.pause_seconds() == 0.0 and c.quiet_seconds() == pytest.approx(0.3)
    c.add(np.array([True, True, False, False]))
    assert c.heard and c.pause_seconds() == pytest.approx(0.02)
    c.add(np.zeros(5, bool))
    assert c.pause_seconds() == pytest.approx(0.07)
    c.add(np.array([True]))
    assert c.pause_seconds() == 0.0
    c.reset()
    assert not c.heard and c.quiet_seconds() == 0.0


def test_find_pause_on_decisions():
    s = np.array([c == "#" for c in "..###.##....###"])
    assert find_pause(s, 3) == 10
    assert find_pause(s, 5) is None
    assert find_pause(s, 3, limit=9) == 9


def test_unknown_or_missing_detectors_are_one_line_errors(monkeypatch):
    with pytest.raises(UserError, match="endpoint must be one of"):
        check_endpoint("webrtc")
    with pytest.raises(UserError, match="blanks endpoint asr stream only"):
        ChunkConfig(endpoint="blank")
    assert ChunkConfig().endpoint == "energy"  # the default needs no extra package
    monkeypatch.setattr("asr.vad.vad_available", lambda: False)
    with pytest.raises(UserError, match="needs the silero-vad package"):
        ChunkConfig(endpoint="vad")
    ChunkConfig(segment="fixed", endpoint="vad")  # fixed windows use no detector


@needs_vad
@pytest.mark.parametrize("endpoint", ["vad", "energy"])
def test_transcribe_cuts_between_the_words(tmp_path, endpoint):
    x, spans = utterances(4, pause=0.6)
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    cfg = ChunkConfig(segment="pause", endpoint=endpoint, whole_seconds=1.0)
    chunks = list(iter_chunks(str(tmp_path / "a.wav"), SR, cfg))
    cuts = [c.start for c in chunks[1:]]
    assert len(cuts) == 3
    for cut, (_, end), (start, _) in zip(cuts, spans, spans[1:]):
        assert end < cut < start
    assert sum(c.wave.shape[0] for c in chunks) == len(x)  # the segments tile the file


@needs_vad
def test_silero_keeps_a_cut_out_of_a_breathy_word(tmp_path):
    """A word whose middle is 0.3 s of breath-like noise (loud, unvoiced): the energy detector
    hears it as speech either way; the point is that silero-vad's hysteresis does not cut
    there either, while it still cuts at the real pause."""
    rng = np.random.default_rng(3)
    word = np.concatenate([vowel(0.3, 110, VOWELS[0]), 0.02 * rng.standard_normal(int(0.3 * SR)),
                           vowel(0.3, 120, VOWELS[1])])
    x = np.concatenate([np.zeros(SR // 2), word, np.zeros(SR), word, np.zeros(SR // 2)])
    x = (x + 0.003 * rng.standard_normal(len(x))).astype(np.float32)
    sf.write(tmp_path / "b.wav", x, SR, subtype="PCM_16")
    cfg = ChunkConfig(segment="pause", endpoint="vad", whole_seconds=1.0)
    cuts = [c.start for c in iter_chunks(str(tmp_path / "b.wav"), SR, cfg)][1:]
    assert len(cuts) == 1 and 1.4 < cuts[0] < 2.4


@pytest.mark.parametrize("endpoint", ["energy", "blank"])
def test_stream_endpoints_in_the_pauses(endpoint):
    """``stream_events`` with the energy and blank detectors split three tone sentences into
    three, each endpoint in the pause after its sentence."""
    import random

    import torch
    from asr.stream import stream_events
    from test_align import SR as TSR, tone_recognizer, tone_sentence

    rec = tone_recognizer(bidirectional=False)
    rng, parts, bounds, t = random.Random(5), [], [], 0.0
    for i in range(3):
        wave = tone_sentence(rng, 2)[0]
        parts += [wave, 0.003 * np.random.default_rng(i).standard_normal(TSR).astype(np.float32)]
        bounds.append((t, t + len(wave) / TSR))
        t += len(wave) / TSR + 1.0
    x = torch.from_numpy(np.concatenate(parts))
    chunks = (x[i:i + 800] for i in range(0, len(x), 800))
    finals = [e for e in stream_events(rec, chunks, rec.decoder("greedy"), 0.6, endpoint)
              if e.final]
    assert len(finals) == 3
    for f in finals[:-1]:  # each endpoint falls in a pause, after its sentence
        assert any(e < f.time < e + 1.0 for _, e in bounds), (f.time, bounds)


def test_stream_refuses_an_unknown_endpoint():
    from asr.stream import stream_events
    from test_align import tone_recognizer

    with pytest.raises(UserError, match="endpoint must be one of"):
        list(stream_events(tone_recognizer(bidirectional=False), [], None, 0.5, "webrtc"))


@needs_vad
def test_stream_endpoints_by_silero_fall_in_the_pauses():
    """Vowel "words" (resampled to the tone model's 8 kHz) streamed with ``endpoint="vad"``:
    every endpoint falls in a pause, and the first one comes after the first word."""
    import torch
    from asr.audio import resample
    from asr.stream import stream_events
    from test_align import SR as TSR, tone_recognizer

    rec = tone_recognizer(bidirectional=False)
    x, spans = utterances(3, pause=1.0)
    x8 = resample(torch.from_numpy(x), SR, TSR)
    chunks = (x8[i:i + 800] for i in range(0, len(x8), 800))
    events = list(stream_events(rec, chunks, rec.decoder("greedy"), 0.6, "vad"))
    finals = [e for e in events if e.final]
    assert finals
    for f in finals[:-1]:
        assert any(e + 0.5 < f.time < e + 1.0 for _, e in spans), (f.time, spans)
