"""Audio file -> float32 mono waveform at a requested sample rate (soundfile reads, explicit resampling).

soundfile (libsndfile) reads WAV (8/16/24/32-bit int, float), FLAC, OGG/Vorbis, NIST SPHERE and,
with libsndfile >= 1.1, MP3. Multi-channel audio is mixed down to mono by averaging channels.
Resampling is explicit and always logged by the caller through ``orig_sr``; nothing is silently
resampled.
"""

from __future__ import annotations

import math
import os

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import UserError


def read_audio(path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
               ) -> tuple[np.ndarray, int]:
    """Read (a segment of) an audio file as float32 ``(T, C)`` and its sample rate.

    Raises:
        UserError: missing, unreadable, empty or non-finite audio (message names the file).
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise UserError(f"audio file not found: {p}")
    try:
        info = sf.info(p)
        start = int(round(offset * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        data, sr = sf.read(p, start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read audio {p}: {msg}") from None
    if data.shape[0] == 0:
        raise UserError(f"audio file has no samples: {p}")
    if not np.isfinite(data).all():
        raise UserError(f"audio file contains NaN or Inf samples: {p}")
    return data, sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """``(T, C)`` -> ``(T,)`` by averaging the channels."""
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited sinc resampling (torchaudio) of a ``(T,)`` waveform; identity if rates match."""
    if orig_sr == new_sr:
        return wave
    g = math.gcd(orig_sr, new_sr)
    return AF.resample(wave, orig_sr // g, new_sr // g)


def load_audio(path: str | os.PathLike, sample_rate: int, offset: float = 0.0,
               duration: float | None = None) -> torch.Tensor:
    """Load a file as a float32 mono ``(T,)`` tensor at ``sample_rate`` Hz."""
    data, sr = read_audio(path, offset, duration)
    wave = torch.from_numpy(np.ascontiguousarray(to_mono(data)))
    return resample(wave, sr, sample_rate)


def perturbed_rate(sample_rate: int, factor: float) -> int:
    """The virtual rate speed perturbation resamples to, rounded to 100 Hz so the polyphase
    filter stays small; the factor applied differs from the requested one by under 0.3%."""
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed factor must be in [0.5, 2], got {factor}")
    return sample_rate if factor == 1.0 else int(round(sample_rate / factor / 100.0)) * 100


def perturbed_length(num_samples: int, sample_rate: int, factor: float) -> int:
    """Samples after :func:`speed_perturb` (torchaudio's resample yields ceil(N * new / old))."""
    new = perturbed_rate(sample_rate, factor)
    return -(-num_samples * new // sample_rate)


def speed_perturb(wave: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Change speed (tempo and pitch) by ``factor`` as Kaldi/ESPnet do: resample by 1/factor and
    play at the original rate. ``factor`` > 1 makes the audio shorter."""
    return resample(wave, sample_rate, perturbed_rate(sample_rate, factor))
