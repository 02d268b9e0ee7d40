"""The benchmark scripts run and report consistent figures (not their speed: bench/ measures
that on purpose, tests do not time anything): bench/train.py's time shares add up and its
FLOP count follows the model's shape, bench/features.py measures every extractor, and
bench/run_all.sh refuses a folder without a model in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_tone_corpus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.usefixtures("no_leaked_log_handlers")


def test_flops_per_frame_follow_the_recurrent_shapes():
    import train as bench_train  # bench/train.py

    from asr.model import CTCModel, ModelConfig

    m = CTCModel(ModelConfig(cell="gru", hidden=10, layers=2, bidirectional=True, subsample=2),
                 in_dim=4, vocab_size=7)
    enc, head = bench_train.forward_flops_per_frame(m)
    # layer 1: input 4*2 (stacked), layer 2: input 2*10; 3 gates, 2 directions
    assert enc == 2 * 3 * 10 * (8 + 10) * 2 + 2 * 3 * 10 * (20 + 10) * 2
    assert head == 2 * 20 * 7


def test_train_benchmark_shares_add_up(tmp_path: Path):
    train = make_tone_corpus(tmp_path, n_utts=8, seed=1, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=2, name="dev")
    out = tmp_path / "train.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench/train.py"), "--train", str(train),
                        "--dev", str(dev), "--config", "", "--warmup", "1", "--gemm-n", "128",
                        "--json", str(out), "model.hidden=8", "model.layers=1",
                        "features.n_mels=23", "data.max_batch=2", "data.speed_perturb=[1.0]",
                        "train.threads=1", "train.amp=false"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["epoch"] == 2  # epoch 1's batches prepared first, as asr train has them by then
    assert res["batches_prepared_before"] == 4
    assert res["steps"] == 3  # 4 batches of 2, the first one not counted
    assert abs(sum(res["shares"].values()) - 1) < 1e-6
    assert 0 <= res["padding_waste"] < 1 and res["ratio_executed"] > 0
    assert res["step_flops_executed"] >= res["step_flops_useful"] > 0
    assert "of GEMM" in r.stdout


def test_features_benchmark_measures_each_extractor(tmp_path: Path):
    dev = make_tone_corpus(tmp_path, n_utts=3, seed=2, name="dev")
    out = tmp_path / "f.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench/features.py"), str(dev),
                        "--repeats", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(x["kind"], x["extractor"]) for x in rows} == {
        (k, e) for k in ("fbank", "logmel", "mfcc")
        for e in ("ours (FeatureExtractor)", "torchaudio", "librosa")}
    assert all(x["x_real_time"] > 0 for x in rows)


def test_run_all_refuses_a_folder_without_a_model(tmp_path: Path):
    r = subprocess.run(["bash", str(ROOT / "bench/run_all.sh"), "--exp", str(tmp_path),
                        "--data", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"run_all.sh: no model at {tmp_path}/model.pt (--exp: a trained recipe folder)"]


def test_recurrence_ceiling_formula_and_run():
    """bench/recurrence.py: the ceiling is the large-GEMM rate when the per-step GEMM is as fast,
    falls with the per-step rate as 3F/(3F_in+F_rec + 2F_rec*big/step), and the script runs."""
    import recurrence  # bench/recurrence.py

    assert recurrence.ceiling_flops(1.0, 1.0, 100.0, 100.0) == pytest.approx(100.0)
    # F_in = F_rec = 1, big 100, step 10: 6 / (4/100 + 2/10) = 25
    assert recurrence.ceiling_flops(1.0, 1.0, 100.0, 10.0) == pytest.approx(25.0)
    assert recurrence.ceiling_flops(0.0, 1.0, 100.0, 10.0) == pytest.approx(3 / (1 / 100 + 2 / 10))
    r = subprocess.run([sys.executable, str(ROOT / "bench/recurrence.py"), "--frames", "3",
                        "--repeats", "1", "--gemm-n", "64", "model.hidden=8", "model.layers=3",
                        "train.amp=false"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| float32")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 9


def test_train_vs_refuses_in_one_line(tmp_path: Path):
    """bench/train_vs.sh: an unknown commit, or a folder without manifests, is one line, exit 2."""
    sh = str(ROOT / "bench/train_vs.sh")
    r = subprocess.run(["bash", sh, "--rev", "0000000", "--data", str(tmp_path)],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr.splitlines()) == (2, [f"train_vs.sh: no commit 0000000 in {ROOT}"])
    r = subprocess.run(["bash", sh, "--rev", "HEAD", "--data", str(tmp_path)],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr.splitlines()) == (
        2, [f"train_vs.sh: no manifests in '{tmp_path}' (--data)"])


def test_lstm_step_runs_and_the_step_loop_matches_nn_lstm():
    """bench/lstm_step.py prints a row per way and the step loop's agreement with nn.LSTM."""
    r = subprocess.run([sys.executable, str(ROOT / "bench/lstm_step.py"), "--hidden", "8",
                        "--layers", "2", "--input", "5", "--utt-frames", "7", "--repeats", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| step") or ln.startswith("| nn")]
    assert len(rows) == 4
    diff = float(r.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert diff < 1e-5


def test_decode_benchmark_timings_take_turns_and_keep_each_best():
    import decode as bench_decode  # bench/decode.py (pyctcdecode is imported in main only)

    calls: list[str] = []

    def pass_of(name):
        def run():
            calls.append(name)
            return [name]
        return run

    best = bench_decode.timed({k: pass_of(k) for k in "abc"}, repeats=3)
    assert calls == list("abc" "bca" "cab")  # each round starts one later
    assert {k: v[1] for k, v in best.items()} == {"a": ["a"], "b": ["b"], "c": ["c"]}
    assert all(0 <= v[0] < 1 for v in best.values())


def test_inference_benchmark_clocks_the_recurrent_modules_alone():
    import inference as bench_inference  # bench/inference.py

    from asr.config import load_config
    from asr.inference import Recognizer
    from asr.tokenizer import CharTokenizer

    torch.manual_seed(0)
    cfg = load_config(None, ["model.hidden=8", "model.layers=2", "features.n_mels=20"])
    dim = cfg.features.dim
    rec = Recognizer(cfg, CharTokenizer.build(["AB C"]),
                     {"mean": torch.zeros(dim), "std": torch.ones(dim)})
    waves = [torch.randn(8000), torch.randn(12000)]
    rnns = [m for m in rec.model.modules() if isinstance(m, torch.nn.RNNBase)]
    calls = []

    def decode(w):
        calls.append(len(w))
        rec.forward_waves([w])

    # a recurrent module made slow on purpose: its time is counted inside, the rest is not
    slow = rnns[0].forward
    rnns[0].forward = lambda *a, **k: (time.sleep(0.05), slow(*a, **k))[1]
    inside, wall = bench_inference.recurrent_seconds(rec, decode, waves)
    assert calls == [8000, 12000]
    assert 0.1 <= inside <= wall
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in rnns)  # hooks gone
