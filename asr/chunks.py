"""Long audio -> utterance-sized chunks, and chunks' words -> one transcript (stitching).

Two ways to cut a recording (:func:`iter_chunks`), both reading blocks (never the whole file):

- ``segment="pause"`` (default): cut at pauses into utterance-sized segments (:mod:`asr.segment`;
  at most ``chunk_seconds`` each), found by energy or by silero-vad (``ChunkConfig.endpoint``,
  :mod:`asr.vad`). Models trained on single utterances need this: on 60 minutes
  of concatenated AN4 utterances, fixed windows doubled the WER of decoding the utterances one
  by one, pause segments did not (docs/benchmarks.md). A file no longer than ``whole_seconds``
  (the model's longest training utterance, see :class:`~asr.transcribe.Transcriber`; at most
  ``chunk_seconds``) is one segment, decoded whole, exactly as ``asr evaluate`` decodes it.
- ``segment="fixed"``: overlapping windows (default 30 s with 5 s overlap). Chunk ``k`` starts at
  ``k * (chunk - overlap)`` seconds. Neighbouring chunks are joined inside their overlap, at the
  point nearest its middle that lies between words in both (:func:`choose_cut`), so each chunk
  contributes roughly its central region, and no word is cut, doubled or merged at a seam.

:class:`Stitcher` merges the chunks' aligned words into the file's word list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import torch

from asr.audio import AudioReader, resample, to_mono
from asr.decode.types import TokenSpan
from asr.errors import UserError
from asr.segment import (FLOOR_FRAMES, FRAME_SECONDS, find_pause, frame_energies_db,
                         noise_floor_db, quietest_cut)
from asr.vad import check_endpoint

SEGMENTS = ("pause", "fixed")
PAUSE_DETECTORS = ("vad", "energy")  # the model's blanks are for streaming (asr.stream)


@dataclass
class ChunkConfig:
    """Long-form chunking.

    Attributes:
        segment: "pause" cuts the audio at pauses into utterance-sized segments, decoded one by
            one (:mod:`asr.segment`); "fixed" decodes overlapping fixed windows and joins them
            at whole words.
        chunk_seconds: "fixed": audio per chunk; "pause": the longest segment (one with no
            pause is cut at its quietest point in its second half).
        overlap_seconds: "fixed" only: audio shared by neighbouring chunks; it should hold a
            pause that both chunks see whole (a few words' worth: with a sub-second overlap, a
            word cut by a chunk edge can be merged into its neighbour).
        pause_seconds: "pause" only: the shortest silence that ends a segment.
        pause_db: "pause" with the energy detector: frames this far above the noise floor
            are speech.
        endpoint: "pause" only: what decides speech from non-speech: "energy" (above the
            noise floor) or "vad" (silero-vad, the optional package: far fewer cuts inside
            words in noise, a WER gain only in babble: docs/benchmarks.md, "Endpointing").
        whole_seconds: "pause" only: a file no longer than this (or ``chunk_seconds``, if
            shorter) is one segment; None: ``chunk_seconds``. A file of several utterances
            decoded whole is decoded like one long utterance: on 10-25 s files of AN4
            utterances that doubled the WER of cutting them at pauses (docs/benchmarks.md).
        batch_size: chunks per forward pass.
    """

    chunk_seconds: float = 30.0
    overlap_seconds: float = 5.0
    batch_size: int = 4
    segment: str = "pause"
    pause_seconds: float = 0.25
    pause_db: float = 16.0
    whole_seconds: float | None = None
    endpoint: str = "energy"

    def __post_init__(self) -> None:
        if self.segment == "pause":
            if self.endpoint not in PAUSE_DETECTORS:
                raise UserError(f"long audio is cut at pauses found by one of "
                                f"{', '.join(PAUSE_DETECTORS)}, got '{self.endpoint}' (the "
                                f"model's blanks endpoint asr stream only)")
            check_endpoint(self.endpoint)
        if self.overlap_seconds < 0 or (self.segment == "fixed"
                                         and self.overlap_seconds >= self.chunk_seconds):
            raise UserError(f"overlap ({self.overlap_seconds} s) must be >= 0 and shorter than "
                            f"the chunk ({self.chunk_seconds} s)")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if self.segment not in SEGMENTS:
            raise UserError(f"segment must be one of {', '.join(SEGMENTS)}, got '{self.segment}'")
        if self.segment == "pause" and not 0 < self.pause_seconds < self.chunk_seconds / 2:
            raise UserError(f"pause ({self.pause_seconds} s) must be > 0 and shorter than half "
                            f"the chunk ({self.chunk_seconds} s)")
        if self.segment == "pause" and self.pause_db <= 0:
            raise UserError(f"pause_db must be > 0, got {self.pause_db}")
        if self.whole_seconds is not None and not self.whole_seconds > 0:
            raise UserError(f"whole_seconds must be > 0, got {self.whole_seconds}")

    @property
    def overlap(self) -> float:
        """Seconds each chunk after the first shares with the one before."""
        return self.overlap_seconds if self.segment == "fixed" else 0.0


class Chunk(NamedTuple):
    start: float  # seconds from the start of the file
    wave: torch.Tensor  # (T,) float32 mono at the model's rate
    first: bool
    last: bool


def iter_chunks(path: str, sample_rate: int, cfg: ChunkConfig) -> Iterator[Chunk]:
    """Yield the chunks of an audio file, mono and resampled to ``sample_rate``: segments cut at
    pauses (``cfg.segment == "pause"``) or overlapping fixed windows.

    Raises:
        UserError: missing, unreadable, empty or non-finite audio (message names the file).
    """
    if cfg.segment == "pause":
        yield from _pause_segments(path, sample_rate, cfg)
    else:
        yield from _fixed_chunks(path, sample_rate, cfg)


def _fixed_chunks(path: str, sample_rate: int, cfg: ChunkConfig) -> Iterator[Chunk]:
    """Reads ``chunk`` frames once, then ``chunk - overlap`` frames per chunk: no single read,
    and no buffer, exceeds one chunk (plus the next block, read ahead to detect the end)."""
    with AudioReader(path) as r:
        sr = r.sr
        size = max(1, int(round(cfg.chunk_seconds * sr)))
        stride = max(1, int(round((cfg.chunk_seconds - cfg.overlap_seconds) * sr)))
        buf = r.read(size)
        if buf.shape[0] == 0:
            raise UserError(f"audio file has no samples: {path}")
        start, first = 0, True
        while True:
            # Read the next block before yielding, so the last chunk is known without trusting
            # the header's frame count.
            new = r.read(stride) if buf.shape[0] >= size else buf[:0]
            last = new.shape[0] == 0
            wave = resample(torch.from_numpy(to_mono(buf)), sr, sample_rate)
            yield Chunk(start / sr, wave, first, last)
            if last:
                return
            buf = np.concatenate([buf[stride:], new])
            start += stride
            first = False


def _pause_segments(path: str, sample_rate: int, cfg: ChunkConfig) -> Iterator[Chunk]:
    """Reads one second at a time until the buffer holds a pause (or ``chunk_seconds``); the
    buffer never exceeds one chunk plus one block. A file that ends within the first chunk is
    one segment."""
    with AudioReader(path) as r:
        sr = r.sr
        hop = max(1, round(sr * FRAME_SECONDS))
        block, size = max(hop, sr), max(hop, int(round(cfg.chunk_seconds * sr)))
        min_pause = max(1, round(cfg.pause_seconds / FRAME_SECONDS))
        whole = size if cfg.whole_seconds is None else min(size, round(cfg.whole_seconds * sr))
        buf = r.read_mono(block)
        if len(buf) == 0:
            raise UserError(f"audio file has no samples: {path}")
        while len(buf) <= whole:  # a file no longer than that is decoded whole
            new = r.read_mono(block)
            if len(new) == 0:
                yield Chunk(0.0, resample(torch.from_numpy(buf), sr, sample_rate), True, True)
                return
            buf = np.concatenate([buf, new])
        history = np.zeros(0)  # energies of the last FLOOR_FRAMES frames already cut off
        vad = _VadBuffer(sr) if cfg.endpoint == "vad" else None
        start, first, eof = 0, True, False
        if vad is not None:
            vad.feed(buf, eof)
        while True:
            energy = frame_energies_db(buf, hop)
            if vad is None:
                floor = noise_floor_db(np.concatenate([history, energy]))
                speech, score = energy > floor + cfg.pause_db, energy
            else:
                speech, score = vad.frames(len(energy))
            cut = find_pause(speech, min_pause, limit=size // hop)
            if cut is None and not eof and len(buf) <= size:
                new = r.read_mono(block)
                eof = len(new) == 0
                buf = np.concatenate([buf, new])
                if vad is not None:
                    vad.feed(new, eof)
                continue
            if cut is not None:
                end = cut * hop
            elif len(buf) > size:  # no pause in a whole chunk
                end = quietest_cut(score[:size // hop], min_pause) * hop
            else:  # the rest of the file
                end = len(buf)
            seg, buf = buf[:end], buf[end:]
            history = np.concatenate([history, energy[:end // hop]])[-FLOOR_FRAMES:]
            if vad is not None:
                vad.drop(end // hop)
            if eof and len(buf) == 0:
                last = True
            elif len(buf) == 0:  # the cut fell exactly at the end of what was read
                buf = r.read_mono(block)
                eof = last = len(buf) == 0
                if vad is not None:
                    vad.feed(buf, eof)
            else:
                last = False
            wave = resample(torch.from_numpy(np.ascontiguousarray(seg)), sr, sample_rate)
            yield Chunk(start / sr, wave, first, last)
            if last:
                return
            start += end
            first = False


class _VadBuffer:
    """silero-vad's decisions for the 10 ms frames of the buffer not yet cut off."""

    def __init__(self, sr: int):
        from asr.vad import VadFrames

        self.det = VadFrames(sr)
        self.speech, self.prob = np.zeros(0, bool), np.zeros(0)

    def feed(self, samples: np.ndarray, eof: bool) -> None:
        self.speech = np.concatenate([self.speech, self.det.accept(samples, final=eof)])
        self.prob = np.concatenate([self.prob, self.det.last_probs])

    def frames(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Decisions and probabilities of the buffer's first ``n`` frames; frames the detector
        has not reached yet (the last window's few ms) count as non-speech."""
        pad = max(0, n - len(self.speech))
        return (np.concatenate([self.speech, np.zeros(pad, bool)])[:n],
                np.concatenate([self.prob, np.zeros(pad)])[:n])

    def drop(self, n: int) -> None:
        self.speech, self.prob = self.speech[n:], self.prob[n:]


Group = tuple[str, list[TokenSpan]]  # a word and its tokens' spans (frames from the file start)


def _gaps(words: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """Closed intervals of [lo, hi] that no word ``(start, end)`` covers; a zero-length one (two
    words touching) only strictly inside, since a chunk cannot see past its edges."""
    out, prev = [], lo
    for s, e in sorted(words):
        if e <= lo or s >= hi:
            continue
        if s > prev or (s == prev and lo < s < hi):
            out.append((prev, s))
        prev = max(prev, e)
    if prev < hi:
        out.append((prev, hi))
    return out


def choose_cut(a: list[tuple[float, float]], b: list[tuple[float, float]], lo: float, hi: float
               ) -> float:
    """Where to switch from chunk A's words to chunk B's inside their overlap [lo, hi]: the point
    nearest the middle that lies between words in *both* chunks, so that no word is cut or
    doubled; the middle itself when the two share no pause."""
    mid = (lo + hi) / 2
    ga, gb = _gaps(a, lo, hi), _gaps(b, lo, hi)
    common = [(max(x0, y0), min(x1, y1)) for x0, x1 in ga for y0, y1 in gb
              if max(x0, y0) <= min(x1, y1)]
    if not common:
        return mid
    x0, x1 = min(common, key=lambda g: max(g[0] - mid, 0.0, mid - g[1]))
    return min(max(mid, x0), x1)


class Stitcher:
    """One file's words, merged chunk by chunk (spans in frames from the file's start)."""

    def __init__(self, path: str):
        self.path = path
        self.kept: list[Group] = []
        self.pending: list[Group] = []  # the previous chunk's words, not yet cut
        self.pending_end = 0.0  # frame where the previous chunk ends
        self.cut = -math.inf  # frame from which pending words count
        self.score = 0.0
        self.chunks = 0
        self.text = ""  # the decoder's text, used when the file is one chunk
        self.duration = 0.0

    def add(self, groups: list[Group], start: float, end: float, first: bool, last: bool,
            overlap: bool = True) -> None:
        """Merge one chunk's words (the chunk spans frames [start, end) of the file).
        ``overlap`` False: the chunk follows the previous one without sharing audio (pause
        segments), so both keep all their words."""
        if not first:
            if overlap:
                cut = choose_cut(_bounds(self.pending), _bounds(groups), start, self.pending_end)
                self.kept += [g for g in self.pending if self.cut <= g[1][0].start < cut]
                self.cut = cut
            else:
                self.kept += self.pending
        self.pending, self.pending_end = groups, end
        if last:
            self.kept += [g for g in self.pending if g[1][0].start >= self.cut]
            self.pending = []


def _bounds(groups: list[Group]) -> list[tuple[float, float]]:
    return [(ss[0].start, ss[-1].end) for _, ss in groups]


