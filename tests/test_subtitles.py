"""SRT/WebVTT writers and cue grouping, checked with strict parsers of both grammars."""

from __future__ import annotations

import re

import pytest

from asr.decode.types import WordTiming
from asr.subtitles import CueConfig, format_timestamp, group_cues, to_srt, to_vtt, write_subtitles

_SRT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
_VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"


def _secs(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Strict SubRip: blocks ``n / start --> end / text lines`` separated by exactly one blank
    line, numbered 1, 2, ...; times increasing; every block has text. Raises ValueError."""
    if text == "":
        return []
    if not text.endswith("\n") or text.endswith("\n\n"):
        raise ValueError("SRT must end with exactly one newline")
    cues, prev_end = [], 0.0
    for n, block in enumerate(text[:-1].split("\n\n"), 1):
        lines = block.split("\n")
        if len(lines) < 3 or lines[0] != str(n):
            raise ValueError(f"block {n}: bad index or missing text: {block!r}")
        m = re.fullmatch(_SRT_TIME + " --> " + _SRT_TIME, lines[1])
        if not m:
            raise ValueError(f"block {n}: bad timing line {lines[1]!r}")
        start, end = _secs(*m.groups()[:4]), _secs(*m.groups()[4:])
        if not prev_end <= start < end:
            raise ValueError(f"block {n}: times out of order")
        if any(not line.strip() for line in lines[2:]):
            raise ValueError(f"block {n}: blank text line")
        cues.append((start, end, "\n".join(lines[2:])))
        prev_end = end
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """Strict WebVTT subset: ``WEBVTT`` header line, blank line, then cues ``start --> end / text``
    separated by one blank line; text without ``-->``, raw ``<`` or bare ``&``."""
    if not text.startswith("WEBVTT\n\n"):
        raise ValueError("missing WEBVTT header")
    body = text[len("WEBVTT\n\n"):]
    if body == "":
        return []
    if not body.endswith("\n") or body.endswith("\n\n"):
        raise ValueError("VTT must end with exactly one newline")
    cues, prev_end = [], 0.0
    for block in body[:-1].split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(_VTT_TIME + " --> " + _VTT_TIME, lines[0])
        if not m or len(lines) < 2:
            raise ValueError(f"bad cue {block!r}")
        start, end = _secs(*m.groups()[:4]), _secs(*m.groups()[4:])
        if not prev_end <= start < end:
            raise ValueError("cue times out of order")
        for line in lines[1:]:
            if not line.strip() or "-->" in line or "<" in line \
                    or re.search(r"&(?!amp;|lt;|gt;)", line):
                raise ValueError(f"bad cue text {line!r}")
        text_ = "\n".join(lines[1:]).replace("&lt;", "<").replace("&gt;", ">")
        cues.append((start, end, text_.replace("&amp;", "&")))
        prev_end = end
    return cues


def words_every(n: int, step: float = 0.5, dur: float = 0.3, word: str = "WORD"
                ) -> list[WordTiming]:
    return [WordTiming(f"{word}{i}", i * step, i * step + dur, 0.9) for i in range(n)]


def test_timestamps():
    assert format_timestamp(0) == "00:00:00,000"
    assert format_timestamp(3661.5) == "01:01:01,500"
    assert format_timestamp(59.9996) == "00:01:00,000"
    assert format_timestamp(36000.25, ".") == "10:00:00.250"


def test_srt_and_vtt_parse_and_round_trip():
    words = words_every(40)
    cues = group_cues(words)
    srt, vtt = parse_srt(to_srt(cues)), parse_vtt(to_vtt(cues))
    assert len(srt) == len(vtt) == len(cues) > 1
    for (s0, e0, t0), (s1, e1, t1), c in zip(srt, vtt, cues):
        assert s0 == s1 == pytest.approx(c.start, abs=5e-4) and e0 == e1
        assert t0 == t1 == c.text
    # every word exactly once, in order
    assert " ".join(t for _, _, t in srt).split() == [w.word for w in words]


def test_cue_limits():
    cfg = CueConfig(max_seconds=3.0, max_chars=30, line_chars=12, max_gap=1.0)
    words = words_every(30) + [WordTiming("LATE", 30.0, 30.4, 1.0)]
    cues = group_cues(words, cfg)
    for c in cues:
        assert c.end - c.start <= 3.0 + 1e-9
        assert len(c.text.replace("\n", " ")) <= 30
        assert all(len(line) <= 12 for line in c.text.split("\n"))
    assert cues[-1].text == "LATE"  # the long pause starts a new cue
    assert cues[-2].end <= cues[-1].start


def test_long_word_gets_its_own_cue_and_is_not_broken():
    long = "X" * 60
    cues = group_cues([WordTiming("A", 0, 0.2, 1), WordTiming(long, 0.3, 1.0, 1),
                       WordTiming("B", 1.1, 1.2, 1)], CueConfig(max_chars=40))
    assert [c.text for c in cues] == ["A", long, "B"]
    parse_srt(to_srt(cues))


def test_vtt_escapes_markup():
    cues = group_cues([WordTiming("<unk>", 0, 0.5, 0.2), WordTiming("R&B", 0.6, 1.0, 0.9)])
    vtt = to_vtt(cues)
    assert "&lt;unk&gt; R&amp;B" in vtt
    assert parse_vtt(vtt)[0][2] == "<unk> R&B"
    with pytest.raises(ValueError):
        parse_vtt("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<b>x\n")


def test_empty_and_zero_length_words():
    assert parse_srt(write_subtitles([], "srt")) == []
    assert parse_vtt(write_subtitles([], "vtt")) == []
    (cue,) = parse_srt(write_subtitles([WordTiming("A", 1.0, 1.0, 1.0)], "srt"))
    assert cue[0] < cue[1]  # a cue never has zero length
    with pytest.raises(ValueError):
        write_subtitles([], "ass")


def test_strict_parsers_reject_malformed_files():
    good = "1\n00:00:00,000 --> 00:00:01,000\nHI\n"
    parse_srt(good)
    for bad in [good.replace("1\n", "2\n", 1), good.replace(",000 -->", ".000 -->"),
                good + "\n", good.replace("HI\n", "\n"),
                good + "\n2\n00:00:00,500 --> 00:00:02,000\nX\n"]:
        with pytest.raises(ValueError):
            parse_srt(bad)
