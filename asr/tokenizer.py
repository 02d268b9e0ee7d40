"""Text normalisation and tokenizers (characters, sentencepiece BPE, phones); blank id is 0.

Every tokenizer serialises to a plain dict (strings, lists, bytes) that travels inside the model
file, so a model decodes with nothing but its own file.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

from asr.errors import UserError

BLANK = "<blank>"
SPACE = "|"  # word boundary symbol of character models (flashlight lexicon convention)

_PUNCT = re.compile(r"[^\w\s']", re.UNICODE)


@dataclass
class TextNorm:
    """Normalisation applied to transcripts before tokenising and scoring.

    Attributes:
        case: "upper", "lower" or "keep".
        strip_punct: drop punctuation except apostrophes.
    """

    case: str = "upper"
    strip_punct: bool = True

    def __post_init__(self) -> None:
        if self.case not in ("upper", "lower", "keep"):
            raise ValueError(f"text.case must be upper, lower or keep, got '{self.case}'")

    def __call__(self, text: str) -> str:
        t = unicodedata.normalize("NFKC", text)
        if self.case == "upper":
            t = t.upper()
        elif self.case == "lower":
            t = t.lower()
        if self.strip_punct:
            t = _PUNCT.sub(" ", t)
        return " ".join(t.split())


class LexiconError(UserError, ValueError):
    """A missing or malformed lexicon file (a ValueError too, for library callers)."""


class Tokenizer(Protocol):
    symbols: list[str]

    def encode(self, text: str) -> list[int] | None: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def to_dict(self) -> dict: ...


class CharTokenizer:
    """Characters of the training text; "|" marks word boundaries."""

    kind = "char"

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != BLANK:
            raise ValueError("symbol 0 must be the blank")
        self.symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTokenizer":
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

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}


class BPETokenizer:
    """sentencepiece BPE; model id k becomes token id k+1 so that 0 stays the blank."""

    kind = "bpe"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        self.symbols = [BLANK] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int) -> "BPETokenizer":
        import sentencepiece as spm

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

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model_proto": self.model_proto}


class PhoneTokenizer:
    """Phones. With a lexicon, words map to phone strings; without one, the text already is a
    space-separated phone sequence (e.g. TIMIT). Decoding returns phones separated by spaces."""

    kind = "phone"

    def __init__(self, symbols: list[str], lexicon: dict[str, list[str]] | None = None):
        if not symbols or symbols[0] != BLANK:
            raise ValueError("symbol 0 must be the blank")
        self.symbols = list(symbols)
        self.lexicon = lexicon
        self._index = {s: i for i, s in enumerate(self.symbols)}

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
    def build(cls, texts: Iterable[str], lexicon: dict[str, list[str]] | None = None
              ) -> "PhoneTokenizer":
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

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols, "lexicon": self.lexicon}


class WordTokenizer(PhoneTokenizer):
    """Whole words of the training text, one token each: for small closed vocabularies (digits,
    commands), where character models misspell. A word outside the vocabulary cannot be encoded."""

    kind = "word"

    def __init__(self, symbols: list[str]):
        super().__init__(symbols, None)

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordTokenizer":  # type: ignore[override]
        return cls([BLANK] + sorted({w for t in texts for w in t.split()}))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}


def tokenizer_from_dict(d: dict) -> CharTokenizer | BPETokenizer | PhoneTokenizer:
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["symbols"])
    if kind == "bpe":
        return BPETokenizer(d["model_proto"])
    if kind == "phone":
        return PhoneTokenizer(d["symbols"], d.get("lexicon"))
    if kind == "word":
        return WordTokenizer(d["symbols"])
    raise ValueError(f"unknown tokenizer kind {kind!r}")
