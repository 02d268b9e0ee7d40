"""Long-form transcription: chunked reading with bounded memory, stitching at the seams, inputs,
output formats, the decoder choice and per-file error reporting. Uses the tone model trained in
test_align.py (a few seconds, once per session)."""

from __future__ import annotations

import difflib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.cli import main
from asr.errors import UserError
from asr.lm import model_lexicon, write_lexicon
from asr.chunks import ChunkConfig, choose_cut, iter_chunks
from asr.cli.transcribe import expand_inputs
from asr.transcribe import Transcriber
from conftest import record_chunked_reads
from test_align import SR, tone_recognizer, tone_sentence
from test_subtitles import parse_srt, parse_vtt


@pytest.fixture(scope="module")
def rec():
    return tone_recognizer()


@pytest.fixture(scope="module")
def model_file(rec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "model.pt"
    rec.save(path)
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """12 pieces of 3 tone words, written one file each and as one ~18 s recording."""
    d = tmp_path_factory.mktemp("long")
    rng = random.Random(3)
    pieces = [tone_sentence(rng, 3) for _ in range(12)]
    paths = []
    for i, (wave, _, _) in enumerate(pieces):
        paths.append(d / f"piece{i:02d}.wav")
        sf.write(paths[-1], wave, SR)
    whole = np.concatenate([w for w, _, _ in pieces])
    sf.write(d / "long.wav", whole, SR)
    return d, paths, [len(w) / SR for w, _, _ in pieces], whole


def transcribe(rec, paths, cfg=None, decoder=None):
    return [r for _, r in Transcriber(rec, decoder, cfg).transcribe([str(p) for p in paths])]


def test_chunked_equals_per_piece_except_at_seams(rec, recording):
    d, paths, durations, whole = recording
    per_piece = transcribe(rec, paths)
    offsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    ref = [(w.word, w.start + off) for r, off in zip(per_piece, offsets)
           for w in r.hypothesis.words]
    cfg = ChunkConfig(chunk_seconds=3.0, overlap_seconds=1.0, segment="fixed", batch_size=3)
    (long,) = transcribe(rec, [d / "long.wav"], cfg)
    assert long.duration == pytest.approx(len(whole) / SR)
    hyp = [(w.word, w.start) for w in long.hypothesis.words]
    assert long.hypothesis.text == " ".join(w for w, _ in hyp)
    seams = np.arange(1, 20) * 2.0 + 0.5  # middles of the overlaps (stride 2 s)
    seams = seams[seams < long.duration]
    sm = difflib.SequenceMatcher(a=[w for w, _ in ref], b=[w for w, _ in hyp], autojunk=False)
    mismatched = 0
    for op, i0, i1, j0, j1 in sm.get_opcodes():
        if op == "equal":
            for (_, t_ref), (_, t_hyp) in zip(ref[i0:i1], hyp[j0:j1]):
                assert abs(t_ref - t_hyp) < 0.045  # same word, same time (+- 2 frames)
            continue
        mismatched += max(i1 - i0, j1 - j0)
        times = [t for _, t in ref[i0:i1] + hyp[j0:j1]]
        assert all(np.min(np.abs(seams - t)) <= 1.0 for t in times), (op, ref[i0:i1], hyp[j0:j1])
    assert mismatched <= len(seams) // 3, f"{mismatched} words differ over {len(seams)} seams"
    assert len(ref) == 36


def test_reader_holds_at_most_one_chunk(rec, recording, monkeypatch):
    d, _, _, _ = recording
    whole = sf.read(d / "long.wav", dtype="float32")[0]  # as stored (16-bit)
    sizes = record_chunked_reads(monkeypatch)
    cfg = ChunkConfig(chunk_seconds=3.0, overlap_seconds=1.0, segment="fixed")
    chunks = list(iter_chunks(str(d / "long.wav"), SR, cfg))
    assert max(sizes) <= 3 * SR and len(sizes) >= 8
    assert all(c.wave.shape[0] <= 3 * SR for c in chunks)
    assert [c.start for c in chunks] == [2.0 * k for k in range(len(chunks))]
    assert chunks[0].first and chunks[-1].last and not any(c.last for c in chunks[:-1])
    # the chunks tile the recording exactly: chunk k's first 2 s, then the last chunk
    stride = 2 * SR
    rebuilt = np.concatenate([c.wave[:stride].numpy() for c in chunks[:-1]] + [chunks[-1].wave])
    np.testing.assert_array_equal(rebuilt, whole)
    # the whole pipeline reads the same way
    sizes.clear()
    transcribe(rec, [d / "long.wav"], cfg)
    assert max(sizes) <= 3 * SR


@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    """8 tone sentences with 0.4-0.8 s pauses between them: (file, sentence texts, the
    sentences' (start, end) seconds, the file as stored)."""
    d = tmp_path_factory.mktemp("paused")
    rng = random.Random(11)
    parts, texts, spans, pos = [], [], [], 0
    for _ in range(8):
        wave, text, bounds = tone_sentence(rng, 2)
        parts += [wave, 0.003 * np.random.default_rng(pos).standard_normal(
            int(rng.uniform(0.4, 0.8) * SR)).astype(np.float32)]
        texts.append(text)
        spans += [(pos / SR + s, pos / SR + e) for _, s, e in bounds]
        pos += len(wave) + len(parts[-1])
    sf.write(d / "paused.wav", np.concatenate(parts), SR)
    return d / "paused.wav", texts, spans, sf.read(d / "paused.wav", dtype="float32")[0]


def test_pause_segments_tile_the_file_and_cut_only_in_pauses(paused, monkeypatch):
    path, _, spans, stored = paused
    sizes = record_chunked_reads(monkeypatch)
    chunks = list(iter_chunks(str(path), SR, ChunkConfig(chunk_seconds=3.0)))  # pause: default
    assert max(sizes) <= SR  # one-second reads
    assert chunks[0].first and chunks[-1].last and not any(c.last for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate([c.wave.numpy() for c in chunks]), stored)
    assert all(c.wave.shape[0] <= 3 * SR for c in chunks)
    cuts = [c.start for c in chunks[1:]]
    assert len(cuts) >= 7  # at least the 7 pauses between sentences
    for t in cuts:  # no word is cut
        assert not any(s < t < e for s, e in spans), (t, spans)


def test_pause_segmented_transcript_is_every_sentence(rec, paused):
    path, texts, spans, stored = paused
    (long,) = transcribe(rec, [path], ChunkConfig(chunk_seconds=3.0, batch_size=3))
    assert long.hypothesis.text == " ".join(texts)
    assert long.duration == pytest.approx(len(stored) / SR)
    for w, (s, e) in zip(long.hypothesis.words, spans):  # times are from the file's start
        assert abs(w.start - s) < 0.1 and abs(w.end - e) < 0.1


def test_non_overlapping_chunks_keep_every_word_at_their_seam():
    from asr.decode.types import TokenSpan
    from asr.chunks import Stitcher

    def word(w: str, start: int, end: int):
        return (w, [TokenSpan(1, start, end, 0.9)])

    # Segment 1 covers frames [0, 100.5), segment 2 starts there: its first word begins at
    # frame 100 after rounding, and segment 1's last word at its own last frame (100).
    st = Stitcher("x.wav")
    st.add([word("one", 10, 20), word("two", 100, 101)], 0.0, 100.5, True, False, overlap=False)
    st.add([word("three", 100, 110), word("four", 150, 160)], 100.5, 200.0, False, True,
           overlap=False)
    assert [w for w, _ in st.kept] == ["one", "two", "three", "four"]


def test_a_pause_after_the_chunk_limit_does_not_make_a_longer_segment(tmp_path):
    # The reader holds 3 s (one-second blocks) when it first sees the pause at 2.55-2.85 s:
    # complete, but past the 2.5 s limit, so the segment is cut at 2.5 s at the latest.
    def quiet(seconds: float) -> np.ndarray:
        return np.full(int(seconds * SR), 1e-3, dtype=np.float32)

    hum = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(2.05 * SR)) / SR)).astype(np.float32)
    sf.write(tmp_path / "late.wav", np.concatenate([quiet(0.5), hum, quiet(0.3), hum]), SR)
    chunks = list(iter_chunks(str(tmp_path / "late.wav"), SR, ChunkConfig(chunk_seconds=2.5)))
    assert all(c.wave.shape[0] <= 2.5 * SR for c in chunks), [len(c.wave) / SR for c in chunks]


def test_fixed_windows_ignore_the_pause_settings(paused):
    """``segment="fixed"``: the pause settings are neither checked (a pause that "pause" would
    refuse is accepted) nor used: on a file with pauses the windows are the same whatever they
    are, at ``k * (chunk - overlap)`` seconds, a chunk long but the last."""
    path, _, _, stored = paused
    settings = [{}, {"pause_seconds": 0.05, "pause_db": 4.0},
                {"pause_seconds": 2.0, "pause_db": 0.0}]  # both refused for segment="pause"
    with pytest.raises(UserError):
        ChunkConfig(chunk_seconds=3.0, **settings[-1])
    runs = [list(iter_chunks(str(path), SR, ChunkConfig(chunk_seconds=3.0, overlap_seconds=1.0,
                                                        segment="fixed", **kw)))
            for kw in settings]
    ref = runs[0]
    assert [c.start for c in ref] == [2.0 * k for k in range(len(ref))]
    assert all(c.wave.shape[0] == 3 * SR for c in ref[:-1]) and ref[-1].last
    assert len(ref) == int(np.ceil((len(stored) / SR - 1.0) / 2.0))
    for run in runs[1:]:
        assert [(c.start, c.first, c.last) for c in run] == [(c.start, c.first, c.last) for c in ref]
        for a, b in zip(run, ref):
            assert torch.equal(a.wave, b.wave)


def test_a_stretch_without_pauses_is_cut_at_most_a_chunk_long(rec, tmp_path, monkeypatch):
    t = np.arange(10 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t)))
    sf.write(tmp_path / "hum.wav", tone.astype(np.float32), SR)
    stored = sf.read(tmp_path / "hum.wav", dtype="float32")[0]
    sizes = record_chunked_reads(monkeypatch)
    chunks = list(iter_chunks(str(tmp_path / "hum.wav"), SR, ChunkConfig(chunk_seconds=3.0)))
    assert max(sizes) <= SR
    assert all(0 < c.wave.shape[0] <= 3 * SR for c in chunks) and len(chunks) >= 4
    np.testing.assert_array_equal(np.concatenate([c.wave.numpy() for c in chunks]), stored)


def test_any_rate_and_channels_and_single_chunk(rec, recording, tmp_path):
    d, paths, _, whole = recording
    up = AF.resample(torch.from_numpy(whole), SR, 16000).numpy()
    sf.write(tmp_path / "long16.flac", np.stack([up, up], axis=1), 16000)
    cfg = ChunkConfig(chunk_seconds=3.0, overlap_seconds=1.0, segment="fixed", batch_size=2)
    a, b = transcribe(rec, [d / "long.wav", tmp_path / "long16.flac"], cfg)
    assert a.hypothesis.text == b.hypothesis.text
    # a file shorter than a chunk is one chunk: the same text as Recognizer.transcribe
    texts = [r.hypothesis.text for r in transcribe(rec, paths[:3])]
    assert texts == rec.transcribe([str(p) for p in paths[:3]])


def test_choose_cut_falls_between_words_in_both_chunks():
    a = [(0, 10), (40, 60), (95, 100)]  # (start, end) frames; overlap is [50, 100]
    b = [(50, 58), (62, 70), (90, 99)]
    cut = choose_cut(a, b, 50, 100)
    assert 70 <= cut <= 90  # the only common pause near the middle (75)
    assert cut == 75
    assert choose_cut([(0, 100)], [(0, 100)], 50, 100) == 75  # no pause: the middle
    assert choose_cut([(40, 60), (60, 100)], [(50, 60), (60, 70)], 50, 100) == 60  # words touch


def test_expand_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/x.wav", "a/b/y.FLAC", "a/notes.txt", "z.ogg"]:
        (tmp_path / name).write_bytes(b"")
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nz.ogg\n\n/abs/path.wav\n")
    got = expand_inputs([str(tmp_path / "a"), f"@{lst}", "plain.wav"])
    assert got == [(p, None) for p in [str(tmp_path / "a/b/y.FLAC"), str(tmp_path / "a/x.wav"),
                                        str(tmp_path / "z.ogg"), "/abs/path.wav", "plain.wav"]]
    # an input that yields no file is one error in its place; the others still come through
    (tmp_path / "empty").mkdir()
    got = expand_inputs(["@nope.txt", str(tmp_path / "empty"), "plain.wav"])
    assert [p for p, _ in got] == ["@nope.txt", str(tmp_path / "empty"), "plain.wav"]
    assert "list file not found" in str(got[0][1]) and "no audio files" in str(got[1][1])
    assert got[2][1] is None
    with pytest.raises(UserError, match="overlap"):
        ChunkConfig(chunk_seconds=5, overlap_seconds=5, segment="fixed")
    ChunkConfig(chunk_seconds=5, overlap_seconds=5)  # pause segments do not overlap
    for bad, match in (({"segment": "vad"}, "segment must be one of pause, fixed"),
                       ({"pause_seconds": 3.0}, "pause"), ({"pause_db": 0.0}, "pause_db")):
        with pytest.raises(UserError, match=match):
            ChunkConfig(chunk_seconds=5, **bad)


def test_bad_files_reported_one_line_each_others_transcribed(model_file, recording, tmp_path,
                                                             capsys):
    _, paths, _, _ = recording
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    nan = np.zeros(SR, dtype=np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    files = [str(paths[0]), str(tmp_path / "empty.wav"), str(tmp_path / "corrupt.wav"),
             str(tmp_path / "missing.wav"), str(tmp_path / "nan.wav"), str(paths[1])]
    code = main(["transcribe", str(model_file), *files, "--with-names"])
    out, err = capsys.readouterr()
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("asr: error:")]
    assert len(errors) == 4
    for name in ["empty.wav", "corrupt.wav", "missing.wav", "nan.wav"]:
        assert sum(name in line for line in errors) == 1
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [files[0], files[-1]]
    assert all(line.split("\t")[1] for line in lines)
    assert "4 of 6 file(s) failed" in err


def test_output_formats(model_file, recording, tmp_path, capsys):
    d, paths, _, _ = recording
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for p in paths[:2]:
        (tmp_path / "in" / "sub" / p.name).write_bytes(p.read_bytes())
    (tmp_path / "in" / "long.wav").write_bytes((d / "long.wav").read_bytes())
    args = ["--chunk-seconds", "3", "--overlap-seconds", "1"]
    for fmt in ["txt", "json", "srt", "vtt"]:
        assert main(["transcribe", str(model_file), str(tmp_path / "in"), "--format", fmt,
                     "-o", str(tmp_path / "out"), *args]) == 0
    out = tmp_path / "out"
    js = json.loads((out / "long.json").read_text())
    assert js["text"] == (out / "long.txt").read_text().strip()
    assert js["duration"] == pytest.approx(18.0, abs=2.0) and len(js["words"]) == 36
    for w in js["words"]:
        assert 0 <= w["start"] < w["end"] <= js["duration"] and 0 <= w["confidence"] <= 1
    srt, vtt = parse_srt((out / "long.srt").read_text()), parse_vtt((out / "long.vtt").read_text())
    assert " ".join(t for _, _, t in srt).split() == js["text"].split()
    assert [(s, e) for s, e, _ in srt] == [(s, e) for s, e, _ in vtt]
    assert (out / "piece00.srt").is_file() and (out / "piece01.vtt").is_file()
    capsys.readouterr()
    # json lines on stdout; subtitles of several files need -o
    assert main(["transcribe", str(model_file), str(paths[0]), str(paths[1]), "--format",
                 "json"]) == 0
    assert [json.loads(x)["audio"] for x in capsys.readouterr().out.splitlines()] == \
        [str(paths[0]), str(paths[1])]
    assert main(["transcribe", str(model_file), str(paths[0]), str(paths[1]), "--format",
                 "srt"]) == 2


def test_decode_yaml_beside_the_model_selects_beam_search(rec, recording, tmp_path, capsys):
    from asr.decode.beam import BeamConfig
    from asr.tune import save_beam_config

    model = tmp_path / "exp" / "model.pt"
    rec.save(model)
    wave, text, _ = tone_sentence(random.Random(11), 3)
    sf.write(tmp_path / "x.wav", wave, SR)
    lexicon, _ = model_lexicon(["AB", "CD"], rec.tokenizer)  # a lexicon of two words
    write_lexicon(tmp_path / "lex.txt", lexicon)
    save_beam_config(model.parent / "decode.yaml", BeamConfig(lexicon=str(tmp_path / "lex.txt")))
    assert main(["transcribe", str(model), str(tmp_path / "x.wav"), "--decoder", "greedy"]) == 0
    assert capsys.readouterr().out.strip() == text
    assert main(["transcribe", str(model), str(tmp_path / "x.wav")]) == 0
    beam = capsys.readouterr().out.split()
    assert beam and set(beam) <= {"AB", "CD"} and beam != text.split()
