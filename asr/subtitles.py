"""Transcripts rendered for people: plain text, JSON, and subtitles (SRT, WebVTT) from timed words.

Words are grouped greedily in time order; a new cue starts when adding the next word would make the
cue longer than ``max_seconds`` or ``max_chars``, or when the pause before it exceeds ``max_gap``.
Cue text is wrapped into lines of at most ``line_chars`` characters (a longer word stays whole).
:func:`render` writes a transcript in any of :data:`FORMATS`.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from asr.decode.types import WordTiming


@dataclass
class CueConfig:
    """Cue grouping limits.

    Attributes:
        max_seconds: longest cue (from its first word's start to its last word's end).
        max_chars: most characters of text in a cue (spaces included, line breaks not).
        line_chars: wrap width of a cue's lines.
        max_gap: a pause longer than this (seconds) between words starts a new cue.
    """

    max_seconds: float = 5.0
    max_chars: int = 84
    line_chars: int = 42
    max_gap: float = 1.0

    def __post_init__(self) -> None:
        if self.max_seconds <= 0 or self.max_chars < 1 or self.line_chars < 1 or self.max_gap < 0:
            raise ValueError("cue limits must be positive")


class Cue(NamedTuple):
    start: float  # seconds
    end: float  # seconds
    text: str  # may hold line breaks


def group_cues(words: Sequence[WordTiming], cfg: CueConfig | None = None) -> list[Cue]:
    """Group timed words into cues within ``cfg``'s limits.

    Example:
        >>> group_cues([WordTiming("HI", 0.0, 0.4, 1.0), WordTiming("THERE", 3.0, 3.5, 1.0)])
        [Cue(start=0.0, end=0.4, text='HI'), Cue(start=3.0, end=3.5, text='THERE')]
    """
    cfg = cfg or CueConfig()
    groups: list[list[WordTiming]] = []
    for w in sorted(words, key=lambda w: w.start):
        cur = groups[-1] if groups else None
        if cur is not None:
            chars = sum(len(x.word) for x in cur) + len(cur) + len(w.word)
            fits = (w.end - cur[0].start <= cfg.max_seconds and chars <= cfg.max_chars
                    and w.start - cur[-1].end <= cfg.max_gap)
            if fits:
                cur.append(w)
                continue
        groups.append([w])
    cues = []
    for g in groups:
        text = "\n".join(textwrap.wrap(" ".join(w.word for w in g), cfg.line_chars,
                                       break_long_words=False, break_on_hyphens=False))
        cues.append(Cue(g[0].start, max(g[-1].end, g[0].start + 0.001), text))
    # Alignment times never overlap, but keep the cues strictly ordered whatever the input.
    for i in range(len(cues) - 1):
        if cues[i].end > cues[i + 1].start:
            cues[i] = cues[i]._replace(end=max(cues[i].start, cues[i + 1].start))
    return cues


def format_timestamp(seconds: float, decimal: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal="."``, ``HH:MM:SS.mmm`` (WebVTT)."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered cues separated by blank lines."""
    blocks = [f"{i}\n{format_timestamp(c.start)} --> {format_timestamp(c.end)}\n{c.text}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: the ``WEBVTT`` header, then cues separated by blank lines."""
    blocks = [f"{format_timestamp(c.start, '.')} --> {format_timestamp(c.end, '.')}\n"
              f"{_vtt_escape(c.text)}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def write_subtitles(words: Sequence[WordTiming], fmt: str, cfg: CueConfig | None = None) -> str:
    """Subtitle text of ``words`` in ``fmt`` ("srt" or "vtt")."""
    cues = group_cues(words, cfg)
    if fmt == "srt":
        return to_srt(cues)
    if fmt == "vtt":
        return to_vtt(cues)
    raise ValueError(f"subtitle format must be srt or vtt, got {fmt!r}")


FORMATS = ("txt", "json", "srt", "vtt")


def transcript_json(path: str, duration: float, hyp) -> dict:
    """A transcript (an audio file's :class:`~asr.decode.types.Hypothesis`) as a JSON object."""
    return {"audio": path, "duration": round(duration, 3), "text": hyp.text,
            "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                       "confidence": round(w.confidence, 4)} for w in hyp.words]}


def render(path: str, duration: float, hyp, fmt: str, cues: CueConfig | None = None) -> str:
    """A transcript as the text of a ``fmt`` file (txt, json, srt or vtt)."""
    if fmt == "txt":
        return hyp.text + "\n"
    if fmt == "json":
        return json.dumps(transcript_json(path, duration, hyp), ensure_ascii=False, indent=2) + "\n"
    return write_subtitles(hyp.words, fmt, cues)
