"""Typed decoding results shared by every decoder."""

from __future__ import annotations

from typing import NamedTuple


class WordTiming(NamedTuple):
    word: str
    start: float  # seconds
    end: float  # seconds
    confidence: float  # in [0, 1]


class TokenSpan(NamedTuple):
    """Frames one token occupies in a CTC forced alignment.

    Attributes:
        token: token id.
        start: first output frame; end: one past the last frame.
        confidence: mean posterior of the token over its frames, in [0, 1].
    """

    token: int
    start: int
    end: int
    confidence: float


class Hypothesis(NamedTuple):
    """One decoded utterance.

    Attributes:
        text: the words, space separated.
        tokens: token ids (no blanks, repeats collapsed).
        timesteps: output frame of each token.
        words: word timings from forced alignment (empty when decoded without a frame
            duration, e.g. while tuning).
        score: total log-probability of the path (greedy) or decoder score (beam).
    """

    text: str
    tokens: list[int]
    timesteps: list[int]
    words: list[WordTiming]
    score: float
