"""asr train --train SHARD_DIR (asr shard's output): every utterance is trained on exactly once
per epoch across 2 ranks x 2 DataLoader workers, and a run killed within an epoch resumes
without repeating or skipping any (counted in steps.csv, whose rows are the utterances of each
step summed over the ranks)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from test_distributed import env, finish, in_process, launch, steps, torchrun
from conftest import make_tone_corpus

N_UTTS = 20
TINY = ["model.hidden=16", "model.layers=1", "model.dropout=0.0", "features.n_mels=23",
        "data.max_batch=4", "data.max_frames=100000", "data.shuffle_buffer=5", "train.epochs=2",
        "train.amp=false", "train.checkpoint_every_steps=1", "train.average_best=1",
        "train.keep_checkpoints=1", "train.warmup_steps=3", "train.threads=1",
        "train.dist_timeout_s=60"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("shards")
    train = make_tone_corpus(d, n_utts=N_UTTS, seed=31, name="train")
    dev = make_tone_corpus(d, n_utts=2, seed=32, name="dev")
    assert in_process(["shard", str(train), "--out", str(d / "shards"), "--shard-size", "3"]) == 0
    return d / "shards", dev


def args(shards, exp: Path, *extra: str) -> list[str]:
    return ["train", "--train", str(shards[0]), "--dev", str(shards[1]), "--exp-dir", str(exp),
            "--device", "cpu", *TINY, *extra]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def kill_job(proc) -> None:
    """SIGKILL torchrun and every process it started (workers too: they are not in its process
    group), as a machine failure would, and wait until none is left."""
    victims = _descendants(proc.pid) | {proc.pid}
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in victims):
        time.sleep(0.05)
    assert not any(_alive(p) for p in victims), "processes left behind"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def per_epoch(exp: Path) -> Counter:
    count = Counter()
    for r in steps(exp):
        count[int(r["epoch"])] += int(r["utterances"])
    return count


def test_two_ranks_with_two_workers_train_on_every_utterance_once_per_epoch(shards, tmp_path):
    exp = tmp_path / "exp"
    proc = launch(torchrun("--standalone", "--nproc-per-node", "2") + args(shards, exp, "data.workers=2"),
                  tmp_path / "log")
    finish(proc, tmp_path / "log", timeout=240)
    assert per_epoch(exp) == {1: N_UTTS, 2: N_UTTS}
    assert (exp / "model.pt").is_file()


def test_one_process_reads_the_shards_in_process(shards, tmp_path):
    exp = tmp_path / "exp"
    assert in_process(args(shards, exp)) == 0
    assert per_epoch(exp) == {1: N_UTTS, 2: N_UTTS}


def test_a_killed_sharded_epoch_resumes_without_repeats_or_gaps(shards, tmp_path):
    exp = tmp_path / "exp"
    log = tmp_path / "log"
    proc = launch(torchrun("--standalone", "--nproc-per-node", "2") + args(shards, exp, "data.workers=2"),
                  log)
    deadline = time.time() + 180
    while time.time() < deadline:  # kill once a checkpoint within epoch 1 exists
        if (exp / "steps.csv").is_file() and len(steps(exp)) >= 2:
            break
        time.sleep(0.05)
    kill_job(proc)
    done = steps(exp)
    assert 2 <= len(done) and int(done[-1]["epoch"]) == 1  # stopped within the first epoch
    proc = launch(torchrun("--standalone", "--nproc-per-node", "2")
                  + args(shards, exp, "data.workers=2", "--resume"), log)
    finish(proc, log, timeout=240)
    assert per_epoch(exp) == {1: N_UTTS, 2: N_UTTS}


def test_resuming_within_an_epoch_with_other_streams_is_refused(shards, tmp_path):
    import subprocess
    import sys

    exp = tmp_path / "exp"
    log = tmp_path / "log"
    proc = launch(torchrun("--standalone", "--nproc-per-node", "2") + args(shards, exp), log)
    deadline = time.time() + 180
    while time.time() < deadline and not (exp / "checkpoints" / "last.pt").is_file():
        time.sleep(0.05)
    kill_job(proc)
    from asr.checkpoint import safe_load
    state = safe_load(exp / "checkpoints" / "last.pt", "checkpoint")["state"]
    assert state["step_in_epoch"] > 0 and state["streams"] == 2  # within an epoch, 2 x 1 streams
    one = subprocess.run([sys.executable, "-m", "asr", *args(shards, exp, "--resume")],
                         capture_output=True, text=True, env=env(), timeout=120)
    assert one.returncode == 2
    line, = one.stderr.strip().splitlines()[-1:]
    assert "read by 2 streams" in line and "resume it with as many (not 1)" in line, one.stderr
