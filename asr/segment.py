"""Cut long audio at pauses: where a recording can be split into utterance-sized segments
without cutting a word, from per-frame speech decisions (:func:`find_pause`; the detectors are
in :mod:`asr.vad`), and the energy detector's own rule.

Models trained on single utterances (AN4's are 1-7 s) transcribe a stream of several utterances
badly: on 5 minutes of concatenated AN4 speech, fixed 30 s windows gave twice the WER of the
same utterances decoded one by one (docs/benchmarks.md). Cutting at pauses gives the model
inputs like those it was trained on.

Frames are 10 ms. A frame is speech when its energy is more than ``margin_db`` above the noise
floor; the floor is the 10th percentile of the frame energies of the last 10 s and the audio not yet
cut (a recording is quiet at least a tenth of the time, between words; the window follows
background noise that changes along a recording). A pause is a run of at least ``min_pause`` non-speech
frames that follows speech; a segment is cut at the middle of its first complete pause, so each
segment keeps some silence on both sides, as training utterances do.
"""

from __future__ import annotations

import numpy as np

FRAME_SECONDS = 0.01
FLOOR_PERCENTILE = 10.0
FLOOR_FRAMES = 1000  # the floor follows the last 10 s before a segment, plus the segment
DIGITAL_SILENCE_DB = -90.0


def frame_energies_db(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean-square energy (dB) of consecutive ``hop``-sample frames of mono ``x`` (a partial
    last frame is dropped)."""
    n = len(x) // hop
    if n == 0:
        return np.zeros(0)
    frames = x[:n * hop].astype(np.float64).reshape(n, hop)
    return 10.0 * np.log10((frames ** 2).mean(axis=1) + 1e-10)


def noise_floor_db(energy_db: np.ndarray) -> float:
    """The noise floor of a stretch of frames (inf when it has none). Digital silence (below
    -90 dB: zero padding, muted parts) is left out, or it would put the floor below the
    recording's real background noise and hide every pause in it."""
    live = energy_db[energy_db > DIGITAL_SILENCE_DB]
    return float(np.percentile(live, FLOOR_PERCENTILE)) if len(live) else np.inf


def find_cut(energy_db: np.ndarray, floor_db: float, margin_db: float, min_pause: int,
             limit: int | None = None) -> int | None:
    """The frame at which to end the first segment of ``energy_db``, or None to wait for more:
    :func:`find_pause` over the frames more than ``margin_db`` above ``floor_db`` (speech)."""
    return find_pause(energy_db > floor_db + margin_db, min_pause, limit)


def find_pause(speech: np.ndarray, min_pause: int, limit: int | None = None) -> int | None:
    """The frame at which to end the first segment, given each frame's speech decision from the
    segment's start (any detector: energy, silero-vad), or None to wait for more.

    Args:
        speech: (N,) bool, True where a frame is speech.
        min_pause: non-speech frames that make a pause.
        limit: the longest segment in frames: a pause must begin before it, and the cut is
            made no later than it.

    Returns:
        the middle of the first pause of ``min_pause`` frames or more between two speech frames
        (``limit`` if that is earlier); None if there is none yet.
    """
    idx = np.flatnonzero(speech)
    gaps = np.flatnonzero(np.diff(idx) > min_pause)  # speech frames followed by a pause
    if len(gaps) == 0:
        return None
    start, end = idx[gaps[0]] + 1, idx[gaps[0] + 1]  # the pause is frames [start, end)
    if limit is not None and start >= limit:
        return None
    mid = int((start + end) // 2)
    return mid if limit is None else min(mid, limit)


def quietest_cut(energy_db: np.ndarray, window: int) -> int:
    """Where to force a cut in a stretch with no pause: the middle of the quietest ``window``
    frames in its second half (a segment may not grow without bound). ``energy_db``: any
    per-frame score that is lower where quieter (energy, a speech probability)."""
    n = len(energy_db)
    if n < 2 * window:
        return max(1, n // 2)
    lo = n // 2
    sums = np.convolve(energy_db[lo:], np.ones(window), mode="valid")
    return int(lo + np.argmin(sums) + window // 2)
