"""Streaming (asr/stream.py, asr/stream_features.py): for unidirectional models the streamed
log-probs and text equal the offline forward's, for any chunking down to one sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.config import load_config
from asr.errors import UserError
from asr.features import FeatureConfig, FeatureExtractor
from asr.inference import Recognizer
from asr.stream_features import IncrementalFeatures
from asr.tokenizer import CharTokenizer

SR = 16000


def _speechlike(seconds: float, seed: int) -> torch.Tensor:
    """Tones that come and go, plus noise: frames of every loudness."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    env = (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0).astype(np.float32)
    y = 0.3 * env * np.sin(2 * np.pi * rng.uniform(150, 900) * t) + 0.01 * rng.standard_normal(n)
    return torch.tensor(y, dtype=torch.float32)


def _chunks(wave: torch.Tensor, seed: int, largest: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < wave.numel():
        n = int(rng.integers(1, largest + 1))
        out.append(wave[i:i + n])
        i += n
    return out


def _stream_feats(ext, cmvn, chunks) -> torch.Tensor:
    inc = IncrementalFeatures(ext, cmvn)
    return torch.cat([inc.accept(c) for c in chunks] + [inc.finish()])


@pytest.mark.parametrize("kind,deltas", [("fbank", 0), ("logmel", 0), ("fbank", 2), ("logmel", 1),
                                         ("mfcc", 0), ("mfcc", 2)])
@pytest.mark.parametrize("largest", [1, 37, 1600])
def test_incremental_features_are_the_offline_frames(kind, deltas, largest):
    ext = FeatureExtractor(FeatureConfig(kind=kind, n_mels=24, deltas=deltas))
    # loudest part first: MFCC's 80 dB clip is the offline one from the first chunk on
    wave = torch.cat([torch.full((400,), 0.9) * torch.sin(torch.arange(400.0)), _speechlike(0.73, 1)])
    if largest == 1:
        wave = wave[:2500]  # one sample at a time: keep it short
    offline = ext(wave)
    streamed = _stream_feats(ext, None, _chunks(wave, 0, largest))
    assert streamed.shape == offline.shape
    assert torch.allclose(streamed, offline, atol=1e-3, rtol=1e-4), (streamed - offline).abs().max()


@pytest.mark.parametrize("n", [1, 100, 399, 400, 401, 560])
def test_short_inputs_give_the_offline_frame_counts(n):
    for kind in ("fbank", "logmel"):
        ext = FeatureExtractor(FeatureConfig(kind=kind, n_mels=24, deltas=1))
        wave = _speechlike(n / SR, n)
        offline = ext(wave)
        streamed = _stream_feats(ext, None, _chunks(wave, n, 50))
        assert streamed.shape == offline.shape, kind
        assert torch.allclose(streamed, offline, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("hidden", [16, 384])
def test_stepwise_lstm_is_torchs_over_any_split(hidden):
    """The streaming LSTM (not torch.lstm: no oneDNN cost per call) carries its state over chunks of 0..7
    frames and gives nn.LSTM's outputs on the whole sequence."""
    from asr.stream import _LSTMSteps
    torch.manual_seed(hidden)
    rnn = torch.nn.LSTM(20, hidden, batch_first=True).eval()
    lstm = _LSTMSteps(rnn)
    x = torch.randn(40, 20)
    with torch.no_grad():
        ref, (h_ref, c_ref) = rnn(x.unsqueeze(0))
        outs, state, i, rng = [], None, 0, np.random.default_rng(0)
        while i < x.shape[0]:
            n = int(rng.integers(0, 8))
            if n:
                y, state = lstm(x[i:i + n], state)
                outs.append(y)
            i += n
    assert (torch.cat(outs) - ref[0]).abs().max() < 1e-5
    assert (state[0] - h_ref.reshape(-1)).abs().max() < 1e-5
    assert (state[1] - c_ref.reshape(-1)).abs().max() < 1e-5


def test_stepwise_lstm_copies_weights_once_and_again_when_they_change():
    """The transposed weights are made once per layer (every Stream of a model shares them) and
    made again after the model's weights change in place (load_state_dict, an optimiser step)."""
    from asr.stream import _LSTMSteps
    torch.manual_seed(1)
    rnn = torch.nn.LSTM(6, 5, batch_first=True).eval()
    a, b = _LSTMSteps(rnn), _LSTMSteps(rnn)
    assert a.w_hh is b.w_hh
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.5)
        rnn.bias_ih_l0.add_(1.0)
    c = _LSTMSteps(rnn)
    assert c.w_hh is not a.w_hh
    x = torch.randn(9, 6)
    with torch.no_grad():
        ref = rnn(x.unsqueeze(0))[0][0]
        assert (c(x, None)[0] - ref).abs().max() < 1e-5
        assert (a(x, None)[0] - ref).abs().max() > 1e-3  # the old copy is the old model


def _recognizer(cell: str, frontend: str, subsample: int, kind: str) -> Recognizer:
    torch.manual_seed(0)
    cfg = load_config(None, [f"model.cell={cell}", "model.bidirectional=false", "model.hidden=16",
                             "model.layers=2", "model.proj=12", "model.layer_norm=true",
                             f"model.subsampling={frontend}", f"model.subsample={subsample}",
                             "model.conv_dim=16", f"features.kind={kind}", "features.n_mels=20",
                             "features.deltas=1"])
    dim = cfg.features.dim
    cmvn = {"mean": torch.linspace(-1, 1, dim) + 5.0, "std": torch.linspace(1, 3, dim)}
    rec = Recognizer(cfg, CharTokenizer.build(["ABC DE"]), cmvn)
    with torch.no_grad():  # make the untrained head emit tokens, not only blanks
        rec.model.head.bias.copy_(torch.linspace(-0.5, 0.5, rec.model.head.bias.numel()))
    return rec


@pytest.mark.parametrize("cell,frontend,subsample,kind", [
    ("lstm", "stack", 4, "fbank"), ("gru", "conv", 3, "logmel"), ("rnn", "stack", 1, "fbank"),
    ("lstm", "conv", 2, "fbank"), ("gru", "stack", 2, "mfcc"), ("rnn", "conv", 4, "logmel")])
def test_streamed_log_probs_and_text_are_the_offline_ones(cell, frontend, subsample, kind):
    rec = _recognizer(cell, frontend, subsample, kind)
    wave = torch.cat([torch.full((400,), 0.9) * torch.sin(torch.arange(400.0)), _speechlike(1.3, 7)])
    offline_lp, offline_len = rec.forward_waves([wave])
    offline = rec.decoder("greedy")(offline_lp, offline_len, rec.frame_seconds)[0][0]
    for seed, largest in ((0, 1), (1, 160), (2, 4000)):
        pieces = _chunks(wave if largest > 1 else wave[:1200], seed, largest)
        stream = rec.stream("greedy")
        partials = [stream.accept(c) for c in pieces]
        final = stream.finish()
        lp = stream.log_probs()
        if largest == 1:  # one sample at a time, on the first 75 ms
            ref_lp, ref_len = rec.forward_waves([wave[:1200]])
            assert lp.shape[0] == int(ref_len[0])
            assert (lp - ref_lp[0, :lp.shape[0]]).abs().max() < 1e-4
            continue
        assert lp.shape[0] == int(offline_len[0])
        assert (lp - offline_lp[0]).abs().max() < 1e-4
        assert final.text == offline.text and final.tokens == offline.tokens
        assert [w[:3] for w in final.words] == [w[:3] for w in offline.words]  # word, start, end
        assert [w.confidence for w in final.words] == pytest.approx([w.confidence for w in offline.words])
        assert offline.text.startswith(partials[-1]) or partials[-1] == offline.text
        assert stream.partial == offline.text


def test_a_bidirectional_model_is_refused_with_the_reason():
    cfg = load_config(None, ["model.hidden=8", "model.layers=1", "features.n_mels=20"])
    dim = cfg.features.dim
    rec = Recognizer(cfg, CharTokenizer.build(["AB"]), {"mean": torch.zeros(dim), "std": torch.ones(dim)})
    with pytest.raises(UserError, match="bidirectional.*cannot stream.*model.bidirectional=false"):
        rec.stream()


def test_per_utterance_normalisation_is_refused():
    with pytest.raises(UserError, match="utterance_cmn.*cannot stream"):
        IncrementalFeatures(FeatureExtractor(FeatureConfig(utterance_cmn=True)), None)
    with pytest.raises(UserError, match="speaker_cmvn.*cannot stream"):
        IncrementalFeatures(FeatureExtractor(FeatureConfig(speaker_cmvn=True)), None)


# -- asr stream ----------------------------------------------------------------------------------

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import soundfile as sf  # noqa: E402

ASR = [sys.executable, "-m", "asr"]
CLI_SR = 8000  # the tone model's rate (tests/test_align.py)


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory):
    """A unidirectional LSTM trained for a few seconds on tone sentences; a file of three
    sentences with pauses of 1 s between them (words: at most 0.45 s)."""
    import random

    from test_align import SR as TONE_SR, tone_recognizer, tone_sentence
    assert TONE_SR == CLI_SR
    d = tmp_path_factory.mktemp("stream")
    rec = tone_recognizer(bidirectional=False)
    rec.save(d / "uni.pt")
    rng = random.Random(5)
    parts = []
    for i in range(3):
        parts += [tone_sentence(rng, 2)[0],
                  0.003 * np.random.default_rng(i).standard_normal(int(1.0 * CLI_SR)).astype(np.float32)]
    sf.write(d / "a.wav", np.concatenate(parts), CLI_SR, subtype="PCM_16")
    pcm = (np.clip(sf.read(d / "a.wav", dtype="float32")[0], -1, 1) * 32768).astype("<i2")
    return d, rec, pcm


def _run(argv, stdin: bytes | None = None):
    return subprocess.run(ASR + argv, input=stdin, capture_output=True, timeout=120)


def _finals(proc) -> list[dict]:
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert all(e["type"] in ("partial", "final") for e in events)
    return [e for e in events if e["type"] == "final"]


def test_file_raw_pcm_and_wav_on_stdin_give_the_offline_text(stream_model):
    d, rec, pcm = stream_model
    from asr.inference import load_model
    offline = load_model(d / "uni.pt").recognize([d / "a.wav"], "greedy")[0]
    assert offline.text  # the untrained model's bias makes it say something
    runs = {"file": _run(["stream", str(d / "uni.pt"), str(d / "a.wav"), "--endpoint-ms", "0",
                          "--decoder", "greedy"]),
            "raw": _run(["stream", str(d / "uni.pt"), "-", "--endpoint-ms", "0", "--chunk-ms", "37",
                         "--decoder", "greedy"], pcm.tobytes()),
            "wav": _run(["stream", str(d / "uni.pt"), "-", "--endpoint-ms", "0", "--decoder",
                         "greedy"], (d / "a.wav").read_bytes())}
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stderr)
        final, = _finals(proc)
        assert final["text"] == offline.text, name
        assert [w["word"] for w in final["words"]] == [w.word for w in offline.words]


def test_endpointing_cuts_the_stream_into_utterances(stream_model):
    from asr.inference import load_model
    d, rec, pcm = stream_model
    proc = _run(["stream", str(d / "uni.pt"), "-", "--endpoint-ms", "600", "--decoder", "greedy"],
                pcm.tobytes())
    assert proc.returncode == 0, proc.stderr
    finals = _finals(proc)
    assert len(finals) == 3, finals  # one per sentence
    offline = load_model(d / "uni.pt").recognize([d / "a.wav"], "greedy")[0]
    assert " ".join(f["text"] for f in finals) == offline.text
    assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(finals, finals[1:]))
    assert finals[-1]["end"] <= len(pcm) / CLI_SR + 1e-9
    for f in finals:  # word times count from the start of the stream
        assert f["words"] and all(f["start"] <= w["start"] < w["end"] <= f["end"] for w in f["words"])


@pytest.mark.parametrize("what,stdin,message", [
    ("24-bit wav", "wav24", "24-bit samples"),
    ("odd bytes", b"\x01\x02\x03", "ended inside a sample"),
    ("nothing", b"", "no audio on the input stream"),
    ("16 kHz wav", "wav16k", "at 16000 Hz and the model at 8000 Hz"),
])
def test_bad_input_gets_one_line(stream_model, tmp_path, what, stdin, message):
    d, _, _ = stream_model
    if isinstance(stdin, str):
        rate, sub = (16000, "PCM_16") if stdin == "wav16k" else (CLI_SR, "PCM_24")
        sf.write(tmp_path / "x.wav", np.zeros(4000, dtype=np.float32), rate, subtype=sub)
        stdin = (tmp_path / "x.wav").read_bytes()
    proc = _run(["stream", str(d / "uni.pt"), "-"], stdin)
    assert proc.returncode == 2, what
    line, = proc.stderr.decode().strip().splitlines()
    assert line.startswith("asr: error: ") and message in line, line


def test_a_bidirectional_model_file_is_refused_in_one_line(tmp_path, stream_model):
    d, _, pcm = stream_model
    cfg = load_config(None, ["model.hidden=8", "model.layers=1", "features.n_mels=20"])
    dim = cfg.features.dim
    Recognizer(cfg, CharTokenizer.build(["AB"]),
               {"mean": torch.zeros(dim), "std": torch.ones(dim)}).save(tmp_path / "bi.pt")
    proc = _run(["stream", str(tmp_path / "bi.pt"), "-"], pcm.tobytes())
    assert proc.returncode == 2
    line, = proc.stderr.decode().strip().splitlines()
    assert "bidirectional" in line and "cannot stream" in line


@pytest.mark.parametrize("with_lexicon", [True, False])
def test_beam_search_online_gives_the_offline_beam_result(tmp_path, stream_model, with_lexicon):
    """Streaming feeds flashlight's decode_step chunk by chunk; the final text equals the
    offline beam search's on the whole file, and the partials are its best hypotheses so far."""
    from asr.decode.beam import BeamConfig, BeamDecoder
    from asr.inference import load_model
    from asr.lm import build_ngram_lm, model_lexicon, sentences_from_lines, write_lexicon
    from asr.stream import Stream
    from test_align import WORDS

    d, _, pcm = stream_model
    rec = load_model(d / "uni.pt")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 5)))) for _ in range(50)]
    lexicon = ""
    if with_lexicon:
        build_ngram_lm(sentences_from_lines(lines), 2).write_arpa(tmp_path / "lm.arpa")
        lex, _ = model_lexicon(WORDS, rec.tokenizer)
        write_lexicon(tmp_path / "lex.txt", lex)
        lexicon, lm = str(tmp_path / "lex.txt"), str(tmp_path / "lm.arpa")
    else:  # a token LM over the model's symbols
        spelled = [" ".join(rec.tokenizer.separator if c == " " else c for c in line) for line in lines]
        build_ngram_lm(sentences_from_lines(spelled), 3).write_arpa(tmp_path / "tok.arpa")
        lm = str(tmp_path / "tok.arpa")
    dec = BeamDecoder(rec.tokenizer, BeamConfig(lexicon=lexicon, lm=lm, lm_weight=0.5, beam_size=16))
    wave = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    lp, lens = rec.forward_waves([wave])
    offline = dec(lp, lens, rec.frame_seconds)[0][0]
    assert len(offline.text.split()) >= 4
    for seed, largest in ((0, 300), (1, 5000)):
        stream = Stream(rec, dec)
        partials = [stream.accept(c) for c in _chunks(wave, seed, largest)]
        final = stream.finish()
        assert final.text == offline.text and final.tokens == offline.tokens
        assert [w[:3] for w in final.words] == [w[:3] for w in offline.words]
        assert partials[0] == "" and partials[-1] and set(partials[-1].split()) <= set(WORDS)


def test_silence_never_grows_an_utterance(stream_model):
    """Blank output with no word yet starts the utterance afresh at the endpoint: 20 s of
    silence before a sentence leave one final, starting near the end of the silence."""
    from asr.inference import load_model
    from asr.stream import stream_events

    d, _, pcm = stream_model
    rec = load_model(d / "uni.pt")
    wave = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    silence = 0.002 * torch.randn(20 * CLI_SR, generator=torch.Generator().manual_seed(0))
    first = int(1.6 * CLI_SR)  # the first sentence and some of its pause
    audio = torch.cat([silence, wave[:first]])
    chunks = [audio[i:i + 800] for i in range(0, audio.numel(), 800)]
    finals = [e for e in stream_events(rec, chunks, rec.decoder("greedy"), 0.6) if e.final]
    assert len(finals) == 1 and finals[0].text
    assert 19.0 <= finals[0].start <= 20.0


def test_a_wav_stream_with_chunks_after_its_data_reads_only_the_data(stream_model):
    d, _, pcm = stream_model
    wav = (d / "a.wav").read_bytes()
    trailing = wav + b"LIST" + (5).to_bytes(4, "little") + b"INFOa"  # 13 bytes: not samples
    runs = [_run(["stream", str(d / "uni.pt"), "-", "--endpoint-ms", "0", "--decoder", "greedy"], w)
            for w in (wav, trailing)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert _finals(runs[0]) == _finals(runs[1])
