"""asr.tokenizer: text normalisation, character / BPE / phone tokenizers and their serialisation."""

from __future__ import annotations

import io

import pytest
import torch

from asr.text import TextNorm
from asr.tokenizer import (BLANK, SPACE, BPETokenizer, CharTokenizer, PhoneTokenizer,
                           WordTokenizer, tokenizer_from_dict)

BPE_TEXTS = [
    "THE CAT SAT ON THE MAT", "THE DOG SAT ON THE LOG", "A CAT AND A DOG",
    "THE MAT AND THE LOG", "ON THE MAT THE CAT SAT", "THE DOG AND THE CAT",
] * 5


@pytest.mark.parametrize("norm, text, expected", [
    (TextNorm(), "Hello, world!  It's   fine.", "HELLO WORLD IT'S FINE"),
    (TextNorm(), "well-known\tfact;\nnext", "WELL KNOWN FACT NEXT"),
    (TextNorm(), "café naïve", "CAFÉ NAÏVE"),  # letters beyond ASCII are kept
    (TextNorm(), "ﬁne ＡＢＣ１２", "FINE ABC12"),  # NFKC: ligature and full-width forms
    (TextNorm(case="lower"), "Two WORDS!", "two words"),
    (TextNorm(case="keep"), "Keep  Case?", "Keep Case"),
    (TextNorm(strip_punct=False), "a, b.", "A, B."),
    (TextNorm(), "  ...  ", ""),
])
def test_text_norm(norm, text, expected):
    assert norm(text) == expected


def test_text_norm_rejects_bad_case():
    with pytest.raises(ValueError, match="title"):
        TextNorm(case="title")


def test_char_tokenizer_vocabulary_and_ids():
    tok = CharTokenizer.build(["AB C", "CAB", "BA"])
    assert tok.symbols == [BLANK, SPACE, "A", "B", "C"]
    assert tok.encode("AB C") == [2, 3, 1, 4]
    assert tok.encode("") == []


@pytest.mark.parametrize("text", ["A", "AB C", "CAB BA A", "AAB BBA"])
def test_char_tokenizer_roundtrip(text):
    tok = CharTokenizer.build(["AB C", "CAB", "BA"])
    ids = tok.encode(text)
    assert all(i >= 1 for i in ids)
    assert tok.decode(ids) == text


def test_char_tokenizer_decode_drops_blanks_and_tidies_boundaries():
    tok = CharTokenizer.build(["AB C"])
    # | A | | B C |  with blanks sprinkled in
    assert tok.decode([1, 2, 0, 1, 1, 0, 3, 4, 1]) == "A BC"
    assert tok.decode([]) == ""
    assert tok.decode([0, 0, 1]) == ""


def test_char_tokenizer_oov_is_none():
    tok = CharTokenizer.build(["AB C"])
    assert tok.encode("ABD") is None
    assert tok.encode("a") is None  # case matters: normalisation is TextNorm's job


def test_char_tokenizer_requires_blank_first():
    with pytest.raises(ValueError):
        CharTokenizer(["A", BLANK])


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.build(BPE_TEXTS, vocab_size=30)


def test_bpe_roundtrip_and_blank_reserved(bpe):
    assert bpe.symbols[0] == BLANK
    assert BLANK not in bpe.symbols[1:]
    for text in set(BPE_TEXTS) | {"THE CAT", "A LOG ON A MAT"}:
        ids = bpe.encode(text)
        assert ids is not None and ids
        assert min(ids) >= 2 and max(ids) < len(bpe.symbols)  # 0 blank, 1 <unk>
        assert bpe.decode(ids) == text
    # subword units: fewer tokens than characters
    assert len(bpe.encode("THE CAT SAT ON THE MAT")) < len("THE CAT SAT ON THE MAT")


def test_bpe_unknown_character_is_none_and_decode_ignores_blanks(bpe):
    assert bpe.encode("THE CAT Ω") is None
    ids = bpe.encode("THE DOG")
    with_blanks = [0] + [i for t in ids for i in (t, 0)]
    assert bpe.decode(with_blanks) == "THE DOG"


LEXICON = "YES Y EH S\nNO N OW\nNO(2) N AH\n\nGO G OW\n"


def _lexicon(tmp_path):
    p = tmp_path / "lexicon.txt"
    p.write_text(LEXICON, encoding="utf-8")
    return PhoneTokenizer.read_lexicon(p)


def test_read_lexicon_keeps_first_pronunciation(tmp_path):
    assert _lexicon(tmp_path) == {"YES": ["Y", "EH", "S"], "NO": ["N", "OW"], "GO": ["G", "OW"]}
    bad = tmp_path / "bad.txt"
    bad.write_text("YES Y EH S\nLONELY\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:2"):
        PhoneTokenizer.read_lexicon(bad)


def test_phone_tokenizer_with_lexicon(tmp_path):
    tok = PhoneTokenizer.build(["YES NO", "GO"], _lexicon(tmp_path))
    assert tok.symbols == [BLANK, "EH", "G", "N", "OW", "S", "Y"]
    ids = tok.encode("YES NO")
    assert ids == [6, 1, 5, 3, 4]
    assert tok.decode([0] + ids + [0]) == "Y EH S N OW"
    assert tok.encode("MAYBE") is None  # word not in the lexicon


def test_phone_tokenizer_without_lexicon():
    tok = PhoneTokenizer.build(["sil ah b sil", "b iy"])
    assert tok.symbols == [BLANK, "ah", "b", "iy", "sil"]
    ids = tok.encode("sil b iy sil")
    assert ids == [4, 2, 3, 4]
    assert tok.decode(ids) == "sil b iy sil"
    assert tok.encode("sil zh") is None  # unknown phone


def test_word_tokenizer():
    tok = WordTokenizer.build(["ONE TWO", "TWO ZERO"])
    assert tok.kind == "word" and tok.symbols == [BLANK, "ONE", "TWO", "ZERO"]
    assert tok.encode("ZERO ONE") == [3, 1]
    assert tok.decode([0, 3, 0, 1, 0]) == "ZERO ONE"
    assert tok.encode("ONE THREE") is None  # outside the vocabulary
    assert tok.to_dict() == {"kind": "word", "symbols": tok.symbols}


def _all_tokenizers(tmp_path, bpe):
    return [
        (CharTokenizer.build(["AB C", "CAB"]), ["AB C", "CCC A", "ABD"]),
        (bpe, ["THE CAT", "A DOG ON THE LOG", "Ω"]),
        (PhoneTokenizer.build(["YES NO", "GO"], _lexicon(tmp_path)), ["YES NO GO", "MAYBE"]),
        (PhoneTokenizer.build(["sil ah b sil"]), ["sil ah", "zh"]),
        (WordTokenizer.build(["ONE TWO", "TWO"]), ["TWO ONE", "THREE"]),
    ]


def test_tokenizer_from_dict_equivalence(tmp_path, bpe):
    for tok, texts in _all_tokenizers(tmp_path, bpe):
        again = tokenizer_from_dict(tok.to_dict())
        assert type(again) is type(tok)
        assert again.symbols == tok.symbols
        for t in texts:
            assert again.encode(t) == tok.encode(t)
            ids = tok.encode(t)
            if ids:
                assert again.decode(ids) == tok.decode(ids)


def test_tokenizer_dicts_survive_weights_only_torch_load(tmp_path, bpe):
    """Tokenizers travel inside model files read with torch.load(weights_only=True)."""
    for tok, texts in _all_tokenizers(tmp_path, bpe):
        buf = io.BytesIO()
        torch.save({"tokenizer": tok.to_dict()}, buf)
        buf.seek(0)
        d = torch.load(buf, weights_only=True)["tokenizer"]
        again = tokenizer_from_dict(d)
        assert [again.encode(t) for t in texts] == [tok.encode(t) for t in texts]


def test_tokenizer_from_dict_unknown_kind():
    with pytest.raises(ValueError, match="wordpiece"):
        tokenizer_from_dict({"kind": "wordpiece"})
