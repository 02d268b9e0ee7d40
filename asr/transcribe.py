"""Long-form transcription: audio files of any length -> timed words -> txt, json, srt or vtt.

Audio is never held whole. Each file is read in blocks with ``soundfile.SoundFile.read(frames)``
and decoded in one of two ways:

- ``segment="pause"`` (default): cut at pauses into utterance-sized segments (:mod:`asr.segment`;
  at most ``chunk_seconds`` each), decoded one by one. Models trained on single utterances need
  this: on 60 minutes of concatenated AN4 utterances, fixed windows doubled the WER of decoding
  the utterances one by one, pause segments did not (docs/benchmarks.md).
- ``segment="fixed"``: overlapping windows (default 30 s with 5 s overlap). Chunk ``k`` starts at
  ``k * (chunk - overlap)`` seconds. Neighbouring chunks are joined inside their overlap, at the
  point nearest its middle that lies between words in both (so each chunk contributes roughly
  its central region, and no word is cut, doubled or merged with its neighbour at a seam).

Chunks from several files share a batch (``batch_size`` chunks per forward pass).

Inputs are files, directories (searched recursively for audio extensions) or ``@list.txt`` (one
path a line). A file that cannot be read is reported and skipped; the others still go through.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np
import soundfile as sf
import torch

from asr.audio import audio_info, resample
from asr.decode.align import align_tokens, group_words, timed_word
from asr.decode.beam import BeamDecoder
from asr.decode.greedy import ctc_best_path
from asr.decode.types import Hypothesis, TokenSpan
from asr.errors import UserError
from asr.features import apply_cmvn
from asr.segment import (FLOOR_FRAMES, FRAME_SECONDS, find_cut, frame_energies_db,
                         noise_floor_db, quietest_cut)
from asr.tokenizer import SPACE

SEGMENTS = ("pause", "fixed")
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist",
                              ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf", ".rf64",
                              ".voc", ".wv"})


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
        pause_db: "pause" only: frames this far above the noise floor are speech.
        batch_size: chunks per forward pass.
    """

    chunk_seconds: float = 30.0
    overlap_seconds: float = 5.0
    batch_size: int = 4
    segment: str = "pause"
    pause_seconds: float = 0.25
    pause_db: float = 16.0

    def __post_init__(self) -> None:
        if self.segment not in SEGMENTS:
            raise UserError(f"segment must be one of {', '.join(SEGMENTS)}, got '{self.segment}'")
        if self.overlap_seconds < 0 or (self.segment == "fixed"
                                         and self.overlap_seconds >= self.chunk_seconds):
            raise UserError(f"overlap ({self.overlap_seconds} s) must be >= 0 and shorter than "
                            f"the chunk ({self.chunk_seconds} s)")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if self.segment == "pause" and not 0 < self.pause_seconds < self.chunk_seconds / 2:
            raise UserError(f"pause ({self.pause_seconds} s) must be > 0 and shorter than half "
                            f"the chunk ({self.chunk_seconds} s)")
        if self.segment == "pause" and self.pause_db <= 0:
            raise UserError(f"pause_db must be > 0, got {self.pause_db}")

    @property
    def overlap(self) -> float:
        """Seconds each chunk after the first shares with the one before."""
        return self.overlap_seconds if self.segment == "fixed" else 0.0


class Chunk(NamedTuple):
    start: float  # seconds from the start of the file
    wave: torch.Tensor  # (T,) float32 mono at the model's rate
    first: bool
    last: bool


class Transcript(NamedTuple):
    path: str
    duration: float  # seconds
    hypothesis: Hypothesis  # words and times are absolute (seconds from the file's start)


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files as given, directories searched recursively for audio files (sorted), ``@list``
    files read for one path a line (relative paths are relative to the list's folder)."""
    out: list[str] = []
    for item in items:
        if item.startswith("@"):
            lst = Path(item[1:])
            if not lst.is_file():
                raise UserError(f"list file not found: {lst}")
            for line in lst.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    out.append(str(p if p.is_absolute() else lst.parent / p))
        elif os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise UserError(f"no audio files under {item}")
            out += found
        else:
            out.append(item)
    return out


def _read_error(path: str, e: Exception) -> UserError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UserError(f"cannot read audio {path}: {msg}")


class _Reader:
    """An open audio file read in float32 blocks of all its channels; every read is checked."""

    def __init__(self, path: str):
        audio_info(path)  # missing, empty (0 bytes), unreadable, truncated or without samples
        try:
            self.f = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
            raise _read_error(path, e) from None
        self.path = path
        self.sr = self.f.samplerate

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` samples, (frames, C); fewer (or none) at the end."""
        try:
            block = self.f.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise _read_error(self.path, e) from None
        if not np.isfinite(block).all():
            raise UserError(f"audio file contains NaN or Inf samples: {self.path}")
        return block


def _mono(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0])


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
    with _Reader(path) as r:
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
            wave = resample(torch.from_numpy(_mono(buf)), sr, sample_rate)
            yield Chunk(start / sr, wave, first, last)
            if last:
                return
            buf = np.concatenate([buf[stride:], new])
            start += stride
            first = False


def _pause_segments(path: str, sample_rate: int, cfg: ChunkConfig) -> Iterator[Chunk]:
    """Reads one second at a time until the buffer holds a pause (or ``chunk_seconds``); the
    buffer never exceeds one chunk plus one block."""
    with _Reader(path) as r:
        sr = r.sr
        hop = max(1, round(sr * FRAME_SECONDS))
        block, size = max(hop, sr), max(hop, int(round(cfg.chunk_seconds * sr)))
        min_pause = max(1, round(cfg.pause_seconds / FRAME_SECONDS))
        buf = _mono(r.read(block))
        if len(buf) == 0:
            raise UserError(f"audio file has no samples: {path}")
        history = np.zeros(0)  # energies of the last FLOOR_FRAMES frames already cut off
        start, first, eof = 0, True, False
        while True:
            energy = frame_energies_db(buf, hop)
            floor = noise_floor_db(np.concatenate([history, energy]))
            cut = find_cut(energy, floor, cfg.pause_db, min_pause, limit=size // hop)
            if cut is None and not eof and len(buf) <= size:
                new = _mono(r.read(block))
                eof = len(new) == 0
                buf = np.concatenate([buf, new])
                continue
            if cut is not None:
                end = cut * hop
            elif len(buf) > size:  # no pause in a whole chunk
                end = quietest_cut(energy[:size // hop], min_pause) * hop
            else:  # the rest of the file
                end = len(buf)
            seg, buf = buf[:end], buf[end:]
            history = np.concatenate([history, energy[:end // hop]])[-FLOOR_FRAMES:]
            if eof and len(buf) == 0:
                last = True
            elif len(buf) == 0:  # the cut fell exactly at the end of what was read
                buf = _mono(r.read(block))
                eof = last = len(buf) == 0
            else:
                last = False
            wave = resample(torch.from_numpy(np.ascontiguousarray(seg)), sr, sample_rate)
            yield Chunk(start / sr, wave, first, last)
            if last:
                return
            start += end
            first = False


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


class _FileState:
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


class Transcriber:
    """Decode long recordings chunk by chunk with a :class:`~asr.inference.Recognizer`.

    Pause segments do not overlap: their words are kept as they are. Overlapping fixed chunks
    are joined at whole words: inside their overlap, the switch happens at
    the point nearest the middle that falls between words in both chunks (:func:`choose_cut`).
    Joining token by token instead would drop or double a word boundary whenever the two chunks
    place it on different sides of a fixed seam. Word times and confidences come from each
    chunk's forced alignment.

    Args:
        rec: the model. decoder: a :class:`BeamDecoder`, or None for greedy decoding.
        cfg: chunking (``ChunkConfig()`` when None).

    Example:
        >>> tr = Transcriber(asr.load_model("model.pt"), None, ChunkConfig(chunk_seconds=30))
        >>> for path, result in tr.transcribe(["talk.flac"]):
        ...     print(result.hypothesis.text)
    """

    def __init__(self, rec, decoder: BeamDecoder | None = None, cfg: ChunkConfig | None = None):
        self.rec = rec
        self.decoder = decoder
        self.cfg = cfg or ChunkConfig()

    def transcribe(self, paths: list[str], progress=None
                   ) -> Iterator[tuple[str, Transcript | UserError]]:
        """Yield ``(path, Transcript)`` or ``(path, UserError)`` for each path, in input order.

        Args:
            progress: optional tqdm-like bar, advanced by the seconds of audio decoded.
        """
        done: dict[int, Transcript | UserError] = {}
        states: dict[int, _FileState] = {}
        batch: list[tuple[int, Chunk]] = []
        nxt = 0
        for i, chunk in self._stream(paths, done):
            if chunk is not None:
                states.setdefault(i, _FileState(paths[i]))
                batch.append((i, chunk))
                if len(batch) >= self.cfg.batch_size:
                    self._run(batch, states, done, progress)
                    batch = []
            else:
                states.pop(i, None)  # failed part way: drop what was decoded
                batch = [(j, c) for j, c in batch if j != i]
            while nxt in done:
                yield paths[nxt], done.pop(nxt)
                nxt += 1
        if batch:
            self._run(batch, states, done, progress)
        while nxt < len(paths):
            yield paths[nxt], done.pop(nxt)
            nxt += 1

    def _stream(self, paths: list[str], done: dict) -> Iterator[tuple[int, Chunk | None]]:
        sr = self.rec.cfg.features.sample_rate
        for i, p in enumerate(paths):
            try:
                for chunk in iter_chunks(p, sr, self.cfg):
                    yield i, chunk
            except UserError as e:
                done[i] = e
                yield i, None

    @torch.no_grad()
    def _run(self, batch: list[tuple[int, Chunk]], states: dict[int, _FileState],
             done: dict, progress) -> None:
        rec = self.rec
        fs, sr = rec.frame_seconds, rec.cfg.features.sample_rate
        feats = [apply_cmvn(rec.source.extract(c.wave), rec.cmvn) for _, c in batch]
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (B, T, F)
        if x.shape[1] > 0:
            log_probs, out_lens = rec.model(x.to(rec.device), lens.to(rec.device))
            log_probs, out_lens = log_probs.float().cpu(), out_lens.cpu()  # (B, T', V)
            out_lens = torch.where(lens > 0, out_lens, torch.zeros_like(out_lens))
        else:  # every chunk shorter than one analysis window
            log_probs = torch.zeros(len(batch), 0, len(rec.tokenizer.symbols))
            out_lens = torch.zeros(len(batch), dtype=torch.long)
        tok = rec.tokenizer
        kind = getattr(tok, "kind", "char")
        for b, ((i, c), hyp) in enumerate(zip(batch, self._decode(log_probs, out_lens))):
            st = states[i]
            seconds = c.wave.shape[0] / sr
            base = round(c.start / fs)  # the chunk's first frame, counted from the file start
            spans = [s._replace(start=base + s.start, end=base + s.end)
                     for s in align_tokens(log_probs[b, :int(out_lens[b])], hyp.tokens)]
            st.add(group_words(spans, tok.symbols, kind), c.start / fs,
                   (c.start + seconds) / fs, c.first, c.last, self.cfg.overlap > 0)
            st.score += hyp.score
            st.chunks += 1
            st.text = hyp.text
            st.duration = c.start + seconds
            if progress is not None:
                progress.update(seconds - (0 if c.first else self.cfg.overlap))
            if c.last:
                done[i] = self._finish(st)
                del states[i]

    def _finish(self, st: _FileState) -> Transcript:
        fs, tok = self.rec.frame_seconds, self.rec.tokenizer
        words = [timed_word(w, ss, fs) for w, ss in st.kept]
        text = st.text if st.chunks == 1 else " ".join(w.word for w in words)
        tokens, steps = [], []
        sep = tok.symbols.index(SPACE) if getattr(tok, "kind", "") == "char" else None
        for n, (_, ss) in enumerate(st.kept):
            if n and sep is not None:
                tokens.append(sep)
                steps.append(st.kept[n - 1][1][-1].end)
            tokens += [s.token for s in ss]
            steps += [s.start for s in ss]
        return Transcript(st.path, st.duration, Hypothesis(text, tokens, steps, words, st.score))

    def _decode(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[Hypothesis]:
        """Best hypothesis per chunk (no word timings: those come from the stitched spans)."""
        if self.decoder is not None:
            return [nb[0] for nb in self.decoder(log_probs, lens)]
        tok = self.rec.tokenizer
        return [Hypothesis(tok.decode(tokens), tokens, steps, [], score)
                for tokens, steps, score in ctc_best_path(log_probs, lens)]


# --- command line --------------------------------------------------------------------------------

FORMATS = ("txt", "json", "srt", "vtt")


def transcript_json(t: Transcript) -> dict:
    return {"audio": t.path, "duration": round(t.duration, 3), "text": t.hypothesis.text,
            "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                       "confidence": round(w.confidence, 4)} for w in t.hypothesis.words]}


def render(t: Transcript, fmt: str, cues=None) -> str:
    """A transcript as the text of a ``fmt`` file (txt, json, srt or vtt)."""
    import json

    from asr.subtitles import write_subtitles

    if fmt == "txt":
        return t.hypothesis.text + "\n"
    if fmt == "json":
        return json.dumps(transcript_json(t), ensure_ascii=False, indent=2) + "\n"
    return write_subtitles(t.hypothesis.words, fmt, cues)


def output_names(paths: list[str], fmt: str) -> list[str]:
    """A distinct output file name per input: its stem + ``.fmt`` (``-2``, ``-3``... on clashes)."""
    names, seen = [], set()
    for p in paths:
        stem, n = Path(p).stem, 1
        name = f"{stem}.{fmt}"
        while name in seen:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        seen.add(name)
        names.append(name)
    return names


def make_decoder(rec, a) -> BeamDecoder | None:
    """None (greedy) or a BeamDecoder, per ``--decoder``: auto picks beam search when --lm or
    --lexicon is given or a decode.yaml lies beside the model."""
    from asr.decode.tune import beam_config_from_args

    if a.decoder == "greedy":
        return None
    cfg, found = beam_config_from_args(a, a.model)
    if a.decoder == "auto" and not (found or cfg.lm or cfg.lexicon):
        return None
    return BeamDecoder(rec.tokenizer, cfg)


def run(a) -> int:
    """``asr transcribe``: returns 0, or 1 when some file could not be transcribed."""
    import sys

    from tqdm import tqdm

    from asr.inference import load_model
    from asr.manifest import atomic_write_text
    from asr.subtitles import CueConfig

    if a.format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}")
    paths = expand_inputs(a.inputs)
    if a.out is None and a.format in ("srt", "vtt") and len(paths) > 1:
        raise UserError(f"--format {a.format} with several inputs needs -o DIR")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = ChunkConfig(a.chunk_seconds, a.overlap_seconds, a.batch_size, a.segment,
                      a.pause_seconds, a.pause_db)
    try:
        cues = CueConfig(a.max_cue_seconds, a.max_cue_chars)
    except ValueError as e:
        raise UserError(str(e)) from None
    rec = load_model(a.model, a.device)
    tr = Transcriber(rec, make_decoder(rec, a), cfg)
    names = dict(zip(paths, output_names(paths, a.format))) if a.out else {}
    total = 0.0
    for p in paths:
        try:
            total += sf.info(p).duration
        except Exception:  # reported when it is read
            pass
    failed = 0
    with tqdm(total=round(total, 1), unit="s", disable=None if total >= 60 else True,
              file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
              "[{elapsed}<{remaining}]") as bar:
        for path, result in tr.transcribe(paths, bar):
            if isinstance(result, UserError):
                failed += 1
                bar.write(f"asr: error: {result}", file=sys.stderr)
                continue
            text = render(result, a.format, cues)
            if a.out is not None:
                atomic_write_text(Path(a.out) / names[path], text)
            elif a.format == "txt" and a.with_names:
                bar.write(f"{path}\t{text}", file=sys.stdout, end="")
            elif a.format == "json":
                import json

                bar.write(json.dumps(transcript_json(result), ensure_ascii=False),
                          file=sys.stdout)
            else:
                bar.write(text, file=sys.stdout, end="")
    if a.out is not None:
        print(f"{len(paths) - failed} transcript(s) written to {a.out}", file=sys.stderr)
    if failed:
        print(f"asr: {failed} of {len(paths)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0
