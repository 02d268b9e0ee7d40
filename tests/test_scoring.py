"""Scoring counts (against jiwer and by hand), normalisation, readers, speakers and the CLI."""

from __future__ import annotations

import argparse
import json
import random

import jiwer
import pytest

from asr.errors import UserError
from asr.scoring import Counts, TextNorm, score_texts
from asr.scoring.align import align_words, char_counts, format_alignment
from asr.text import SCORING_DEFAULT
from asr.cli.score import add_parser
from asr.scoring.io import ID_PREFIX_SOURCE, read_transcripts, resolve_speakers

# (ref, hyp, (hits, subs, dels, ins)) counted by hand at word level.
HAND_CASES = [
    ("the cat sat", "the cat sat", (3, 0, 0, 0)),
    ("the cat sat on the mat", "the cat sit on mat", (4, 1, 1, 0)),
    ("a b c", "", (0, 0, 3, 0)),  # empty hypothesis
    ("", "x y z", (0, 0, 0, 3)),  # empty reference: all insertions
    ("", "", (0, 0, 0, 0)),  # both empty
    ("a b", "x a b y z", (2, 0, 0, 3)),  # insertions around hits
    ("one two three", "four five six", (0, 3, 0, 0)),
]


def _jiwer_words(ref: str, hyp: str) -> tuple[int, int, int, int]:
    o = jiwer.process_words(ref, hyp)
    return o.hits, o.substitutions, o.deletions, o.insertions


@pytest.mark.parametrize("ref,hyp,expected", HAND_CASES)
def test_hand_cases_match_hand_counts_and_jiwer(ref, hyp, expected):
    r = score_texts({"u": ref}, {"u": hyp}, n_bootstrap=0)
    got = (r.words.hits, r.words.subs, r.words.dels, r.words.ins)
    assert got == expected
    if ref:  # some jiwer versions refuse empty references; ours are defined by hand above
        assert got == _jiwer_words(ref, hyp)
        c = jiwer.process_characters(ref, hyp)
        assert (r.chars.hits, r.chars.subs, r.chars.dels, r.chars.ins) == (
            c.hits, c.substitutions, c.deletions, c.insertions)
    else:
        assert r.chars == Counts(ins=len(hyp))


def test_corpus_wer_over_all_reference_words_including_empty_refs():
    refs = {f"u{i}": r for i, (r, _, _) in enumerate(HAND_CASES)}
    hyps = {f"u{i}": h for i, (_, h, _) in enumerate(HAND_CASES)}
    r = score_texts(refs, hyps, n_bootstrap=0)
    h, s, d, i = (sum(c[2][k] for c in HAND_CASES) for k in range(4))
    assert (r.words.hits, r.words.subs, r.words.dels, r.words.ins) == (h, s, d, i)
    assert r.words.ref_len == 3 + 6 + 3 + 0 + 0 + 2 + 3
    assert r.wer == pytest.approx((s + d + i) / (h + s + d))
    # SER: every utterance with an error; "the cat sat" and the both-empty pair are correct
    assert r.n_sent_err == len(HAND_CASES) - 2
    assert r.ser == pytest.approx(r.n_sent_err / len(HAND_CASES))
    nonempty = [(a, b) for a, b, _ in HAND_CASES if a]
    o = jiwer.process_words([a for a, _ in nonempty], [b for _, b in nonempty])
    extra_ins = sum(len(b.split()) for a, b, _ in HAND_CASES if not a)
    assert (r.words.subs, r.words.dels, r.words.ins) == (
        o.substitutions, o.deletions, o.insertions + extra_ins)


def test_empty_reference_rates_are_defined():
    assert score_texts({"u": ""}, {"u": ""}, n_bootstrap=0).wer == 0.0
    assert score_texts({"u": ""}, {"u": "a"}, n_bootstrap=0).wer == float("inf")
    assert Counts(ins=2).rate == float("inf")


def test_random_corpus_counts_equal_jiwer_exactly():
    rng = random.Random(0)
    vocab = ["a", "b", "c", "dd", "eee"]
    refs = [" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(150)]
    hyps = [" ".join(rng.choices(vocab, k=rng.randint(0, 12))) for _ in range(150)]
    ops = align_words(refs, hyps)
    chars = char_counts(refs, hyps)
    ow, oc = jiwer.process_words(refs, hyps), jiwer.process_characters(refs, hyps)
    tot = Counts()
    for r, h, o, c in zip(refs, hyps, ops, chars):
        got = (sum(t == "C" for t, _, _ in o), sum(t == "S" for t, _, _ in o),
               sum(t == "D" for t, _, _ in o), sum(t == "I" for t, _, _ in o))
        assert got == _jiwer_words(r, h)
        one = jiwer.process_characters(r, h)
        assert (c.hits, c.subs, c.dels, c.ins) == (
            one.hits, one.substitutions, one.deletions, one.insertions)
        tot = tot + Counts(*got)
    assert (tot.hits, tot.subs, tot.dels, tot.ins) == (
        ow.hits, ow.substitutions, ow.deletions, ow.insertions)
    assert sum(chars, Counts()).errors == oc.substitutions + oc.deletions + oc.insertions
    r = score_texts({f"u{i}": x for i, x in enumerate(refs)},
                    {f"u{i}": x for i, x in enumerate(hyps)}, n_bootstrap=0)
    assert r.wer == pytest.approx(ow.wer)
    assert r.cer == pytest.approx(oc.cer)


def test_normalisation_options_change_counts_and_are_described():
    ref, hyp = {"u": "Hello, World! don't"}, {"u": "hello world dont"}
    raw = score_texts(ref, hyp, n_bootstrap=0)
    assert raw.words.errors == 3
    norm = TextNorm(case="lower", strip_punct=True, nfkc=False)
    clean = score_texts(ref, hyp, normalization=norm, n_bootstrap=0)
    assert clean.utts[0].ref == "hello world don't"
    assert clean.words.errors == 1  # "don't" vs "dont" stays a substitution
    assert norm(" 'quoted'  text-here ") == "quoted text here"
    assert SCORING_DEFAULT("  A \t B\n") == "A B"
    assert raw.normalization.describe() == "keep-case, punctuation kept, whitespace collapsed"
    assert "lowercased" in norm.describe() and "punctuation stripped" in norm.describe()


def test_alignment_columns_line_up_like_sclite_pra():
    ops = [("C", "the", "the"), ("S", "cat", "rabbit"), ("D", "sat", None), ("I", None, "x")]
    ref, hyp, ev = format_alignment(ops)
    assert ref == "the cat    sat ***"
    assert hyp == "the rabbit *** x"
    assert ev == "    S      D   I"
    assert hyp.index("***") == ev.index("D") == ref.index("sat")  # columns line up


def test_confusion_lists():
    r = score_texts({"a": "x y z", "b": "x y w"}, {"a": "x q", "b": "k x q w"}, n_bootstrap=0)
    assert r.top_substitutions() == [("y", "q", 2)]
    assert r.top_deletions() == [("z", 1)]
    assert r.top_insertions() == [("k", 1)]


def test_missing_hyp_is_empty_and_extra_hyp_is_a_one_line_error():
    r = score_texts({"a": "x y", "b": "z"}, {"a": "x y"}, n_bootstrap=0)
    assert r.missing_hyp_ids == ["b"] and r.words.dels == 1
    with pytest.raises(UserError) as e:
        score_texts({"a": "x"}, {"a": "x", "zz": "y"}, ref_name="R", hyp_name="H")
    assert "\n" not in str(e.value) and "'zz'" in str(e.value) and "H" in str(e.value)


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _manifest(tmp_path, rows):
    return _write(tmp_path / "ref.jsonl", [json.dumps(
        {"id": i, "audio_path": f"{i}.wav", "duration": 1.0, "text": t, "speaker": s})
        for i, t, s in rows])


def test_readers_detect_format_and_speakers(tmp_path):
    ref = read_transcripts(_manifest(tmp_path, [("s1-a", "hi there", "alice"),
                                                ("s2-b", "", "bob")]))
    assert ref.format == "jsonl-manifest" and ref.texts == {"s1-a": "hi there", "s2-b": ""}
    kt = read_transcripts(_write(tmp_path / "text", ["s1-a hi  there", "s2-b", ""]))
    assert kt.format == "kaldi-text" and kt.texts == {"s1-a": "hi  there", "s2-b": ""}
    jt = read_transcripts(_write(tmp_path / "hyps.jsonl", [  # the evaluator's hyps.jsonl
        json.dumps({"id": "s1-a", "text": "hi", "score": -1.0}), ""]))
    assert jt.format == "jsonl-id-text" and jt.texts == {"s1-a": "hi"} and jt.speakers is None
    spk, src = resolve_speakers(ref.texts, ref)
    assert spk == {"s1-a": "alice", "s2-b": "bob"} and "manifest" in src
    spk, src = resolve_speakers(kt.texts, kt)
    assert spk == {"s1-a": "s1", "s2-b": "s2"} and src == ID_PREFIX_SOURCE
    u2s = _write(tmp_path / "utt2spk", ["s1-a carol", "s2-b dave"])
    spk, src = resolve_speakers(ref.texts, ref, u2s)
    assert spk == {"s1-a": "carol", "s2-b": "dave"} and "utt2spk" in src


def test_reader_errors_name_file_and_line(tmp_path):
    with pytest.raises(UserError, match=r"text:2: duplicate id 'a'"):
        read_transcripts(_write(tmp_path / "text", ["a x", "a y"]))
    with pytest.raises(UserError, match=r"j.jsonl:2: field 'text' must be a string"):
        read_transcripts(_write(tmp_path / "j.jsonl", ['{"id": "a", "text": "x"}', '{"id": "b"}']))
    with pytest.raises(UserError, match="not found"):
        read_transcripts(tmp_path / "nope")
    kt = read_transcripts(_write(tmp_path / "t2", ["a x", "b y"]))
    with pytest.raises(UserError, match="no speaker for utterance 'b'"):
        resolve_speakers(kt.texts, kt, _write(tmp_path / "u2s", ["a s"]))


def _cli(argv):
    p = argparse.ArgumentParser(prog="asr")
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["score", *argv])
    return args.func(args)


def test_cli_scores_manifest_against_kaldi_text(tmp_path, capsys):
    ref = _manifest(tmp_path, [("u1", "The cat sat", "alice"), ("u2", "a b", "bob"),
                               ("u3", "c", "bob")])
    hyp = _write(tmp_path / "hyp", ["u1 the cat", "u2 a b"])
    assert _cli([str(ref), str(hyp), "--lowercase", "--bootstrap", "50"]) == 0
    out, err = capsys.readouterr()
    # S=0 D=2 I=0 over N=6 words: "sat" deleted, u3 missing
    assert "WER 33.33%" in out and "S=0 D=2 I=0" in out
    assert "lowercased, punctuation kept" in out and "manifest" in out
    assert "1 reference utterance(s) have no hypothesis" in err


def test_cli_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    ref = _write(tmp_path / "ref", ["u1 a b"])
    hyp = _write(tmp_path / "hyp", ["u1 a b", "u9 c"])
    assert _cli([str(ref), str(hyp), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "u9" in err and "not in the reference" in err
    assert _cli([str(ref), str(tmp_path / "missing"), "--bootstrap", "0"]) == 2


def test_one_empty_reference_rule_everywhere():
    """An empty reference with errors: an infinite rate in Python, null in JSON; 0/0 is 0."""
    import json

    from asr.evaluate import format_summary
    from asr.scoring import error_counts, json_ready

    words, chars = error_counts([""], ["a b"])
    assert (words.ins, words.rate, chars.rate) == (2, float("inf"), float("inf"))
    assert error_counts([""], [""])[0].rate == 0.0
    assert score_texts({"u": ""}, {"u": "a b"}, n_bootstrap=0).wer == float("inf")
    d = json.loads(json.dumps(json_ready({"wer": words.to_dict()})))
    assert d["wer"]["rate"] is None and d["wer"]["ins"] == 2
    line = format_summary({"wer": d["wer"], "cer": chars.to_dict(), "utterances": 1})
    assert line.startswith("%WER inf [ 2 / 0, 0 sub, 0 del, 2 ins ]")
