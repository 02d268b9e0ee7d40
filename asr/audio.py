"""Audio file -> float32 mono waveform at a requested sample rate (soundfile reads, explicit resampling).

soundfile (libsndfile) reads WAV (8/16/24/32-bit int, float), FLAC, OGG/Vorbis, NIST SPHERE and,
with libsndfile >= 1.1, MP3. Multi-channel audio is mixed down to mono by averaging channels.
Resampling is explicit and always logged by the caller through ``orig_sr``; nothing is silently
resampled.
"""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import UserError


# libsndfile notes "data : <declared> (should be <present>)" when a WAV/W64/RF64 header declares
# more sample bytes than the file holds. Streaming writers that cannot seek back put a
# placeholder (0, 0x7FFFFFFF, 0xFFFFFFFF...) there instead: those are not truncation.
_DECLARED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZE = 0x7FFF0000
_SF_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError)
_MAX_POLYPHASE = 2000  # largest reduced rate torchaudio's resampling kernel is built for (16 MB)


class AudioError(UserError):
    """A bad audio file. The message names the file; ``reason`` says what is wrong without
    the path (for tables that list the path in a column of its own)."""

    def __init__(self, path: str, reason: str, message: str | None = None):
        super().__init__(message or f"{reason}: {path}")
        self.path, self.reason = path, reason


def audio_info(path: str | os.PathLike) -> "sf._SoundFileInfo":
    """The header of an audio file, checked: it exists, is not empty, is audio, is complete (a
    WAV whose data was cut short is refused) and holds samples. Reads no samples.

    Raises:
        AudioError: naming the file and what is wrong with it.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise AudioError(p, "audio file not found")
    if os.path.getsize(p) == 0:
        raise AudioError(p, "audio file is empty (0 bytes)")
    try:
        info = sf.info(p)
    except _SF_ERRORS as e:  # libsndfile's errors vary by format and version
        raise _read_error(p, e) from None
    m = _DECLARED.search(info.extra_info or "")
    if m and int(m.group(2)) < int(m.group(1)) < _STREAMING_SIZE:
        detail = f"header declares {m.group(1)} bytes of samples, the file holds {m.group(2)}"
        raise AudioError(p, f"audio file is truncated ({detail})",
                         f"audio file is truncated: {p} ({detail})")
    if info.frames == 0:
        raise AudioError(p, "audio file has no samples")
    return info


def _read_error(p: str, e: BaseException) -> AudioError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return AudioError(p, f"unreadable audio ({msg})", f"cannot read audio {p}: {msg}")


def read_audio(path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
               ) -> tuple[np.ndarray, int]:
    """Read (a segment of) an audio file as float32 ``(T, C)`` and its sample rate.

    Raises:
        AudioError: missing, empty, unreadable, truncated, sample-less or non-finite audio (the
            message names the file).
    """
    p = os.fspath(path)
    info = audio_info(p)
    try:
        start = int(round(offset * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        data, sr = sf.read(p, start=start, frames=frames, dtype="float32", always_2d=True)
    except _SF_ERRORS as e:  # e.g. "flac decoder lost sync" on a cut FLAC
        raise _read_error(p, e) from None
    if data.shape[0] == 0:
        if start > 0:
            end = f"({info.duration:.3f} s)"
            raise AudioError(p, f"segment offset {offset:g} s is past the end of the audio {end}",
                             f"segment offset {offset:g} s is past the end of {p} {end}")
        raise AudioError(p, "audio file has no samples")
    if not np.isfinite(data).all():
        raise AudioError(p, "audio file contains NaN or Inf samples")
    return data, sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """``(T, C)`` -> ``(T,)`` by averaging the channels."""
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited sinc resampling of a ``(T,)`` waveform to ``ceil(T * new_sr / orig_sr)``
    samples; identity if rates match.

    torchaudio's polyphase kernel has ``new/g x (orig/g + 2 * width)`` taps (g = gcd of the
    rates): small for usual rates (44.1 kHz -> 16 kHz: 160 x ~450) but gigabytes for rates that
    share no factor (22 051 Hz -> 16 kHz: 16000 x 22 000). Such ratios go to soxr instead.
    """
    if orig_sr == new_sr:
        return wave
    g = math.gcd(orig_sr, new_sr)
    if max(orig_sr, new_sr) // g <= _MAX_POLYPHASE:
        return AF.resample(wave, orig_sr // g, new_sr // g)
    import soxr  # a librosa dependency

    n = -(-wave.shape[-1] * new_sr // orig_sr)
    out = soxr.resample(wave.numpy().astype(np.float32, copy=False), orig_sr, new_sr, "HQ")
    out = np.pad(out[:n], (0, max(0, n - len(out))))
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def load_audio(path: str | os.PathLike, sample_rate: int, offset: float = 0.0,
               duration: float | None = None) -> torch.Tensor:
    """Load a file as a float32 mono ``(T,)`` tensor at ``sample_rate`` Hz."""
    data, sr = read_audio(path, offset, duration)
    wave = torch.from_numpy(np.ascontiguousarray(to_mono(data)))
    return resample(wave, sr, sample_rate)


def decode_audio(data: bytes, sample_rate: int, name: str = "<audio bytes>") -> torch.Tensor:
    """Encoded audio held in memory (a shard member: WAV, FLAC...) -> float32 mono ``(T,)`` at
    ``sample_rate`` Hz, checked like :func:`read_audio`; ``name`` goes into error messages."""
    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except _SF_ERRORS as e:
        raise _read_error(name, e) from None
    if samples.shape[0] == 0:
        raise AudioError(name, "audio file has no samples")
    if not np.isfinite(samples).all():
        raise AudioError(name, "audio file contains NaN or Inf samples")
    return resample(torch.from_numpy(np.ascontiguousarray(to_mono(samples))), sr, sample_rate)


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


def add_noise(wave: torch.Tensor, snr_db: float, gen: torch.Generator) -> torch.Tensor:
    """Add white Gaussian noise at ``snr_db`` dB below the wave's mean power (silence stays)."""
    power = float(wave.pow(2).mean()) if wave.numel() else 0.0
    if power == 0.0:
        return wave
    noise = torch.randn(wave.shape, generator=gen, dtype=wave.dtype)
    return wave + noise * math.sqrt(power / 10.0 ** (snr_db / 10.0))


def speed_perturb(wave: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Change speed (tempo and pitch) by ``factor`` as Kaldi/ESPnet do: resample by 1/factor and
    play at the original rate. ``factor`` > 1 makes the audio shorter."""
    return resample(wave, sample_rate, perturbed_rate(sample_rate, factor))


class AudioReader:
    """An open audio file read in float32 blocks, for audio of any length (long-form
    transcription never holds a whole recording). Every read is checked.

    Example:
        >>> with AudioReader("talk.flac") as r:
        ...     block = r.read(r.sr)  # (up to sr, C) samples of all channels
    """

    def __init__(self, path: str | os.PathLike):
        p = os.fspath(path)
        audio_info(p)  # missing, empty (0 bytes), unreadable, truncated or without samples
        try:
            self.f = sf.SoundFile(p)
        except _SF_ERRORS as e:
            raise _read_error(p, e) from None
        self.path = p
        self.sr = self.f.samplerate

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` samples of all channels, (frames, C); fewer (or none) at the end."""
        try:
            block = self.f.read(frames, dtype="float32", always_2d=True)
        except _SF_ERRORS as e:
            raise _read_error(self.path, e) from None
        if not np.isfinite(block).all():
            raise AudioError(self.path, "audio file contains NaN or Inf samples")
        return block

    def read_mono(self, frames: int) -> np.ndarray:
        """:meth:`read` mixed down to mono, (frames,)."""
        return np.ascontiguousarray(to_mono(self.read(frames)))


def pcm_stream(f, rate: int | None, channels: int = 1, chunk_samples: int = 1600,
               fmt: str = "auto"):
    """16-bit PCM from a byte stream (a pipe: nothing is seeked) -> ``(rate, chunks)``: the
    sample rate and an iterator of float32 mono ``(N,)`` tensors of ``chunk_samples`` frames.

    ``fmt``: "raw" (headerless little-endian 16-bit at ``rate`` Hz with ``channels``), "wav"
    (a RIFF header first; its rate and channels win) or "auto" (WAV when the stream starts
    with ``RIFF``). Raises UserError for a WAV that is not 16-bit PCM, a stream that ends
    inside a sample, or no audio at all.
    """
    head = f.read(4)
    is_wav = fmt == "wav" or (fmt == "auto" and head == b"RIFF")
    left = None  # bytes of audio still to read (None: until the stream ends)
    if is_wav:
        rate, channels, left = _wav_header(f, head)
    elif rate is None:
        raise UserError("raw PCM on standard input needs its sample rate (--rate)")
    frame = 2 * channels

    def chunks():
        nonlocal left
        pending, got = (b"" if is_wav else head), 0
        while True:
            want = chunk_samples * frame - len(pending)
            block = f.read(want if left is None else min(want, left))
            if left is not None:
                left -= len(block)
            data = pending + (block or b"")
            if not block and len(data) < frame:
                if data:
                    raise UserError(f"the audio stream ended inside a sample ({len(data)} stray "
                                    "bytes): is it 16-bit PCM?")
                if not got:
                    raise UserError("no audio on the input stream")
                return
            n = len(data) // frame * frame
            pending = data[n:]
            pcm = np.frombuffer(data[:n], dtype="<i2").reshape(-1, channels)
            got += len(pcm)
            yield torch.from_numpy(to_mono(pcm.astype(np.float32) / 32768.0).copy())

    return rate, chunks()


def _wav_header(f, head: bytes) -> tuple[int, int, int | None]:
    """Read a RIFF/WAVE header up to its data chunk: (rate, channels, data bytes or None when
    the size is a streaming placeholder), 16-bit PCM only."""
    rest = f.read(8)
    if head != b"RIFF" or len(rest) < 8 or rest[4:8] != b"WAVE":
        raise UserError("the input stream is not a WAV file (no RIFF/WAVE header)")
    rate = channels = None
    while True:
        hdr = f.read(8)
        if len(hdr) < 8:
            raise UserError("the WAV stream ended before its data chunk")
        cid, size = hdr[:4], int.from_bytes(hdr[4:], "little")
        if cid == b"data":
            if rate is None:
                raise UserError("the WAV stream has no fmt chunk before its data")
            return rate, channels, None if size in (0, 0xFFFFFFFF) or size >= _STREAMING_SIZE \
                else size
        body = f.read(size + (size & 1))
        if cid == b"fmt ":
            tag, channels, rate = (int.from_bytes(body[0:2], "little"),
                                   int.from_bytes(body[2:4], "little"),
                                   int.from_bytes(body[4:8], "little"))
            bits = int.from_bytes(body[14:16], "little")
            if not channels or not rate:
                raise UserError("the WAV stream's fmt chunk has no channels or no sample rate")
            if tag not in (1, 0xFFFE) or bits != 16:
                raise UserError(f"the WAV stream holds {bits}-bit samples (format {tag}); "
                                "asr stream reads 16-bit PCM (e.g. sox ... -b 16 -e signed)")
