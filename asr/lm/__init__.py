"""Word n-gram LMs (ARPA, modified Kneser-Ney) and lexicons for lexicon-constrained CTC decoding."""

from asr.lm.lexicon import (
    bpe_lexicon,
    char_lexicon,
    read_tokens,
    words_from_text,
    write_lexicon,
)
from asr.lm.ngram import (
    Discount,
    KneserNeyModel,
    NgramLM,
    build_ngram_lm,
    sentences_from_lines,
)

__all__ = [
    "Discount",
    "KneserNeyModel",
    "NgramLM",
    "bpe_lexicon",
    "build_ngram_lm",
    "char_lexicon",
    "read_tokens",
    "sentences_from_lines",
    "words_from_text",
    "write_lexicon",
]
