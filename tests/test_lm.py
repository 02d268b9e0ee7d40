"""Word n-gram LM (modified Kneser-Ney, ARPA) and lexicon builders: hand-computed values,
properties, and loading into flashlight's KenLM / torchaudio's ctc_decoder."""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import pytest
import torch

from asr.errors import UserError
from asr.lm import (
    NgramLM,
    build_ngram_lm,
    model_lexicon,
    sentences_from_lines,
    words_from_text,
    write_lexicon,
)
from asr.cli.lm import add_parser
from asr.tokenizer import BLANK, BPETokenizer, CharTokenizer
from asr.lm.ngram import adjust_counts, count_ngrams, estimate_discounts

# Padded:  <s> a a c c </s> | <s> a c </s> | <s> c a c </s> | <s> c d d c </s>
CORPUS = ["a a c c", "a c", "c a c", "c d d c"]
L = math.log10


def build(tmp_path: Path, order: int, lines=CORPUS) -> tuple[NgramLM, object]:
    model = build_ngram_lm(sentences_from_lines(lines), order)
    path = tmp_path / f"o{order}.arpa"
    model.write_arpa(path)
    return NgramLM.load_arpa(path), model


def check_table(lm: NgramLM, probs: dict, backoffs: dict) -> None:
    for g, p in probs.items():
        assert lm.logprobs[tuple(g.split())] == pytest.approx(L(p), abs=1e-4), g
    for g, b in backoffs.items():
        assert lm.backoffs[tuple(g.split())] == pytest.approx(L(b), abs=1e-4), g


# ---- Unigram level, shared by the order-2 and order-3 models (same bigram types) ------------
# Bigram types: <s> a, <s> c, a a, a c, c c, c </s>, c a, c d, d d, d c.
# Continuation counts N1+(. w): a {<s>,a,c}=3, c {a,c,d,<s>}=4, d {c,d}=2, </s> {c}=1.
# Count-of-counts t1..t4 = 1,1,1,1 -> Y = 1/(1+2) = 1/3
#   D1 = 1 - 2Y t2/t1 = 1/3,  D2 = 2 - 3Y t3/t2 = 1,  D3+ = 3 - 4Y t4/t3 = 5/3.
# Denominator 3+4+2+1 = 10; gamma() = (D1*1 + D2*1 + D3*2)/10 = 7/15; |V| = {a,c,d,</s>,<unk>} = 5.
G0 = (1 / 3 + 1 + 2 * 5 / 3) / 10
P1 = {
    "a": (3 - 5 / 3) / 10 + G0 / 5,  # = 17/75
    "c": (4 - 5 / 3) / 10 + G0 / 5,  # = 49/150
    "d": (2 - 1) / 10 + G0 / 5,  # = 29/150
    "</s>": (1 - 1 / 3) / 10 + G0 / 5,  # = 12/75
    "<unk>": G0 / 5,  # = 7/75
}


def test_unigram_hand_values():
    assert P1["a"] == pytest.approx(17 / 75) and P1["<unk>"] == pytest.approx(7 / 75)
    assert sum(P1.values()) == pytest.approx(1.0)


def test_order2_matches_hand_computation(tmp_path):
    lm, model = build(tmp_path, 2)
    # Bigram raw counts (top order: adjusted = raw):
    #   <s> a 2, <s> c 2, a a 1, a c 3, c c 1, c </s> 4, c a 1, c d 1, d d 1, d c 1
    # t1..t4 = 6,2,1,1 -> Y = 6/10; D1 = 1 - 2*.6*2/6 = .6, D2 = 2 - 3*.6*1/2 = 1.1,
    #   D3+ = 3 - 4*.6*1/1 = .6
    d = model.discounts[1]
    assert (d.d1, d.d2, d.d3, d.fallback) == pytest.approx((0.6, 1.1, 0.6, False))
    assert model.discounts[0].d3 == pytest.approx(5 / 3)
    g_bos = 2 * 1.1 / 4  # context <s>: counts 2,2 (denominator 4)
    g_a = (0.6 + 0.6) / 4  # context a: a 1, c 3
    g_c = (3 * 0.6 + 0.6) / 7  # context c: c 1, </s> 4, a 1, d 1
    g_d = (0.6 + 0.6) / 2  # context d: d 1, c 1
    probs = {k: v for k, v in P1.items()}
    probs.update({
        "<s> a": (2 - 1.1) / 4 + g_bos * P1["a"],
        "<s> c": (2 - 1.1) / 4 + g_bos * P1["c"],
        "a a": (1 - 0.6) / 4 + g_a * P1["a"],
        "a c": (3 - 0.6) / 4 + g_a * P1["c"],
        "c c": (1 - 0.6) / 7 + g_c * P1["c"],
        "c </s>": (4 - 0.6) / 7 + g_c * P1["</s>"],
        "c a": (1 - 0.6) / 7 + g_c * P1["a"],
        "c d": (1 - 0.6) / 7 + g_c * P1["d"],
        "d d": (1 - 0.6) / 2 + g_d * P1["d"],
        "d c": (1 - 0.6) / 2 + g_d * P1["c"],
    })
    backoffs = {"<s>": g_bos, "a": g_a, "c": g_c, "d": g_d, "</s>": 1.0, "<unk>": 1.0}
    check_table(lm, probs, backoffs)
    assert lm.logprobs[("<s>",)] == -99
    assert len(lm.logprobs) == 6 + 10
    # An unseen bigram backs off: p(a | d) = gamma(d) p(a).
    assert lm.log10_prob("a", ["d"]) == pytest.approx(L(g_d * P1["a"]), abs=1e-6)


def test_order3_matches_hand_computation(tmp_path):
    lm, model = build(tmp_path, 3)
    # Trigram raw counts: a c </s> 2; <s> a a, a a c, a c c, c c </s>, <s> a c, <s> c a, c a c,
    #   <s> c d, c d d, d d c, d c </s> 1 each -> t = 11,1,0,0: degenerate, fallback .5, 1, 1.5.
    assert model.discounts[2].fallback
    assert (model.discounts[2].d1, model.discounts[2].d2, model.discounts[2].d3) == (0.5, 1.0, 1.5)
    # Bigram adjusted counts: <s> a 2 and <s> c 2 (raw: nothing precedes <s>); the others count
    #   distinct left words in trigrams: a c {a,<s>,c}=3, c </s> {c,a,d}=3, the other six 1.
    # t1..t4 = 6,2,2,0 -> Y = .6; D1 = .6, D2 = 2 - 3*.6*2/2 = .2, D3+ = 3 - 4*.6*0/2 = 3.
    d = model.discounts[1]
    assert (d.d1, d.d2, d.d3, d.fallback) == pytest.approx((0.6, 0.2, 3.0, False))
    g_bos = 2 * 0.2 / 4  # <s>: a 2, c 2
    g_a = (0.6 + 3.0) / 4  # a: a 1, c 3
    g_c = (3 * 0.6 + 3.0) / 6  # c: c 1, </s> 3, a 1, d 1
    g_d = (0.6 + 0.6) / 2  # d: d 1, c 1
    p2 = {
        "<s> a": (2 - 0.2) / 4 + g_bos * P1["a"],
        "<s> c": (2 - 0.2) / 4 + g_bos * P1["c"],
        "a a": (1 - 0.6) / 4 + g_a * P1["a"],
        "a c": (3 - 3.0) / 4 + g_a * P1["c"],  # D3+ = 3 takes all of it
        "c c": (1 - 0.6) / 6 + g_c * P1["c"],
        "c </s>": (3 - 3.0) / 6 + g_c * P1["</s>"],
        "c a": (1 - 0.6) / 6 + g_c * P1["a"],
        "c d": (1 - 0.6) / 6 + g_c * P1["d"],
        "d d": (1 - 0.6) / 2 + g_d * P1["d"],
        "d c": (1 - 0.6) / 2 + g_d * P1["c"],
    }
    # Trigram contexts with fallback discounts (all counts 1 except a c </s> = 2):
    #   <s> a: a,c (den 2, gamma 2*.5/2)  a a: c (den 1)  a c: c 1, </s> 2 (den 3, gamma 1.5/3)
    #   c c: </s>  <s> c: a,d (den 2)  c a: c  c d: d  d d: c  d c: </s>   -- gamma .5 each
    p3 = {
        "<s> a a": 0.5 / 2 + 0.5 * p2["a a"],
        "<s> a c": 0.5 / 2 + 0.5 * p2["a c"],
        "a a c": 0.5 / 1 + 0.5 * p2["a c"],
        "a c c": 0.5 / 3 + 0.5 * p2["c c"],
        "a c </s>": (2 - 1.0) / 3 + 0.5 * p2["c </s>"],
        "c c </s>": 0.5 / 1 + 0.5 * p2["c </s>"],
        "<s> c a": 0.5 / 2 + 0.5 * p2["c a"],
        "<s> c d": 0.5 / 2 + 0.5 * p2["c d"],
        "c a c": 0.5 / 1 + 0.5 * p2["a c"],
        "c d d": 0.5 / 1 + 0.5 * p2["d d"],
        "d d c": 0.5 / 1 + 0.5 * p2["d c"],
        "d c </s>": 0.5 / 1 + 0.5 * p2["c </s>"],
    }
    backoffs = {"<s>": g_bos, "a": g_a, "c": g_c, "d": g_d, "</s>": 1.0, "<unk>": 1.0,
                "<s> a": 0.5, "a a": 0.5, "a c": 0.5, "c c": 0.5, "<s> c": 0.5, "c a": 0.5,
                "c d": 0.5, "d d": 0.5, "d c": 0.5, "c </s>": 1.0}
    check_table(lm, {**P1, **p2, **p3}, backoffs)
    assert len(lm.logprobs) == 6 + 10 + 12
    # Sentence "a c": p(a|<s>) p(c|<s> a) p(</s>|a c), all explicit n-grams.
    expect = L(p2["<s> a"]) + L(p3["<s> a c"]) + L(p3["a c </s>"])
    assert lm.score_sentence(["a", "c"]) == pytest.approx(expect, abs=1e-4)


def test_discounts_formula_and_fallback():
    adjusted = adjust_counts(count_ngrams([line.split() for line in CORPUS], 2))
    assert adjusted[0] == {("a",): 3, ("c",): 4, ("d",): 2, ("</s>",): 1}
    d = estimate_discounts(adjusted)
    assert (d[0].d1, d[0].d2, d[0].d3) == pytest.approx((1 / 3, 1.0, 5 / 3))
    # Out of range (D2 < 0 with t = 7,1,1,1) also falls back.
    counts = {(str(i),): c for i, c in enumerate([1] * 7 + [2, 3, 4])}
    assert estimate_discounts([counts])[0].fallback


def random_corpus(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "the cat sat on a mat dog ran".split()
    return [" ".join(rng.choice(words[: rng.randint(2, 8)]) for _ in range(rng.randint(1, 7)))
            for _ in range(n)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_arpa_equals_interpolated_model_and_sums_to_one(tmp_path, order):
    lines = random_corpus()
    lm, model = build(tmp_path, order, lines)
    vocab = sorted(lm.vocab - {"<s>"})  # words, </s>, <unk>
    contexts = [g for g in lm.backoffs] + [(), ("zebra",), ("cat", "zebra", "the")]
    for ctx in contexts:
        if ctx and ctx[-1] == "</s>":
            continue
        assert sum(10 ** lm.log10_prob(w, ctx) for w in vocab) == pytest.approx(1.0, abs=1e-6)
        assert sum(model.prob(w, ctx) for w in vocab) == pytest.approx(1.0, abs=1e-9)
    for line in lines[:40] + ["the zebra sat", "mat mat mat mat"]:
        words = line.split()
        history, direct = ["<s>"], 0.0
        for w in words + ["</s>"]:
            direct += L(model.prob(w, history))
            history.append(w)
        assert lm.score_sentence(words) == pytest.approx(direct, abs=1e-6)


@pytest.mark.parametrize("order", [2, 3])
def test_kenlm_scores_match(tmp_path, order):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    lines = random_corpus()
    lm, _ = build(tmp_path, order, lines)
    words = sorted(lm.vocab - {"<s>", "</s>", "<unk>"}) + ["zebra"]
    dictionary = Dictionary(words)
    kenlm = KenLM(str(tmp_path / f"o{order}.arpa"), dictionary)
    for line in lines[:20] + ["the zebra sat on"]:
        state, total = kenlm.start(False), 0.0  # False: start after <s>
        for w in line.split():
            state, s = kenlm.score(state, dictionary.get_index(w))
            total += s
        total += kenlm.finish(state)[1]
        assert total == pytest.approx(lm.score_sentence(line.split()), abs=1e-3)


def test_ctc_decoder_loads_lm_and_char_lexicon(tmp_path):
    from torchaudio.models.decoder import ctc_decoder

    build(tmp_path, 3)
    tokens = [BLANK, "|", "a", "c", "d"]
    lexicon, skipped = model_lexicon(words_from_text(CORPUS), CharTokenizer(tokens))
    assert skipped == 0 and lexicon["a"] == ["a", "|"]
    write_lexicon(tmp_path / "lexicon.txt", lexicon)
    decoder = ctc_decoder(lexicon=str(tmp_path / "lexicon.txt"), tokens=tokens,
                          lm=str(tmp_path / "o3.arpa"), beam_size=5, blank_token=BLANK)
    emissions = torch.randn(1, 12, len(tokens)).log_softmax(-1)  # (B, T, V)
    hyps = decoder(emissions)
    assert all(w in {"a", "c", "d"} for w in hyps[0][0].words)


def test_char_lexicon(tmp_path):
    words = words_from_text(["CAB ABC", "XYZ CAB", "AB"])
    assert words == {"CAB": 2, "ABC": 1, "XYZ": 1, "AB": 1}
    lexicon, skipped = model_lexicon(words, CharTokenizer([BLANK, "|", "A", "B", "C"]))
    assert skipped == 1 and "XYZ" not in lexicon
    assert lexicon["CAB"] == ["C", "A", "B", "|"]
    # without a word boundary token a character model cannot spell words for flashlight
    assert model_lexicon(["AB"], CharTokenizer([BLANK, "A", "B"])) == ({}, 1)
    write_lexicon(tmp_path / "lex.txt", lexicon)
    from flashlight.lib.text.dictionary import load_words

    assert load_words(str(tmp_path / "lex.txt"))["CAB"] == [["C", "A", "B", "|"]]


def test_bpe_lexicon(tmp_path):
    import sentencepiece as spm

    text = tmp_path / "text.txt"
    rng = random.Random(0)
    vocab = "the cat sat on a mat and then the hat".split()
    text.write_text("\n".join(" ".join(rng.choices(vocab, k=8)) for _ in range(200)) + "\n")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "bpe"),
                                   vocab_size=30, model_type="bpe", character_coverage=1.0,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "bpe.model"))
    tok = BPETokenizer((tmp_path / "bpe.model").read_bytes())
    lexicon, skipped = model_lexicon(["cat", "hat", "theme", "zoo!"], tok)
    assert skipped == 1 and "zoo!" not in lexicon
    for word, pieces in lexicon.items():
        assert pieces == sp.encode(word, out_type=str)
        assert "".join(pieces) == "\u2581" + word
        assert all(p in tok.symbols for p in pieces)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="asr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_build(tmp_path, capsys):
    plain = tmp_path / "a.txt"
    plain.write_text("a a c c\na c\n\n")
    manifest = tmp_path / "b.txt"  # JSONL detected by its first character
    manifest.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                                for i, t in enumerate(["c a c", "c d d c"])))
    arpa = tmp_path / "lm.arpa"
    assert run_cli("lm", "build", str(plain), str(manifest), "-o", str(arpa), "--order", "3") == 0
    assert NgramLM.load_arpa(arpa).logprobs == build(tmp_path, 3)[0].logprobs
    assert "3-grams" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["missing.txt", "--order", "3"], "not found"),
    (["EMPTY", "--order", "3"], "empty"),
    (["PLAIN", "--order", "7"], "order"),
    (["PLAIN", "--order", "0"], "order"),
    (["BADJSON", "--order", "2"], "text"),
])
def test_cli_errors(tmp_path, argv, message):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "plain.txt").write_text("a b\n")
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    files = {"EMPTY": "empty.txt", "PLAIN": "plain.txt", "BADJSON": "bad.jsonl",
             "missing.txt": "missing.txt"}
    argv = [str(tmp_path / files[argv[0]]), *argv[1:]]
    with pytest.raises(UserError, match=message) as e:
        run_cli("lm", "build", *argv, "-o", str(tmp_path / "lm.arpa"))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "lm.arpa").exists()


class _FakeTokenizer:
    """The interface model_lexicon and ``asr lm lang`` use: ``spell`` and ``lexicon_free``."""

    lexicon_free = False

    def spell(self, word):
        return None if "x" in word else [f"<{word}>", "_"]


def test_model_lexicon_spells_with_the_tokenizer():
    lexicon, skipped = model_lexicon(["ab", "xy", "c", "ab", "xx"], _FakeTokenizer())
    assert lexicon == {"ab": ["<ab>", "_"], "c": ["<c>", "_"]}  # first-occurrence order, once
    assert list(lexicon) == ["ab", "c"] and skipped == 2


def _model_file(path: Path, tok) -> Path:
    """A real (tiny, untrained) model file with this tokenizer."""
    from asr.config import load_config
    from asr.inference import Recognizer

    cfg = load_config(None, ["model.hidden=8", "model.layers=1", "features.n_mels=20"])
    d = cfg.features.dim
    Recognizer(cfg, tok, {"mean": torch.zeros(d), "std": torch.ones(d)}).save(path)
    return path


def test_cli_lang_char_model_spells_the_lm_words(tmp_path, capsys):
    from flashlight.lib.text.dictionary import load_words

    from asr.tokenizer import CharTokenizer

    tok = CharTokenizer.build(["CAT HAT", "TO"])
    model = _model_file(tmp_path / "model.pt", tok)
    text = tmp_path / "text.txt"
    text.write_text("HAT CAT\nSAT CAT TO <unk>\n\n")  # S is no token; <unk> is the LM's own
    out = tmp_path / "lang"
    assert run_cli("lm", "lang", str(model), str(text), "--out", str(out)) == 0
    assert (out / "tokens.txt").read_text().splitlines() == tok.symbols
    assert (out / "lexicon.txt").read_text().splitlines() == [
        "HAT\tH A T |", "CAT\tC A T |", "TO\tT O |"]
    assert "3 words, 1 not spellable" in capsys.readouterr().out
    assert load_words(str(out / "lexicon.txt"))["CAT"] == [["C", "A", "T", "|"]]  # flashlight reads it
    for word in ("HAT", "CAT", "TO"):  # the spelling's token ids are the model's encoding of the word
        spelling = load_words(str(out / "lexicon.txt"))[word][0]
        assert [tok.symbols.index(t) for t in spelling] == tok.encode(word + " ")


def test_cli_lang_lexicon_free_model_writes_tokens_only(tmp_path, capsys):
    from asr.tokenizer import WordTokenizer

    tok = WordTokenizer.build(["YES NO"])
    model = _model_file(tmp_path / "model.pt", tok)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": "YES NO"}) + "\n")
    out = tmp_path / "lang"
    out.mkdir()
    (out / "lexicon.txt").write_text("stale\tx\n")
    assert run_cli("lm", "lang", str(model), str(manifest), "--out", str(out)) == 0
    assert (out / "tokens.txt").read_text().splitlines() == ["<blank>", "NO", "YES"]
    assert not (out / "lexicon.txt").exists()
    assert "lexicon-free" in capsys.readouterr().out


def test_cli_lang_errors(tmp_path):
    (tmp_path / "text.txt").write_text("A\n")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not found"):
        run_cli("lm", "lang", str(tmp_path / "none.pt"), str(tmp_path / "text.txt"), "--out", str(tmp_path))
    with pytest.raises(UserError, match="junk.pt"):
        run_cli("lm", "lang", str(tmp_path / "junk.pt"), str(tmp_path / "text.txt"), "--out", str(tmp_path))


def test_cli_build_normalises_with_a_config(tmp_path):
    """``--config`` (+ ``--override``): the LM and ``--text-out`` hold the texts as that training
    config normalises its targets; sentences left empty are dropped."""
    manifest = tmp_path / "train.jsonl"
    texts = ["Hello, world!", "  it's   FINE.", "?!", "hello again"]
    manifest.write_text("".join(json.dumps({"id": str(i), "audio_path": "x.wav", "duration": 1.0,
                                            "text": t, "speaker": "s"}) + "\n"
                                for i, t in enumerate(texts)))
    config = tmp_path / "train.yaml"
    config.write_text("text: {case: upper}\ntrain: {epochs: 3}\n")
    arpa, text_out = tmp_path / "lm.arpa", tmp_path / "lm" / "text.txt"
    assert run_cli("lm", "build", str(manifest), "-o", str(arpa), "--order", "2", "--config", str(config),
                   "--text-out", str(text_out), "--override", "text.case=lower", "train.epochs=5") == 0
    expected = ["hello world", "it's fine", "hello again"]
    assert text_out.read_text() == "".join(t + "\n" for t in expected)
    assert NgramLM.load_arpa(arpa).logprobs == build(tmp_path, 2, expected)[0].logprobs
    # without --config: the texts as they are (whitespace collapsed), no sentence dropped but "?!"
    assert run_cli("lm", "build", str(manifest), "-o", str(arpa), "--text-out", str(text_out)) == 0
    assert text_out.read_text().splitlines() == ["Hello, world!", "it's FINE.", "?!", "hello again"]
    with pytest.raises(UserError, match="--override needs --config"):
        run_cli("lm", "build", str(manifest), "-o", str(arpa), "--override", "text.case=lower")
    with pytest.raises(UserError):
        run_cli("lm", "build", str(manifest), "-o", str(arpa), "--config", str(config),
                "--override", "text.case=sideways")
