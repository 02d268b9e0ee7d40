"""Speaker normalisation: per-speaker CMVN at training and at test time, with its fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.config import load_config
from asr.data import FeatureSource
from asr.features import FeatureConfig, apply_cmvn, utterance_cmvn
from asr.inference import Recognizer
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.train import Trainer
from conftest import TONE_SR, make_tone_corpus, random_tone_text, tone_word_audio

SMALL = ["model.hidden=16", "model.layers=1", "model.dropout=0.0", "features.n_mels=23",
         "data.max_batch=4", "train.threads=1", "train.amp=false", "train.epochs=1"]


def _channel(y: np.ndarray, gain: float, tilt: float) -> np.ndarray:
    """Another microphone: a gain and a first-order spectral tilt (y[n] - tilt * y[n-1])."""
    out = y.astype(np.float64).copy()
    out[1:] -= tilt * y[:-1]
    return (gain * out).astype(np.float32)


def _two_voices(tmp_path: Path, n: int = 6) -> tuple[list[Utterance], list[Utterance]]:
    """The same n sentences said by voice A and by voice B (A through another channel)."""
    rng = np.random.default_rng(0)
    a, b = [], []
    for i in range(n):
        text = random_tone_text(rng)
        y = tone_word_audio(text, TONE_SR, rng)
        for voice, wave, out in (("A", y, a), ("B", _channel(y, 0.2, 0.9), b)):
            path = tmp_path / f"{voice}{i}.wav"
            sf.write(str(path), wave, TONE_SR, subtype="FLOAT")
            out.append(Utterance(f"{voice}{i}", str(path), len(y) / TONE_SR, text, voice))
    return a, b


def test_two_channels_become_indistinguishable_after_speaker_cmvn(tmp_path: Path) -> None:
    a, b = _two_voices(tmp_path)
    for kind in ("fbank", "logmel", "mfcc"):
        plain = FeatureSource(FeatureConfig(kind=kind, sample_rate=TONE_SR, n_mels=23), None,
                              cache=True)
        norm = FeatureSource(FeatureConfig(kind=kind, sample_rate=TONE_SR, n_mels=23,
                                           speaker_cmvn=True), None, cache=True)
        norm.speakers = norm.speaker_stats(a + b)
        assert set(norm.speakers) == {("A", 1.0), ("B", 1.0)}
        before = np.mean([(plain(x) - plain(y)).abs().mean().item() for x, y in zip(a, b)])
        after = np.mean([(norm(x) - norm(y)).abs().mean().item() for x, y in zip(a, b)])
        scale = np.mean([norm(x).abs().mean().item() for x in a])
        # raw: the channel moves every band by ~log(0.2 * tilt response); normalised: the
        # two voices differ by a few percent of the features' own size
        assert after < 0.1 * scale, (kind, after, scale)
        assert after < 0.05 * before, (kind, before, after)
        # a voice's speaker statistics pool all its utterances: not each utterance's own
        own = np.mean([(norm(x) - utterance_cmvn(norm.raw(x))).abs().mean().item() for x in a])
        assert own > 0.01


def test_unknown_speaker_falls_back_to_the_utterance_statistics(tmp_path: Path) -> None:
    a, _ = _two_voices(tmp_path, 2)
    src = FeatureSource(FeatureConfig(sample_rate=TONE_SR, n_mels=23, speaker_cmvn=True), None,
                        cache=False)
    anon = Utterance("x", a[0].audio_path, a[0].duration, "", "")
    torch.testing.assert_close(src(anon), utterance_cmvn(src.raw(anon)))
    # a speaker absent from the statistics (e.g. a new voice at test time) does the same
    torch.testing.assert_close(src(a[0]), utterance_cmvn(src.raw(a[0])))
    wave = torch.from_numpy(sf.read(a[0].audio_path, dtype="float32")[0])
    torch.testing.assert_close(src.of_wave(wave), utterance_cmvn(src.raw(a[0])))


def test_exclusive_with_utterance_cmn() -> None:
    with pytest.raises(ValueError, match="speaker_cmvn and features.utterance_cmn"):
        FeatureConfig(speaker_cmvn=True, utterance_cmn=True)


def test_training_and_decoding_use_each_speakers_statistics(tmp_path: Path) -> None:
    train = make_tone_corpus(tmp_path, n_utts=6, seed=1, name="train", n_speakers=2)
    dev = make_tone_corpus(tmp_path, n_utts=4, seed=2, name="dev", n_speakers=2)
    cfg = load_config(None, [*SMALL, "features.speaker_cmvn=true",
                             "data.speed_perturb=[0.9,1.0]"])
    tr = Trainer(cfg, str(train), str(dev), tmp_path / "exp", device="cpu")
    # training: one set of statistics per (speaker, speed), each speed-perturbed copy its own
    assert set(tr.source.speakers) == {(s, v) for s in ("spk0", "spk1") for v in (0.9, 1.0)}
    u = tr.examples[0].utt
    spk = tr.source.speakers[(u.speaker, 0.9)]
    expect = apply_cmvn(apply_cmvn(tr.source.raw(u, 0.9), spk), tr.source.cmvn)
    torch.testing.assert_close(tr.source(u, 0.9), expect)
    # global CMVN is computed over the speaker-normalised features: ~zero mean, unit spread
    feats = torch.cat([tr.source.base(e.utt) for e in tr.examples])
    torch.testing.assert_close(tr.source.cmvn["mean"], feats.mean(0), atol=1e-4, rtol=1e-4)
    tr.fit()
    rec = Recognizer.from_file(tmp_path / "exp" / "model.pt")
    assert rec.cfg.features.speaker_cmvn
    utts = read_manifest(dev)
    rec.emissions(utts).__next__()
    # decoding pools each dev speaker's utterances (statistics from the manifest decoded)
    assert set(rec.source.speakers) == {("spk0", 1.0), ("spk1", 1.0)}
    stats = rec.source.speaker_stats([x for x in utts if x.speaker == "spk0"])
    want = apply_cmvn(apply_cmvn(rec.source.raw(utts[0]), stats[("spk0", 1.0)]), rec.cmvn)
    lp0, _ = rec.forward([want])
    (ids_b, lp_b, lens_b), = list(rec.emissions(utts))  # one batch, in length order
    row = ids_b.index(utts[0].id)
    torch.testing.assert_close(lp_b[row, :int(lens_b[row])], lp0[0, :int(lens_b[row])])
