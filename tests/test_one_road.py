"""One road from audio to text: ``asr evaluate``, ``asr transcribe`` and the Python API give the
same audio the same text, the same word times and the same confidences, because they share one
forward path (Recognizer.forward) and one definition of word times (forced alignment)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from test_align import SR, tone_recognizer, tone_sentence


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Six short files of two tone sentences each, with a 0.4-0.7 s pause between them (long
    enough for the pause detector to cut there), and their manifest."""
    d = tmp_path_factory.mktemp("one_road")
    rng = random.Random(21)
    lines, paths = [], []
    for i in range(6):
        a, ta, _ = tone_sentence(rng, 2)
        b, tb, _ = tone_sentence(rng, 2)
        pause = 0.003 * np.random.default_rng(i).standard_normal(int(rng.uniform(0.4, 0.7) * SR))
        wave = np.concatenate([a, pause.astype(np.float32), b])
        paths.append(d / f"f{i}.wav")
        sf.write(paths[-1], wave, SR)
        lines.append(json.dumps({"id": f"f{i}", "audio_path": str(paths[-1]), "speaker": "s",
                                 "duration": len(wave) / SR, "text": f"{ta} {tb}"}))
    (d / "set.jsonl").write_text("\n".join(lines) + "\n")
    model = d / "model.pt"
    tone_recognizer().save(model)
    return d, model, paths


def test_evaluate_transcribe_and_api_agree_on_text_and_word_times(files, capsys):
    d, model, paths = files
    code, _, err = run_cli(["evaluate", model, d / "set.jsonl", "--out", d / "eval"], capsys)
    assert code == 0, err
    evaluated = [json.loads(line) for line in (d / "eval" / "hyps.jsonl").read_text().splitlines()]
    code, out, err = run_cli(["transcribe", model, *paths, "--format", "json"], capsys)
    assert code == 0, err
    transcribed = [json.loads(line) for line in out.splitlines()]
    from asr.inference import load_model

    api = load_model(model).recognize(paths)
    assert [e["text"] for e in evaluated] == [t["text"] for t in transcribed] \
        == [a.text for a in api]
    assert sum(e["text"] == e["ref"] for e in evaluated) >= 4  # the model works on these files
    for e, t, a in zip(evaluated, transcribed, api, strict=True):
        assert len(e["words"]) == len(t["words"]) == len(a.words) == len(e["text"].split())
        for ew, tw, aw in zip(e["words"], t["words"], a.words):
            assert ew["word"] == tw["word"] == aw.word
            assert round(ew["start"], 3) == tw["start"] == round(aw.start, 3)
            assert round(ew["end"], 3) == tw["end"] == round(aw.end, 3)
            assert ew["confidence"] == pytest.approx(tw["confidence"], abs=1e-3)
            assert ew["confidence"] == pytest.approx(aw.confidence, abs=1e-3)


def test_a_file_shorter_than_a_segment_is_decoded_whole(files):
    from asr.chunks import ChunkConfig, iter_chunks

    _, _, paths = files
    for p in paths:
        (chunk,) = iter_chunks(str(p), SR, ChunkConfig())  # 30 s segments: one chunk
        assert chunk.first and chunk.last and chunk.start == 0.0
        assert len(chunk.wave) == sf.info(str(p)).frames
        # with segments shorter than the file, it is cut at its pause
        assert len(list(iter_chunks(str(p), SR, ChunkConfig(chunk_seconds=2.0)))) >= 2


def test_a_decode_yaml_beside_the_model_switches_all_three_to_the_same_beam_search(
        files, tmp_path, capsys):
    """decode.yaml (written by --tune) makes evaluate, transcribe and the API beam-search alike;
    a two-word lexicon makes beam search visibly differ from greedy."""
    from asr.decode.beam import BeamConfig
    from asr.inference import load_model
    from asr.lm import model_lexicon, write_lexicon
    from asr.tune import save_beam_config

    d, _, paths = files
    model = tmp_path / "exp" / "model.pt"
    tone_recognizer().save(model)
    lexicon, _ = model_lexicon(["AB", "CD"], tone_recognizer().tokenizer)
    write_lexicon(tmp_path / "lex.txt", lexicon)
    save_beam_config(model.parent / "decode.yaml", BeamConfig(lexicon=str(tmp_path / "lex.txt")))
    code, _, err = run_cli(["evaluate", model, d / "set.jsonl", "--out", tmp_path / "e"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "e" / "wer.json").read_text())
    assert summary["decoder"]["type"] == "beam"
    evaluated = [line.split(" ", 1)[1] for line in (tmp_path / "e" / "hyp.txt").read_text()
                 .splitlines()]
    code, out, err = run_cli(["transcribe", model, *paths], capsys)
    assert code == 0, err
    rec = load_model(model)
    assert evaluated == out.splitlines() == rec.transcribe(paths)
    assert all(set(t.split()) <= {"AB", "CD"} for t in evaluated)
    assert rec.transcribe(paths, "greedy") != evaluated  # the lexicon changed the text


def test_tuning_needs_beam_search_and_an_lm(files, capsys):
    d, model, _ = files
    code, _, err = run_cli(["evaluate", model, d / "set.jsonl", "--tune", "--decoder", "greedy"],
                           capsys)
    assert code == 2 and "cannot go with --decoder greedy" in err
    code, _, err = run_cli(["evaluate", model, d / "set.jsonl", "--tune"], capsys)
    assert code == 2 and "--tune needs a language model" in err


def test_files_longer_than_the_models_training_utterances_are_cut_at_pauses(files, tmp_path):
    """A file no longer than the longest training utterance (recorded in the model file) is
    decoded whole; a longer one holds several utterances and is cut at its pauses."""
    from asr.inference import load_model
    from asr.transcribe import Transcriber

    _, _, paths = files
    rec = tone_recognizer()
    durations = [sf.info(str(p)).duration for p in paths]
    rec.longest_utterance = min(durations) - 0.01  # every file is longer
    rec.save(tmp_path / "model.pt")
    rec.longest_utterance = None
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.longest_utterance == pytest.approx(min(durations) - 0.01)
    tr = Transcriber(loaded)
    assert tr.cfg.whole_seconds == loaded.longest_utterance
    chunks = [list(tr._stream([str(p)], {})) for p in paths]
    assert all(len(c) >= 2 for c in chunks)  # cut at the pause between the two sentences
    loaded.longest_utterance = max(durations)
    assert all(len(list(Transcriber(loaded)._stream([str(p)], {}))) == 1 for p in paths)
