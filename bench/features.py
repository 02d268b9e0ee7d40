"""Benchmark: feature extraction speed (times real time on one thread) for Kaldi fbank, log-mel
and MFCC, ours (:class:`asr.features.FeatureExtractor`, as training and decoding use it)
against torchaudio called directly and librosa, on the same audio in the same run.

The peers get the same settings: 25 ms window, 10 ms hop, 80 mel bins (MFCC: the config's
default 13 coefficients of the 80 bins), 16 kHz. Kaldi fbank has no librosa counterpart;
its librosa row is librosa's log-mel spectrogram at the same window, hop and bins, the nearest
thing a librosa user would run. Audio is read once beforehand (not timed); each extractor runs
over all files ``--repeats`` times and the best pass counts.

    python bench/features.py MANIFEST [--max-utts 200] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.transforms as AT

from asr.audio import load_audio
from asr.features import FeatureConfig, FeatureExtractor
from asr.manifest import read_manifest


def best_time(fn, waves, repeats: int) -> float:
    fn(waves[0])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for w in waves:
            fn(w)
        best = min(best, time.perf_counter() - t)
    return best


def extractors(kind: str, sr: int):
    cfg = FeatureConfig(kind=kind, sample_rate=sr, n_mels=80)
    ours = FeatureExtractor(cfg)
    win, hop, n_fft = cfg.win_length, cfg.hop_length, 512
    mel_kw = dict(sr=sr, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=cfg.n_mels,
                  center=True, pad_mode="constant")
    if kind == "fbank":
        ta = lambda w: kaldi.fbank(w.unsqueeze(0) * 32768.0, num_mel_bins=cfg.n_mels,
                                   frame_length=cfg.win_ms, frame_shift=cfg.hop_ms, dither=0.0,
                                   energy_floor=0.0, sample_frequency=sr)
        lr = lambda w: np.log(librosa.feature.melspectrogram(y=w.numpy(), **mel_kw) + 1e-10)
    elif kind == "logmel":
        mel = AT.MelSpectrogram(sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop,
                                n_mels=cfg.n_mels, norm="slaney", mel_scale="slaney")
        ta = lambda w: torch.log(mel(w) + 1e-10)
        lr = lambda w: np.log(librosa.feature.melspectrogram(y=w.numpy(), **mel_kw) + 1e-10)
    else:
        mf = AT.MFCC(sample_rate=sr, n_mfcc=cfg.n_mfcc,
                     melkwargs=dict(n_fft=n_fft, win_length=win, hop_length=hop, n_mels=cfg.n_mels,
                                    norm="slaney", mel_scale="slaney"))
        ta = lambda w: mf(w)
        lr = lambda w: librosa.feature.mfcc(y=w.numpy(), n_mfcc=cfg.n_mfcc, **mel_kw)
    return {"ours (FeatureExtractor)": lambda w: ours(w), "torchaudio": ta, "librosa": lr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--max-utts", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    utts = read_manifest(a.manifest)[: a.max_utts]
    sr = 16000
    waves = [torch.from_numpy(np.ascontiguousarray(load_audio(u.audio_path, sr))).float()
             for u in utts]
    audio_s = sum(len(w) for w in waves) / sr
    rows = []
    with torch.no_grad():
        for kind in ("fbank", "logmel", "mfcc"):
            for name, fn in extractors(kind, sr).items():
                t = best_time(fn, waves, a.repeats)
                rows.append({"kind": kind, "extractor": name, "seconds": t, "x_real_time": audio_s / t})
    print(f"# features: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"1 thread, {len(waves)} files, {audio_s:.0f} s of audio, best of {a.repeats}")
    print("| features | extractor | seconds | x real time |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['extractor']} | {r['seconds']:.3f} | {r['x_real_time']:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"audio_s": audio_s, "files": len(waves), "rows": rows},
                                           indent=2) + "\n")


if __name__ == "__main__":
    main()
