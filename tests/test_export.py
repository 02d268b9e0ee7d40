"""``asr export``: a model file -> a self-contained ONNX file that ``asr transcribe``, ``asr
evaluate`` and ``asr.load_model`` run with ONNX Runtime through the same forward path, front-end
and decoders: the same log-probs (within 1e-4), text, word times and hyp.txt as the .pt file;
int8 weights: a smaller file with close output; bad inputs: one line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.errors import UserError
from conftest import run_cli
from robustness.helpers import EXIT_FAILED, assert_user_error, listing
from test_align import SR, tone_recognizer, tone_sentence

LONGEST = 2.75  # seconds; written into the .pt model, must travel into the .onnx


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A trained tone model (.pt), its fp32 and int8 exports through the CLI, and eight tone
    files of different lengths with their manifest."""
    d = tmp_path_factory.mktemp("export")
    rng = random.Random(5)
    lines, paths = [], []
    for i in range(8):
        wave, text, _ = tone_sentence(rng, 1 + i % 4)
        paths.append(d / f"f{i}.wav")
        sf.write(paths[-1], wave, SR)
        lines.append(json.dumps({"id": f"f{i}", "audio_path": str(paths[-1]), "speaker": "s",
                                 "duration": len(wave) / SR, "text": text}))
    (d / "set.jsonl").write_text("\n".join(lines) + "\n")
    rec = tone_recognizer()  # shared (cached) with other test files: restored below
    rec.longest_utterance = LONGEST
    try:
        rec.save(d / "model.pt")
    finally:
        rec.longest_utterance = None
    outs = {}
    for q in (None, "int8"):
        onnx_file = d / "onnx" / f"model{'.' + q if q else ''}.onnx"
        rc, out, err = _cli(["export", d / "model.pt", "-o", onnx_file,
                             *(["--quantize", q] if q else [])])
        assert rc == 0 and "error" not in err, err
        assert f"wrote {onnx_file}" in out, out
        outs[q or "fp32"] = onnx_file
    return d, d / "model.pt", outs["fp32"], outs["int8"], paths


def _cli(argv) -> tuple[int, str, str]:
    """``asr.cli.main`` for a module-scoped fixture (no capsys there)."""
    import contextlib
    import io

    from asr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _waves(paths) -> list[torch.Tensor]:
    return [torch.from_numpy(sf.read(str(p), dtype="float32")[0]) for p in paths]


def _valid_diff(a, a_lens, b, b_lens) -> float:
    assert torch.equal(a_lens, b_lens) and a.shape == b.shape
    return max(float((a[i, :n] - b[i, :n]).abs().max()) for i, n in enumerate(a_lens.tolist()))


def test_fp32_onnx_log_probs_match_pytorch_on_a_padded_batch(models):
    from asr.inference import load_model
    from asr.onnx_export import check_batch

    _, pt, fp32, _, paths = models
    rec_pt, rec_onnx = load_model(pt), load_model(fp32)
    assert type(rec_onnx.model).__name__ == "OnnxNetwork"
    waves = _waves(paths)
    assert len({len(w) for w in waves}) == len(waves)  # a padded batch of different lengths
    lp_pt, lens_pt = rec_pt.forward_waves(waves)
    lp_onnx, lens_onnx = rec_onnx.forward_waves(waves)
    assert lp_onnx.dtype == torch.float32 and lens_onnx.dtype == torch.long
    assert _valid_diff(lp_onnx, lens_onnx, lp_pt, lens_pt) < 1e-4
    # random normalised features, lengths 48 (a multiple of every subsampling factor), 37, 12, 1
    x, lens = check_batch(rec_pt.cfg.features.dim, seed=7)
    feats = [x[i, :n] for i, n in enumerate(lens.tolist())]
    assert _valid_diff(*rec_onnx.forward(feats), *rec_pt.forward(feats)) < 1e-4


SHAPES = {  # every cell, both front-ends, subsampling 1-4, one or two directions, proj + norm
    "gru_conv_s3_proj_norm": "model.cell=gru model.subsampling=conv model.subsample=3 "
                             "model.proj=6 model.layer_norm=true",
    "rnn_uni_s4": "model.cell=rnn model.bidirectional=false model.subsample=4",
    "lstm_s1_two_layers": "model.subsample=1 model.layers=2",
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_model_shape_exports_to_the_same_log_probs(tmp_path, shape):
    """Untrained tiny models of other shapes: fp32 within 1e-4 of PyTorch on padded batches
    (lengths that the subsampling factor divides and that it does not); int8 writes float32
    GRU/RNN layers (ONNX Runtime has no int8 kernel for them) and int8 linear layers."""
    from asr.config import load_config
    from asr.inference import Recognizer, load_model
    from asr.onnx_export import check_batch, export_onnx
    from asr.tokenizer import CharTokenizer

    torch.manual_seed(0)
    cfg = load_config(None, ["model.hidden=8", "model.layers=1", "model.conv_dim=8",
                             "features.n_mels=20", *SHAPES[shape].split()])
    dim = cfg.features.dim
    rec = Recognizer(cfg, CharTokenizer.build(["AB C"]),
                     {"mean": torch.zeros(dim), "std": torch.ones(dim)})
    report = export_onnx(rec, tmp_path / "m.onnx")
    assert report.max_diff < 1e-4 and report.precision == "fp32"
    onnx_rec = load_model(tmp_path / "m.onnx")
    for seed, T in ((3, 24), (4, 23), (5, 2)):
        x, _ = check_batch(dim, seed)
        feats = [x[0, :T], x[1, :max(1, T - 5)], x[2, :1]]
        assert _valid_diff(*onnx_rec.forward(feats), *rec.forward(feats)) < 1e-4
    int8 = export_onnx(rec, tmp_path / "m.int8.onnx", "int8")
    recurrent = {"lstm": "DynamicQuantizeLSTM", "gru": "GRU", "rnn": "RNN"}[cfg.model.cell]
    assert recurrent in int8.ops and "MatMulInteger" in int8.ops and "MatMul" not in int8.ops


def test_the_onnx_file_is_self_contained(models, tmp_path):
    """Config, tokenizer, CMVN and longest_utterance travel in the file's metadata: a copy with
    nothing beside it loads into the same Recognizer (and ``asr lm``'s tokenizer)."""
    from asr.config import to_dict
    from asr.inference import load_model, load_tokenizer

    _, pt, fp32, _, _ = models
    shutil.copy(fp32, tmp_path / "alone.onnx")
    rec_pt, rec_onnx = load_model(pt), load_model(tmp_path / "alone.onnx")
    assert to_dict(rec_onnx.cfg) == to_dict(rec_pt.cfg)
    assert rec_onnx.tokenizer.to_dict() == rec_pt.tokenizer.to_dict()
    assert load_tokenizer(tmp_path / "alone.onnx").symbols == rec_pt.tokenizer.symbols
    for k in ("mean", "std"):
        assert torch.equal(rec_onnx.cmvn[k], rec_pt.cmvn[k])
    assert rec_onnx.longest_utterance == LONGEST
    assert rec_onnx.model.metadata["precision"] == "fp32"


def test_metadata_carries_a_bpe_tokenizer_and_no_longest_utterance(models):
    """A BPE tokenizer holds bytes (its sentencepiece model), which JSON has no type for."""
    from asr.onnx_runtime import decode_metadata, encode_metadata
    from asr.tokenizer import BPETokenizer, TokenizerConfig, tokenizer_from_dict

    tok = BPETokenizer.build(["AB CD EA BEC", "DAB CE AB"] * 20,
                             TokenizerConfig(kind="bpe", vocab_size=12))
    meta = encode_metadata({"a": 1}, tok.to_dict(), {"mean": torch.zeros(3),
                                                      "std": torch.ones(3)}, None, "fp32")
    assert all(isinstance(v, str) for v in meta.values())
    parts = decode_metadata(meta, "x.onnx")
    back = tokenizer_from_dict(parts["tokenizer"])
    assert back.symbols == tok.symbols and back.encode("DAB CE") == tok.encode("DAB CE")
    assert parts["longest_utterance"] is None and parts["config"] == {"a": 1}


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_transcribe_of_the_onnx_file_gives_the_pt_text_and_word_times(models, capsys):
    from asr.inference import load_model

    _, pt, fp32, _, paths = models
    code, out, err = run_cli(["transcribe", pt, *paths, "--format", "json"], capsys)
    assert code == 0, err
    want = _json_lines(out)
    code, out, err = run_cli(["transcribe", fp32, *paths, "--format", "json"], capsys)
    assert code == 0, err
    got = _json_lines(out)
    assert [g["text"] for g in got] == [w["text"] for w in want]
    assert sum(len(w["words"]) for w in want) >= len(paths)  # the model says something
    for g, w in zip(got, want, strict=True):
        assert [(x["word"], x["start"], x["end"]) for x in g["words"]] == \
            [(x["word"], x["start"], x["end"]) for x in w["words"]]
        for gx, wx in zip(g["words"], w["words"]):
            assert gx["confidence"] == pytest.approx(wx["confidence"], abs=1e-4)
    api = load_model(fp32).recognize(paths)  # the Python API: the same text and times
    assert [a.text for a in api] == [w["text"] for w in want]
    assert [round(x.start, 3) for a in api for x in a.words] == \
        [x["start"] for w in want for x in w["words"]]


def test_evaluate_of_the_onnx_file_gives_the_pt_hyp_txt(models, tmp_path, capsys):
    d, pt, fp32, _, _ = models
    hyps = {}
    for name, model in (("pt", pt), ("onnx", fp32)):
        code, _, err = run_cli(["evaluate", model, d / "set.jsonl", "--out", tmp_path / name],
                               capsys)
        assert code == 0, err
        hyps[name] = (tmp_path / name / "hyp.txt").read_text()
    assert hyps["onnx"] == hyps["pt"]
    wer = json.loads((tmp_path / "pt" / "wer.json").read_text())
    assert hyps["pt"].count("\n") == 8 and wer["wer"]["rate"] < 0.5  # a model that works here


def test_int8_file_is_smaller_loads_and_gives_close_output(models):
    from asr.inference import load_model

    _, pt, fp32, int8, paths = models
    assert int8.is_file() and int8.stat().st_size < 0.6 * fp32.stat().st_size
    rec8, rec_pt = load_model(int8), load_model(pt)
    assert rec8.model.metadata["precision"] == "int8"  # the metadata survived quantization
    assert rec8.longest_utterance == LONGEST
    ops = {n.op_type for n in __import__("onnx").load(int8).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops and "LSTM" not in ops
    waves = _waves(paths)
    lp8, lens8 = rec8.forward_waves(waves)
    lp, lens = rec_pt.forward_waves(waves)
    assert torch.equal(lens8, lens)
    post = [(lp8[i, :n].exp() - lp[i, :n].exp()).abs() for i, n in enumerate(lens.tolist())]
    # Loose bounds: posteriors within 0.25 everywhere and 0.01 on average; the same text on
    # at least 7 of the 8 files.
    assert max(float(p.max()) for p in post) < 0.25
    assert float(torch.cat(post).mean()) < 0.01
    same = sum(a == b for a, b in zip(rec8.transcribe(paths), rec_pt.transcribe(paths)))
    assert same >= 7


def test_onnx_threads_follow_torch_or_the_argument(models):
    from asr.onnx_runtime import OnnxNetwork

    _, _, fp32, _, _ = models
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        net = OnnxNetwork(fp32)
        assert net.threads == 2
        assert net.session.get_session_options().intra_op_num_threads == 2
    finally:
        torch.set_num_threads(before)
    assert OnnxNetwork(fp32, threads=1).session.get_session_options().intra_op_num_threads == 1


# --- bad inputs: one line, a non-zero exit, nothing written -------------------------------------

def _foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that asr did not write (an Identity graph, no asr metadata)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("case", ["missing", "text", "random_pt", "onnx_input"])
def test_export_refuses_what_is_not_an_asr_model(models, tmp_path, capsys, case):
    _, _, fp32, _, _ = models
    model = {"missing": tmp_path / "nothing.pt", "text": tmp_path / "notes.pt",
             "random_pt": tmp_path / "weights.pt", "onnx_input": fp32}[case]
    if case == "text":
        model.write_text("not a model\n")
    elif case == "random_pt":
        torch.save({"weight": torch.zeros(3)}, model)
    want = {"missing": "not found", "text": "not a model file", "random_pt": "is not an asr",
            "onnx_input": "already an ONNX model"}[case]
    out = tmp_path / "out"
    assert_user_error(run_cli(["export", model, "-o", out / "m.onnx"], capsys), str(model), want)
    assert listing(out) == []


@pytest.mark.parametrize("case", ["under_proc", "under_a_file", "a_folder", "not_onnx_suffix"])
def test_export_refuses_an_output_it_cannot_write(models, tmp_path, capsys, case):
    _, pt, _, _, _ = models
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.onnx").mkdir()
    out = {"under_proc": Path("/proc") / f"asr-export-test-{os.getpid()}" / "m.onnx",
           "under_a_file": tmp_path / "file" / "m.onnx", "a_folder": tmp_path / "dir.onnx",
           "not_onnx_suffix": tmp_path / "m.pt"}[case]
    code = EXIT_FAILED if case == "under_proc" else 2  # the system refused / the user's mistake
    want = {"under_proc": str(out.parent), "under_a_file": "is a file",
            "a_folder": "is a folder", "not_onnx_suffix": "must end in .onnx"}[case]
    assert_user_error(run_cli(["export", pt, "-o", out], capsys), want, code=code)
    assert not out.parent.exists() if case == "under_proc" else not out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx", "file"]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(models, tmp_path, capsys,
                                                                 monkeypatch):
    import errno

    _, pt, _, _, _ = models

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    assert_user_error(run_cli(["export", pt, "-o", tmp_path / "m.onnx"], capsys),
                      "No space left on device", code=EXIT_FAILED)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("case", ["foreign_onnx", "text_onnx", "missing_onnx"])
@pytest.mark.parametrize("command", ["transcribe", "evaluate", "api"])
def test_an_onnx_file_that_is_not_ours_is_refused(models, tmp_path, capsys, case, command):
    d, _, _, _, paths = models
    model = tmp_path / f"{case}.onnx"
    if case == "foreign_onnx":
        _foreign_onnx(model)
    elif case == "text_onnx":
        model.write_text("hello\n")
    want = {"foreign_onnx": "not one written by asr export", "text_onnx": "not a readable ONNX",
            "missing_onnx": "not found"}[case]
    if command == "api":
        from asr.inference import load_model

        with pytest.raises(UserError, match=want) as e:
            load_model(model)
        assert "\n" not in str(e.value) and str(model) in str(e.value)
        return
    argv = ([command, model, paths[0]] if command == "transcribe"
            else [command, model, d / "set.jsonl", "--out", tmp_path / "out"])
    assert_user_error(run_cli(argv, capsys), str(model), want)
    assert not (tmp_path / "out").exists()


def test_an_onnx_model_is_not_saved_as_pt_and_runs_on_the_cpu_only(models, tmp_path):
    from asr.inference import Recognizer, load_model

    _, _, fp32, _, _ = models
    with pytest.raises(UserError, match="no PyTorch weights"):
        load_model(fp32).save(tmp_path / "back.pt")
    assert not (tmp_path / "back.pt").exists()
    with pytest.raises(UserError, match="runs on the CPU"):
        Recognizer.from_file(fp32, "cuda")
    rec = load_model(fp32)
    assert np.isfinite(rec.forward([torch.zeros(3, rec.cfg.features.dim)])[0].numpy()).all()
