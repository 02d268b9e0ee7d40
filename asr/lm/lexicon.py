"""Lexicons for flashlight's lexicon-constrained CTC beam search: each word and its token spelling.

The file format is what ``torchaudio.models.decoder.ctc_decoder(lexicon=...)`` reads: one word a
line, then its tokens, separated by whitespace::

    hello h e l l o |        (spelling lexicon for a character model, boundary token "|")
    hello ▁he llo            (BPE lexicon for a sentencepiece model)

Words the acoustic model cannot spell (a character missing from the token set, or a piece that
sentencepiece maps to its unknown id) are skipped; the builders return how many.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Collection, Iterable

from asr.errors import UserError
from asr.manifest import atomic_write_text

Lexicon = dict[str, list[str]]


def words_from_text(lines: Iterable[str]) -> Counter[str]:
    """Count the whitespace-separated words of text lines.

    Example:
        >>> words_from_text(["a b", "b"])
        Counter({'b': 2, 'a': 1})
    """
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(line.split())
    return counts


def read_tokens(path: str | os.PathLike) -> list[str]:
    """Read a token list: one token a line (the first field, so ``token id`` lines work too)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"tokens file not found: {p}")
    with open(p, encoding="utf-8") as f:
        tokens = [line.split()[0] for line in f if line.strip()]
    if not tokens:
        raise UserError(f"tokens file is empty: {p}")
    return tokens


def char_lexicon(
    words: Iterable[str], tokens: Collection[str], boundary: str | None = "|"
) -> tuple[Lexicon, int]:
    """Spelling lexicon for a character CTC model: ``word -> [w, o, r, d, boundary]``.

    Args:
        words: the words to spell (e.g. the LM vocabulary); duplicates are spelled once.
        tokens: the model's token set.
        boundary (str | None, default "|"): word-boundary token appended to every spelling;
            None appends nothing.

    Returns:
        (lexicon, number of distinct words skipped because a character is not a token).

    Raises:
        UserError: the boundary token is not in ``tokens``.
    """
    token_set = set(tokens)
    if boundary is not None and boundary not in token_set:
        raise UserError(f"word-boundary token {boundary!r} is not in the token set")
    tail = [] if boundary is None else [boundary]
    lexicon: Lexicon = {}
    skipped = 0
    for word in dict.fromkeys(words):
        if all(ch in token_set for ch in word):
            lexicon[word] = [*word, *tail]
        else:
            skipped += 1
    return lexicon, skipped


def bpe_lexicon(
    words: Iterable[str], sp: "str | os.PathLike | object", tokens: Collection[str] | None = None
) -> tuple[Lexicon, int]:
    """BPE lexicon for a sentencepiece CTC model: ``word -> sp.encode(word, out_type=str)``.

    Args:
        words: the words to spell; duplicates are spelled once.
        sp: a ``sentencepiece.SentencePieceProcessor`` or the path of its ``.model`` file.
        tokens: optional token set of the acoustic model; pieces outside it also skip the word.

    Returns:
        (lexicon, number of distinct words skipped because a piece is unknown).
    """
    sp = load_sentencepiece(sp) if isinstance(sp, (str, os.PathLike)) else sp
    token_set = None if tokens is None else set(tokens)
    unk = sp.unk_id()
    lexicon: Lexicon = {}
    skipped = 0
    for word in dict.fromkeys(words):
        pieces = sp.encode(word, out_type=str)
        known = bool(pieces) and all(sp.piece_to_id(p) != unk for p in pieces)
        if known and (token_set is None or all(p in token_set for p in pieces)):
            lexicon[word] = pieces
        else:
            skipped += 1
    return lexicon, skipped


def load_sentencepiece(path: str | os.PathLike):
    """Load a sentencepiece model file, with a UserError when it is missing or unreadable."""
    import sentencepiece

    p = Path(path)
    if not p.is_file():
        raise UserError(f"sentencepiece model not found: {p}")
    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(p))
    except (OSError, RuntimeError) as e:
        raise UserError(f"cannot load sentencepiece model {p}: {e}") from None


def write_lexicon(path: str | os.PathLike, lexicon: Lexicon) -> None:
    """Write ``word<TAB>t1 t2 ...`` lines atomically, in the lexicon's order."""
    lines = [f"{word}\t{' '.join(spelling)}\n" for word, spelling in lexicon.items()]
    atomic_write_text(path, "".join(lines))
