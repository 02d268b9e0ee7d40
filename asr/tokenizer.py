"""Tokenizers (characters, sentencepiece BPE, phones, words), registered by kind; blank id is 0.

Every tokenizer answers what decoders, lexicon writers and the long-form stitcher need to know
about its tokens, so no code outside this module asks which kind it is:

- ``separator``: the token written between words ("|" for characters; None when words are
  delimited otherwise). Flashlight's silence token is the separator, or the blank without one.
- ``word_groups(tokens)``: how a token sequence groups into words.
- ``spell(word)``: a word's lexicon spelling in tokens (None: not spellable by this model).
- ``lexicon_free``: the tokens are the output words themselves (phones, words): such a model
  decodes without a lexicon, with an LM over its own tokens.

Every tokenizer serialises to a plain dict (strings, lists, bytes) that travels inside the model
file, so a model decodes with nothing but its own file. Build one with :func:`build_tokenizer`
from a :class:`TokenizerConfig`, or restore it with :func:`tokenizer_from_dict`.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from asr.errors import UserError

BLANK = "<blank>"
SPACE = "|"  # word boundary symbol of character models (flashlight lexicon convention)
BPE_SPACE = "\u2581"  # sentencepiece's word-start mark "▁"


@dataclass
class TokenizerConfig:
    """Attributes:
        kind: a registered kind (char, bpe, phone, word; see :data:`TOKENIZERS`).
        vocab_size: bpe only: sentencepiece vocabulary size.
        lexicon: phone only: pronunciation lexicon (``WORD PH1 PH2 ...``); "" when the text
            already is phones. word: one token per word of the training text (closed
            vocabularies such as digits).
    """

    kind: str = "char"
    vocab_size: int = 64
    lexicon: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZERS:
            raise ValueError(f"tokenizer.kind must be {', '.join(TOKENIZERS)}, got '{self.kind}'")
        if isinstance(self.vocab_size, int) and self.vocab_size < 2:
            raise ValueError(f"tokenizer.vocab_size must be >= 2, got {self.vocab_size}")


class LexiconError(UserError, ValueError):
    """A missing or malformed lexicon file (a ValueError too, for library callers)."""


WordGroups = list[tuple[str, list[int]]]  # (word, positions of its tokens in the sequence)


class Tokenizer:
    """The interface every kind implements. Subclasses set ``kind`` and register themselves.

    Attributes:
        symbols: token symbols in id order; symbol 0 is the blank.
        separator: the symbol between words, or None.
        lexicon_free: True when the tokens are the output words (no lexicon applies).
    """

    kind = ""
    separator: str | None = None
    lexicon_free = False
    symbols: list[str]
    # The serialised dict: required fields (passed to __init__ in order) and their types, then
    # optional ones (passed by name).
    FIELDS: dict[str, type] = {"symbols": list}
    OPTIONAL: tuple[str, ...] = ()

    def encode(self, text: str) -> list[int] | None:
        """Token ids of a normalised text, or None when the model cannot represent it."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids (blanks ignored)."""
        raise NotImplementedError

    def spell(self, word: str) -> list[str] | None:
        """The word's lexicon spelling (token symbols), or None when this model cannot spell it."""
        return [word] if word in self._index else None

    def word_groups(self, tokens: Sequence[int]) -> WordGroups:
        """Group a token sequence (no blanks) into words: one token a word by default."""
        return [(self.symbols[t], [i]) for i, t in enumerate(tokens) if t != 0]

    def to_dict(self) -> dict:
        return {"kind": self.kind, **{k: getattr(self, k) for k in (*self.FIELDS, *self.OPTIONAL)}}

    @classmethod
    def build(cls, texts: list[str], cfg: TokenizerConfig) -> "Tokenizer":
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(*(d[k] for k in cls.FIELDS), **{k: d.get(k) for k in cls.OPTIONAL})

    @classmethod
    def valid_dict(cls, d: dict) -> bool:
        """Whether ``d`` has the fields :meth:`from_dict` reads (checked before loading)."""
        return all(isinstance(d.get(k), tp) for k, tp in cls.FIELDS.items())

    def _check_symbols(self, symbols: list[str]) -> None:
        if not symbols or symbols[0] != BLANK:
            raise ValueError("symbol 0 must be the blank")
        self.symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}


TOKENIZERS: dict[str, type[Tokenizer]] = {}


def register(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make ``cls`` buildable and loadable by its ``kind``."""
    TOKENIZERS[cls.kind] = cls
    return cls


def _split_at(tokens: Sequence[int], symbols: list[str], starts: Callable[[str], bool],
              boundary: str | None, strip: Callable[[str], str]) -> WordGroups:
    """Group tokens into words: a ``boundary`` token ends a word (and belongs to none); a token
    for which ``starts`` holds begins one. ``strip`` gives a token's letters."""
    words: WordGroups = []
    cur, pos = "", []
    for i, t in enumerate(tokens):
        sym = symbols[t]
        if t == 0:
            continue
        if sym == boundary or (starts(sym) and pos):
            if pos and cur:
                words.append((cur, pos))
            cur, pos = "", []
            if sym == boundary:
                continue
        cur += strip(sym)
        pos.append(i)
    if pos and cur:
        words.append((cur, pos))
    return words


@register
class CharTokenizer(Tokenizer):
    """Characters of the training text; "|" marks word boundaries."""

    kind = "char"
    separator = SPACE

    def __init__(self, symbols: list[str]):
        self._check_symbols(symbols)

    @classmethod
    def build(cls, texts: Iterable[str], cfg: TokenizerConfig | None = None) -> "CharTokenizer":
        chars = Counter(c for t in texts for c in t if c != " ")
        return cls([BLANK, SPACE] + sorted(chars))

    def encode(self, text: str) -> list[int] | None:
        """Token ids, or None when the text has a character outside the vocabulary."""
        try:
            return [self._index[SPACE if c == " " else c] for c in text]
        except KeyError:
            return None

    def decode(self, ids: Iterable[int]) -> str:
        s = "".join(self.symbols[i] for i in ids if i != 0)
        return " ".join(s.replace(SPACE, " ").split())

    def spell(self, word: str) -> list[str] | None:
        """``word -> [w, o, r, d, |]``: lexicon spellings end in the boundary token."""
        ok = word and SPACE in self._index and all(c in self._index for c in word)
        return [*word, SPACE] if ok else None

    def word_groups(self, tokens: Sequence[int]) -> WordGroups:
        return _split_at(tokens, self.symbols, lambda s: False, SPACE, lambda s: s)


@register
class BPETokenizer(Tokenizer):
    """sentencepiece BPE; model id k becomes token id k+1 so that 0 stays the blank. A piece
    starting with "▁" starts a word."""

    kind = "bpe"
    FIELDS = {"model_proto": bytes}

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        self._check_symbols([BLANK] + [self.sp.id_to_piece(i)
                                       for i in range(self.sp.get_piece_size())])

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int | TokenizerConfig = 64
              ) -> "BPETokenizer":
        import sentencepiece as spm

        if isinstance(vocab_size, TokenizerConfig):
            vocab_size = vocab_size.vocab_size
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "text.txt"
            path.write_text("\n".join(texts) + "\n", encoding="utf-8")
            model = Path(d) / "bpe"
            spm.SentencePieceTrainer.train(
                input=str(path), model_prefix=str(model), vocab_size=vocab_size,
                model_type="bpe", character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1,
                hard_vocab_limit=False, minloglevel=2)
            return cls(model.with_suffix(".model").read_bytes())

    def encode(self, text: str) -> list[int] | None:
        ids = [i + 1 for i in self.sp.encode(text)]
        return None if 1 in ids else ids  # 1 = <unk>

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i - 1 for i in ids if i != 0])

    def spell(self, word: str) -> list[str] | None:
        """sentencepiece's pieces of ``word``; None when one of them is the unknown piece."""
        pieces = self.sp.encode(word, out_type=str)
        unk = self.sp.unk_id()
        known = bool(pieces) and all(self.sp.piece_to_id(p) != unk for p in pieces)
        return pieces if known else None

    def word_groups(self, tokens: Sequence[int]) -> WordGroups:
        return _split_at(tokens, self.symbols, lambda s: s.startswith(BPE_SPACE), None,
                         lambda s: s.removeprefix(BPE_SPACE))


@register
class PhoneTokenizer(Tokenizer):
    """Phones. With a lexicon, words map to phone strings; without one, the text already is a
    space-separated phone sequence (e.g. TIMIT). Decoding returns phones separated by spaces;
    each phone is an output word."""

    kind = "phone"
    lexicon_free = True
    OPTIONAL = ("lexicon",)

    def __init__(self, symbols: list[str], lexicon: dict[str, list[str]] | None = None):
        self._check_symbols(symbols)
        self.lexicon = lexicon

    @staticmethod
    def read_lexicon(path: str | Path) -> dict[str, list[str]]:
        """``WORD PH1 PH2 ...`` per line. Raises LexiconError (a UserError) naming file:line."""
        p = Path(path)
        if not p.is_file():
            raise LexiconError(f"lexicon file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise LexiconError(f"{p}: not valid UTF-8 (byte {e.start + 1})") from None
        lex: dict[str, list[str]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if len(parts) < 2:
                if parts:
                    raise LexiconError(f"{path}:{n}: lexicon line needs a word and phones")
                continue
            word = re.sub(r"\(\d+\)$", "", parts[0])  # CMUdict alternates: WORD(2)
            lex.setdefault(word, parts[1:])
        return lex

    @classmethod
    def build(cls, texts: Iterable[str], cfg: TokenizerConfig | dict | None = None
              ) -> "PhoneTokenizer":
        if isinstance(cfg, TokenizerConfig):
            lexicon = cls.read_lexicon(cfg.lexicon) if cfg.lexicon else None
        else:
            lexicon = cfg
        phones: set[str] = set()
        for t in texts:
            for w in t.split():
                phones.update(lexicon.get(w, []) if lexicon is not None else [w])
        return cls([BLANK] + sorted(phones), lexicon)

    def phones(self, text: str) -> list[str] | None:
        if self.lexicon is None:
            return text.split()
        out: list[str] = []
        for w in text.split():
            if w not in self.lexicon:
                return None
            out += self.lexicon[w]
        return out

    def encode(self, text: str) -> list[int] | None:
        ph = self.phones(text)
        if ph is None or any(p not in self._index for p in ph):
            return None
        return [self._index[p] for p in ph]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.symbols[i] for i in ids if i != 0)


@register
class WordTokenizer(PhoneTokenizer):
    """Whole words of the training text, one token each: for small closed vocabularies (digits,
    commands), where character models misspell. A word outside the vocabulary cannot be encoded."""

    kind = "word"
    OPTIONAL = ()

    def __init__(self, symbols: list[str]):
        super().__init__(symbols, None)

    @classmethod
    def build(cls, texts: Iterable[str], cfg: TokenizerConfig | None = None  # type: ignore[override]
              ) -> "WordTokenizer":
        return cls([BLANK] + sorted({w for t in texts for w in t.split()}))


def build_tokenizer(cfg: TokenizerConfig, texts: list[str]) -> Tokenizer:
    """A new tokenizer of ``cfg.kind`` from normalised training texts."""
    return TOKENIZERS[cfg.kind].build(texts, cfg)


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Restore a tokenizer from its :meth:`Tokenizer.to_dict`."""
    kind = d.get("kind")
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    return TOKENIZERS[kind].from_dict(d)


def valid_tokenizer_dict(d: object) -> bool:
    """Whether ``d`` looks like a serialised tokenizer of a known kind."""
    return isinstance(d, dict) and d.get("kind") in TOKENIZERS \
        and TOKENIZERS[d["kind"]].valid_dict(d)
