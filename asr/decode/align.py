"""Word timestamps and confidences: CTC forced alignment of a token sequence to its log-probs.

Given one utterance's log-probs ``(T', V)`` and the tokens a decoder chose, Viterbi forced
alignment (``torchaudio.functional.forced_align``) gives each token its span of output frames.
Tokens are grouped into words by the tokenizer (``Tokenizer.word_groups``: character models:
``|`` separates words; sentencepiece: a piece starting with ``▁`` starts a word; phone and word
models: one token a word).
A word runs from its first token's first frame to its last token's last frame; its confidence is
the mean posterior of its tokens over those tokens' frames.

Legend: T' output frames, V vocabulary (blank = 0), L tokens.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from asr.decode.types import TokenSpan, WordTiming


def check_log_probs(log_probs: torch.Tensor, tokenizer) -> None:
    """The decoders' input check: (B, T', V) with V the tokenizer's vocabulary size."""
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be 3-D (B, T, V), found {tuple(log_probs.shape)}")
    if log_probs.shape[-1] != len(tokenizer.symbols):
        raise ValueError(f"log_probs has {log_probs.shape[-1]} classes, the tokenizer "
                         f"{len(tokenizer.symbols)}")


def align_tokens(log_probs: torch.Tensor, tokens: list[int], blank: int = 0) -> list[TokenSpan]:
    """Force-align ``tokens`` to ``log_probs`` (T', V) and return one span per token.

    Raises:
        ValueError: ``log_probs`` is not 2-D, or CTC cannot fit the tokens into T' frames.

    Example:
        >>> lp = torch.tensor([[0.1, 0.9], [0.9, 0.1]]).log()
        >>> align_tokens(lp, [1])
        [TokenSpan(token=1, start=0, end=1, confidence=0.9...)]
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be 2-D (T, V), found {tuple(log_probs.shape)}")
    if not tokens:
        return []
    T = log_probs.shape[0]
    need = len(tokens) + sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    if T < need:
        raise ValueError(f"cannot align {len(tokens)} tokens to {T} frames (CTC needs {need})")
    lp = log_probs.detach().float().cpu().contiguous()
    targets = torch.tensor([tokens], dtype=torch.int32)
    path, _ = AF.forced_align(lp.unsqueeze(0), targets, blank=blank)  # (1, T')
    path = path[0].tolist()
    post = lp.exp()  # (T', V)
    spans: list[TokenSpan] = []
    t = 0
    while t < T:
        tok = path[t]
        end = t + 1
        while end < T and path[end] == tok:
            end += 1
        if tok != blank:
            spans.append(TokenSpan(tok, t, end, float(post[t:end, tok].mean())))
        t = end
    assert len(spans) == len(tokens), "forced alignment lost a token"
    return spans


def group_spans(spans: list[TokenSpan], tokenizer) -> list[tuple[str, list[TokenSpan]]]:
    """Group aligned token spans into ``(word, spans)`` as the tokenizer groups its tokens."""
    return [(w, [spans[i] for i in pos])
            for w, pos in tokenizer.word_groups([s.token for s in spans])]


def timed_word(word: str, spans: list[TokenSpan], frame_seconds: float, offset: float = 0.0
               ) -> WordTiming:
    """A word from its tokens' spans: first frame to last frame, confidence = mean posterior
    over all those frames."""
    frames = sum(s.end - s.start for s in spans)
    conf = sum(s.confidence * (s.end - s.start) for s in spans) / frames
    return WordTiming(word, offset + spans[0].start * frame_seconds,
                      offset + spans[-1].end * frame_seconds, conf)


def spans_to_words(spans: list[TokenSpan], tokenizer, frame_seconds: float,
                   offset: float = 0.0) -> list[WordTiming]:
    """Timed words from aligned token spans; ``offset`` (seconds) is added to every time."""
    return [timed_word(w, ss, frame_seconds, offset) for w, ss in group_spans(spans, tokenizer)]


def word_timings(log_probs: torch.Tensor, tokens: list[int], tokenizer, frame_seconds: float,
                 offset: float = 0.0) -> list[WordTiming]:
    """Timed, scored words of ``tokens`` decoded from one utterance's ``log_probs`` (T', V):
    the one definition of word times, used by every decoder.

    Args:
        log_probs: (T', V) log-posteriors of the utterance (valid frames only).
        tokens: token ids chosen by a decoder (no blanks, repeats collapsed).
        tokenizer: gives ``symbols`` and groups tokens into words (``word_groups``).
        frame_seconds: duration of one output frame (``Recognizer.frame_seconds``).
        offset: seconds added to every time (a chunk's start in a long recording).
    """
    return spans_to_words(align_tokens(log_probs, tokens), tokenizer, frame_seconds, offset)
