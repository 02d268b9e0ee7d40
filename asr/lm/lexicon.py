"""Lexicons for flashlight's lexicon-constrained CTC beam search: each word and its token spelling.

The file format is what ``torchaudio.models.decoder.ctc_decoder(lexicon=...)`` reads: one word a
line, then its tokens, separated by whitespace::

    hello h e l l o |        (spelling lexicon for a character model, boundary token "|")
    hello ▁he llo            (BPE lexicon for a sentencepiece model)

Words the acoustic model cannot spell (a character missing from the token set, or a piece that
sentencepiece maps to its unknown id) are skipped; the builders return how many.
:func:`model_lexicon` and :func:`write_lang` take the spellings from a trained model's own
tokenizer (``spell``), :func:`char_lexicon` and :func:`bpe_lexicon` from a token list or a
sentencepiece model file.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from asr.fileio import atomic_write_text

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


def model_lexicon(words: Iterable[str], tokenizer) -> tuple[Lexicon, int]:
    """Lexicon of an acoustic model: ``word -> tokenizer.spell(word)``.

    Args:
        words: the words to spell (e.g. the LM vocabulary); duplicates are spelled once, in the
            order of their first occurrence.
        tokenizer: the model's tokenizer (:class:`asr.tokenizer.Tokenizer`): ``spell(word)``
            gives a word's tokens, or None when the model cannot spell it.

    Returns:
        (lexicon, number of distinct words skipped because the model cannot spell them).
    """
    lexicon: Lexicon = {}
    skipped = 0
    for word in dict.fromkeys(words):
        spelling = tokenizer.spell(word)
        if spelling:
            lexicon[word] = list(spelling)
        else:
            skipped += 1
    return lexicon, skipped


def write_lang(out_dir: str | os.PathLike, tokenizer, words: Iterable[str]) -> tuple[int, int] | None:
    """Write a model's decoding files into ``out_dir``: ``tokens.txt`` (its symbols in id order)
    and, unless the tokenizer is ``lexicon_free`` (its tokens are what the LM scores: phones,
    words), ``lexicon.txt`` spelling ``words`` (:func:`model_lexicon`).

    Returns:
        (words written, words skipped) or None for a lexicon-free model, whose stale
        ``lexicon.txt`` is removed (a decoder given it would be wrong).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "tokens.txt", "".join(s + "\n" for s in tokenizer.symbols))
    if tokenizer.lexicon_free:
        (out / "lexicon.txt").unlink(missing_ok=True)
        return None
    lexicon, skipped = model_lexicon(words, tokenizer)
    write_lexicon(out / "lexicon.txt", lexicon)
    return len(lexicon), skipped


def write_lexicon(path: str | os.PathLike, lexicon: Lexicon) -> None:
    """Write ``word<TAB>t1 t2 ...`` lines atomically, in the lexicon's order."""
    lines = [f"{word}\t{' '.join(spelling)}\n" for word, spelling in lexicon.items()]
    atomic_write_text(path, "".join(lines))
