"""Beam search (flashlight via torchaudio) on hand-made emission grids: lexicon + LM fixes a
misspelling that greedy makes, n-best is distinct, lexicon-free mode, settings and tuning; then
``asr decode --tune`` end to end on the tone model."""

from __future__ import annotations

import json
import math
import random

import pytest
import soundfile as sf
import torch
import yaml

from asr.cli import main
from asr.decode.beam import BeamConfig, BeamDecoder
from asr.decode.greedy import greedy_decode
from asr.errors import UserError
from asr.inference import Recognizer
from asr.lm import build_ngram_lm, model_lexicon, sentences_from_lines, write_lexicon
from asr.tokenizer import BLANK, CharTokenizer
from asr.tune import grid_search, load_beam_config, save_beam_config

TOK = CharTokenizer(["<blank>", "|", "A", "C", "D", "G", "K", "O", "T"])
FRAME = 0.02


def grid(rows: list[dict[str, float]]) -> torch.Tensor:
    """(1, T, V) log-probs from per-frame probabilities; unlisted symbols share the rest."""
    S = TOK.symbols
    out = []
    for r in rows:
        rest = (1.0 - sum(r.values())) / (len(S) - len(r))
        out.append([r.get(s, rest) for s in S])
    return torch.tensor(out).log().unsqueeze(0)


# "CAK DOG": the acoustic model slightly prefers K over T in the third letter.
CAK_DOG = grid([{"C": .9}, {"<blank>": .9}, {"A": .9}, {"<blank>": .9}, {"K": .5, "T": .4},
                {"<blank>": .9}, {"|": .9}, {"D": .9}, {"<blank>": .9}, {"O": .9}, {"G": .9}])


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("lm")
    lines = ["CAT DOG", "DOG CAT", "CAT", "CAT", "DOG", "COT DOG"]
    build_ngram_lm(sentences_from_lines(lines), 2).write_arpa(d / "lm.arpa")
    lexicon, skipped = model_lexicon(["CAT", "DOG", "COT"], TOK)
    assert skipped == 0
    write_lexicon(d / "lexicon.txt", lexicon)
    return str(d / "lexicon.txt"), str(d / "lm.arpa")


def greedy_text(lp: torch.Tensor) -> str:
    return greedy_decode(lp, torch.tensor([lp.shape[1]]), TOK, FRAME)[0].text


def test_lexicon_and_lm_prefer_the_in_lexicon_word(lm_files):
    lexicon, lm = lm_files
    assert greedy_text(CAK_DOG) == "CAK DOG"
    for cfg in (BeamConfig(lexicon=lexicon, lm=lm, lm_weight=1.0), BeamConfig(lexicon=lexicon)):
        (best, *_), = BeamDecoder(TOK, cfg)(CAK_DOG, None, FRAME)
        assert best.text == "CAT DOG"
        assert best.tokens == TOK.encode("CAT DOG")
        assert best.timesteps == [0, 2, 4, 6, 7, 9, 10]  # frame where each token starts
        assert [w.word for w in best.words] == ["CAT", "DOG"]
        assert best.words[0].start == pytest.approx(0.0)
        assert best.words[1].end == pytest.approx(11 * FRAME)  # last frame of G
        assert all(0 < w.confidence <= 1 for w in best.words)


def test_lm_weight_changes_the_choice(lm_files):
    lexicon, lm = lm_files
    # "C?T": O is acoustically a little likelier than A, but the LM prefers the sentence CAT.
    lp = grid([{"C": .9}, {"<blank>": .9}, {"O": .45, "A": .4}, {"<blank>": .9}, {"T": .9}])
    (am,) = BeamDecoder(TOK, BeamConfig(lexicon=lexicon, lm=lm, lm_weight=0.0))(lp)
    (lm_on,) = BeamDecoder(TOK, BeamConfig(lexicon=lexicon, lm=lm, lm_weight=2.0))(lp)
    assert am[0].text == "COT" and lm_on[0].text == "CAT"


def test_nbest_is_distinct_and_sorted(lm_files):
    lexicon, lm = lm_files
    # N-best lists want a wide search: the default pruning (8 tokens, threshold 10) keeps
    # only two distinct texts here.
    wide = dict(beam_size=20, beam_size_token=0, beam_threshold=25.0)
    for cfg in (BeamConfig(lexicon=lexicon, lm=lm, nbest=3, **wide), BeamConfig(nbest=4, **wide)):
        (nbest,) = BeamDecoder(TOK, cfg)(CAK_DOG, torch.tensor([11]), FRAME)
        texts = [h.text for h in nbest]
        assert len(texts) == cfg.nbest and len(set(texts)) == cfg.nbest, texts
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)


def test_lexicon_free_mode(tmp_path):
    (nbest,) = BeamDecoder(TOK, BeamConfig())(CAK_DOG, None, FRAME)
    assert nbest[0].text == "CAK DOG"  # no lexicon, no LM: the acoustically best spelling
    assert nbest[0].score == pytest.approx(float(CAK_DOG.max(-1).values.sum()), abs=1e-4)
    # A token-level LM (its words are the model's symbols) fixes the spelling without a lexicon.
    spelled = [" ".join("|" if c == " " else c for c in s) for s in ["CAT DOG", "DOG CAT", "CAT"]]
    build_ngram_lm(sentences_from_lines(spelled), 3).write_arpa(tmp_path / "chars.arpa")
    cfg = BeamConfig(lm=str(tmp_path / "chars.arpa"), lm_weight=1.0)
    (nbest,) = BeamDecoder(TOK, cfg)(CAK_DOG, None, FRAME)
    assert nbest[0].text == "CAT DOG"


def test_batch_with_lengths_and_empty_utterance(lm_files):
    lexicon, _ = lm_files
    lp = torch.cat([CAK_DOG, CAK_DOG])
    out = BeamDecoder(TOK, BeamConfig(lexicon=lexicon))(lp, torch.tensor([11, 0]), FRAME)
    assert out[0][0].text == "CAT DOG" and out[1][0].text == "" and out[1][0].words == []


def test_bad_settings_are_one_line_user_errors(tmp_path, lm_files):
    with pytest.raises(UserError, match="lexicon file not found"):
        BeamDecoder(TOK, BeamConfig(lexicon=str(tmp_path / "nope.txt")))
    bad = tmp_path / "bad.txt"
    bad.write_text("CAT C A T |\nXYZ X Y Z |\n")
    with pytest.raises(UserError, match=r"bad.txt:2: token\(s\) X Y Z"):
        BeamDecoder(TOK, BeamConfig(lexicon=str(bad)))
    with pytest.raises(UserError, match="language model file not found"):
        BeamDecoder(TOK, BeamConfig(lm=str(tmp_path / "nope.arpa")))
    (tmp_path / "bad.arpa").write_text("not\nan arpa file\n")
    with pytest.raises(UserError) as e:  # KenLM's own text is not passed on
        BeamDecoder(TOK, BeamConfig(lm=str(tmp_path / "bad.arpa")))
    assert str(e.value) == (f"cannot build the beam decoder from the language model "
                            f"{tmp_path / 'bad.arpa'} (not an ARPA or KenLM binary file it can "
                            "read, or its words do not fit the lexicon)")
    with pytest.raises(ValueError, match="nbest"):
        BeamConfig(nbest=5, beam_size=2)
    with pytest.raises(ValueError, match="3-D"):
        BeamDecoder(TOK, BeamConfig())(CAK_DOG[0])


def test_decode_yaml_round_trip(tmp_path, lm_files):
    lexicon, lm = lm_files
    cfg = BeamConfig(lexicon=lexicon, lm=lm, lm_weight=0.7, word_score=-1.0, beam_size=8)
    save_beam_config(tmp_path / "decode.yaml", cfg)
    assert yaml.safe_load((tmp_path / "decode.yaml").read_text())["unk_score"] == -math.inf
    assert load_beam_config(tmp_path / "decode.yaml") == cfg
    (tmp_path / "decode.yaml").write_text("beam_size: 4\nbogus: 1\n")
    with pytest.raises(UserError, match="bogus"):
        load_beam_config(tmp_path / "decode.yaml")


def test_grid_search_picks_the_lm_weight_that_fixes_errors(lm_files):
    lexicon, lm = lm_files
    cot = grid([{"C": .9}, {"<blank>": .9}, {"O": .45, "A": .4}, {"<blank>": .9}, {"T": .9}])
    emissions = {"u1": cot[0], "u2": CAK_DOG[0]}
    best, table = grid_search(emissions, ["u1", "u2"], ["CAT", "CAT DOG"], TOK,
                              BeamConfig(lexicon=lexicon, lm=lm), [0.0, 2.0], [0.0],
                              log=lambda s: None)
    assert [(r["lm_weight"], r["wer"]) for r in table] == [(0.0, 1 / 3), (2.0, 0.0)]
    assert best.lm_weight == 2.0 and best.lexicon == lexicon


def test_grid_search_tunes_the_silence_score():
    # A character model's word boundary "|" is flashlight's silence token: a weak "|" inside CAT
    # splits the word unless the silence score penalises it.
    split = grid([{"C": .9}, {"<blank>": .9}, {"A": .9}, {"|": .55, "<blank>": .4}, {"T": .9}])
    best, table = grid_search({"u": split[0]}, ["u"], ["CAT"], TOK, BeamConfig(), [0.0], [0.0],
                              log=lambda s: None, sil_scores=[0.0, -2.0])
    assert [(r["sil_score"], r["wer"]) for r in table] == [(0.0, 2.0), (-2.0, 0.0)]
    assert best.sil_score == -2.0
    # Without a grid the base value is kept.
    _, table = grid_search({"u": split[0]}, ["u"], ["CAT"], TOK, BeamConfig(sil_score=-1.0),
                           [0.0], [0.0], log=lambda s: None)
    assert [r["sil_score"] for r in table] == [-1.0]


def test_default_sil_grid_only_for_models_whose_silence_is_a_real_token():
    from asr.tune import default_sil_scores
    from asr.tokenizer import WordTokenizer

    assert default_sil_scores(TOK) == [0.0, -1.0, -2.0, -3.0]  # ties keep 0
    word = WordTokenizer.build(["CAT DOG"])
    assert default_sil_scores(word) is None  # silence = blank: the current value is kept


def test_asr_decode_tune_cli(tmp_path, capsys, monkeypatch):
    from test_align import tone_recognizer, tone_sentence

    rec = tone_recognizer()
    model = tmp_path / "exp" / "model.pt"
    rec.save(model)
    rng = random.Random(5)
    lines = []
    for i in range(3):
        wave, text, _ = tone_sentence(rng)
        sf.write(tmp_path / f"u{i}.wav", wave, 8000)
        lines.append(json.dumps({"id": f"u{i}", "audio_path": f"u{i}.wav",
                                 "duration": len(wave) / 8000, "text": text, "speaker": "s"}))
    (tmp_path / "dev.jsonl").write_text("\n".join(lines) + "\n")
    words = ["AB", "CD", "EA", "BEC", "DAB", "CE"]
    lexicon, _ = model_lexicon(words, rec.tokenizer)
    write_lexicon(tmp_path / "lex.txt", lexicon)
    build_ngram_lm(sentences_from_lines(words), 2).write_arpa(tmp_path / "lm.arpa")
    out = tmp_path / "dec"
    argv = ["decode", str(model), str(tmp_path / "dev.jsonl"),
            "--lexicon", str(tmp_path / "lex.txt"),
            "--lm", str(tmp_path / "lm.arpa"), "--tune", "--lm-weights", "0,1",
            "--word-scores", "0", "--beam-size", "10", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "wer.json").read_text())
    assert summary["decoder"]["type"] == "beam" and summary["decoder"]["beam_size"] == 10
    assert summary["decoder"]["lm_weight"] in (0.0, 1.0)
    assert summary["wer"]["rate"] == 0.0
    assert len((out / "hyp.txt").read_text().splitlines()) == 3
    # 2 LM weights x 1 word score x the character model's 4 silence scores; ties keep 0.
    assert len(json.loads((out / "tune.json").read_text())["grid"]) == 8
    assert summary["decoder"]["sil_score"] == 0.0
    saved = load_beam_config(model.parent / "decode.yaml")
    assert saved.lexicon == str(tmp_path / "lex.txt") and saved.beam_size == 10
    assert (out / "emissions.pt").is_file()
    # A second run takes its settings from decode.yaml and reuses the cached log-probs.
    monkeypatch.setattr(Recognizer, "forward", lambda *a, **k: pytest.fail("model rerun"))
    assert main(argv[:3] + ["--out", str(out)]) == 0
    assert json.loads((out / "wer.json").read_text())["decoder"]["lexicon"] == saved.lexicon
    assert "%WER 0.00" in capsys.readouterr().out
    # An explicit --sil-score is kept during tuning, not replaced by the grid.
    assert main(argv + ["--sil-score", "-1"]) == 0
    assert {r["sil_score"] for r in json.loads((out / "tune.json").read_text())["grid"]} == {-1.0}
    assert load_beam_config(model.parent / "decode.yaml").sil_score == -1.0


def test_sentencepiece_model_lexicon_free_and_with_lexicon(tmp_path):
    from asr.tokenizer import BPETokenizer

    tok = BPETokenizer.build(["CAT DOG", "DOG CAT", "CAT", "DOG", "COT DOG", "GOAT", "TACO"] * 5,
                             16)
    ids = tok.encode("CAT DOG")
    rows = torch.full((2 * len(ids) + 1, len(tok.symbols)), 0.01)
    rows[::2, 0] = 1.0  # blank between the pieces
    for k, i in enumerate(ids):
        rows[2 * k + 1, i] = 1.0
    lp = (rows / rows.sum(-1, keepdim=True)).log().unsqueeze(0)
    lexicon, _ = model_lexicon(["CAT", "DOG", "COT"], tok)
    write_lexicon(tmp_path / "lex.txt", lexicon)
    for cfg in (BeamConfig(), BeamConfig(lexicon=str(tmp_path / "lex.txt"))):
        (best, *_), = BeamDecoder(tok, cfg)(lp, None, FRAME)
        assert best.text == "CAT DOG" and best.tokens == ids
        assert [w.word for w in best.words] == ["CAT", "DOG"]  # words start at "▁" pieces


def test_word_model_decodes_lexicon_free_with_a_word_lm(tmp_path):
    """A word model's tokens are its words: lexicon-free search with a word LM. A spike over two
    frames is one word; a lexicon is refused (flashlight would split such spikes into two)."""
    from asr.tokenizer import WordTokenizer

    tok = WordTokenizer.build(["CAT DOG", "COT"])  # <blank> CAT COT DOG
    S = tok.symbols
    rows = [{"CAT": .45, "COT": .5}, {"CAT": .45, "COT": .5}, {"<blank>": .9}, {"DOG": .9}]
    lp = torch.tensor([[r.get(s, (1 - sum(r.values())) / (len(S) - len(r))) for s in S]
                       for r in rows]).log().unsqueeze(0)
    build_ngram_lm(sentences_from_lines(["CAT DOG"] * 5 + ["COT"]), 2).write_arpa(
        tmp_path / "lm.arpa")
    (am,), = BeamDecoder(tok, BeamConfig())(lp, None, FRAME)
    assert am.text == "COT DOG" and [w.word for w in am.words] == ["COT", "DOG"]
    (lm,), = BeamDecoder(tok, BeamConfig(lm=str(tmp_path / "lm.arpa"), lm_weight=2.0))(
        lp, None, FRAME)
    assert lm.text == "CAT DOG"
    write_lexicon(tmp_path / "lex.txt", {w: [w] for w in S[1:]})
    with pytest.raises(UserError, match="word model decodes without a lexicon"):
        BeamDecoder(tok, BeamConfig(lexicon=str(tmp_path / "lex.txt")))
    # Why it is refused: flashlight's lexicon search reads the two-frame spike as two words.
    # Should this start to pass as "COT DOG", the refusal can go.
    from torchaudio.models.decoder import ctc_decoder

    raw = ctc_decoder(lexicon=str(tmp_path / "lex.txt"), tokens=S, lm=None, nbest=1,
                      beam_size=10, blank_token=BLANK, sil_token=BLANK, unk_word="<unk>")
    assert len(raw(lp)[0][0].words) == 3  # e.g. CAT COT DOG


def test_hypotheses_are_torchaudios_own(lm_files):
    """BeamDecoder drives flashlight's decoder and reads its results itself: the texts,
    tokens, token frames (flashlight's step - 1) and scores equal what torchaudio's own
    ctc_decoder call returns for the same search, best first, in each mode."""
    from torchaudio.models.decoder import ctc_decoder

    lexicon, lm = lm_files
    # random log-probs: no two hypotheses tie (flashlight orders equal scores by memory
    # address, so two decoders may list tied ones differently)
    lp = (3 * torch.randn(1, 14, len(TOK.symbols), generator=torch.Generator().manual_seed(5))
          ).log_softmax(-1)
    wide = dict(beam_size=20, beam_size_token=0, beam_threshold=25.0)
    for cfg in (BeamConfig(lexicon=lexicon, lm=lm, nbest=3, **wide),
                BeamConfig(nbest=4, **wide), BeamConfig(lexicon=lexicon, lm=lm)):
        ours = BeamDecoder(TOK, cfg)(lp, None, FRAME)[0]
        em = lp[0]
        if cfg.lexicon:  # the closing separator frame BeamDecoder appends
            pad = torch.full((1, em.shape[1]), -1e4)
            pad[0, TOK.symbols.index("|")] = 0.0
            em = torch.cat([em, pad])
        ref = ctc_decoder(lexicon=cfg.lexicon or None, tokens=TOK.symbols, lm=cfg.lm or None,
                          nbest=cfg.beam_size, beam_size=cfg.beam_size,
                          beam_size_token=cfg.beam_size_token or None,
                          beam_threshold=cfg.beam_threshold, lm_weight=cfg.lm_weight,
                          sil_token="|", blank_token="<blank>",
                          unk_word="<unk>")(em.unsqueeze(0).contiguous())[0]
        n, seen, firsts = lp.shape[1], set(), []
        for r in ref:  # ours keeps the first (best) hypothesis of each distinct text
            keep = [(int(t), int(s) - 1) for t, s in zip(r.tokens, r.timesteps)
                    if 1 <= s <= n and t != 0]
            text = " ".join(r.words) if cfg.lexicon else TOK.decode([t for t, _ in keep])
            if text not in seen:
                seen.add(text)
                firsts.append((text, keep, r.score))
        assert len(ours) == min(cfg.nbest, len(firsts))
        assert cfg.nbest == 1 or len(ours) >= 2  # the n-best settings compare several
        assert len({sc for _, _, sc in firsts}) == len(firsts)
        for h, (text, keep, score) in zip(ours, firsts):
            assert h.text == text and h.score == pytest.approx(score)
            assert h.tokens == [t for t, _ in keep] and h.timesteps == [s for _, s in keep]
