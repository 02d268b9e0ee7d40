"""Word n-gram LMs (ARPA, modified Kneser-Ney) and lexicons for lexicon-constrained CTC decoding."""

from asr.lm.lexicon import model_lexicon, words_from_text, write_lang, write_lexicon
from asr.lm.ngram import Discount, KneserNeyModel, NgramLM, build_ngram_lm, sentences_from_lines
from asr.lm.text import lm_sentences, read_text_lines

__all__ = ["Discount", "KneserNeyModel", "NgramLM", "build_ngram_lm", "lm_sentences",
           "model_lexicon", "read_text_lines", "sentences_from_lines", "words_from_text",
           "write_lang", "write_lexicon"]
