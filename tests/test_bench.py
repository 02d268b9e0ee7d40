"""The benchmark scripts run and report consistent figures (not their speed: bench/ measures
that on purpose, tests do not time anything): bench/train.py's time shares add up and its
FLOP count follows the model's shape, bench/features.py measures every extractor, and
bench/run_all.sh refuses a folder without a model in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
