"""Training with several processes (docs/distributed.md), on CPUs with gloo and a synthetic corpus.

One config trains the same way on 1 and 2 processes: the per-step losses (``steps.csv``) and the
final weights agree up to float32 summation order, on one node and on two nodes (two torchrun
launchers with a c10d rendezvous); a checkpoint written by 2 processes resumes with 1 and the
reverse; SIGKILL of one rank ends the whole job within 60 s, names the rank, leaves no process
behind, and --resume continues it.

Tolerance: the processes compute the same sums in another order (each rank sums its share's
per-utterance gradients, then the shares are added; CMVN's float64 sums likewise), so results
differ by float32 rounding, a few ulp (~1e-7 relative) per step, which training amplifies only
mildly over these 12 steps (measured: at most 1.3e-7 relative in the losses, 2e-6 absolute in
the final weights). ``RTOL`` = 1e-4 and ``ATOL`` = 1e-4 leave a margin of 50 (weights) to 1000
(losses) and are far below what a wrong batch semantics gives: normalising by a rank's own
utterance count instead of the batch's puts the step losses off by up to 50%.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asr.checkpoint import safe_load
from asr.train import Trainer
from conftest import make_tone_corpus

REPO = Path(__file__).resolve().parents[1]
RTOL = ATOL = 1e-4
# 16 utterances in batches of 3: 6 batches an epoch, the last of one utterance (an empty share
# for rank 1); speed perturbation and SpecAugment on (drawn per utterance); no dropout (its
# masks are drawn per rank, so they differ between process counts by design).
TINY = ["model.hidden=16", "model.layers=1", "model.dropout=0.0", "features.n_mels=23",
        "data.max_batch=3", "data.max_frames=100000", "train.epochs=2", "train.amp=false",
        "train.checkpoint_every_steps=1", "train.average_best=1", "train.keep_checkpoints=1",
        "train.warmup_steps=3", "train.threads=1", "train.dist_timeout_s=60"]
STEPS = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("corpus")
    return make_tone_corpus(d, n_utts=16, seed=21, name="train"), \
        make_tone_corpus(d, n_utts=2, seed=22, name="dev")


def train_args(corpus, exp: Path, resume: bool = False) -> list[str]:
    return ["train", "--train", str(corpus[0]), "--dev", str(corpus[1]), "--exp-dir", str(exp),
            "--device", "cpu", *TINY, *(["--resume"] if resume else [])]


def torchrun(*options: str) -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    head = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    return [*head, *options, "-m", "asr"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**e, "OMP_NUM_THREADS": "1"}


def launch(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own (so every process it starts can be found)."""
    out = open(log, "w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env(),
                            start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 120) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers: nothing left running
        proc.wait()
        pytest.fail(f"still running after {timeout} s: {log.read_text()[-3000:]}")
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def in_process(args: list[str]) -> int:
    """``asr`` in this process (one process, no torchrun), as run_cli does, without capsys."""
    from asr.cli import main

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.INFO)
    try:
        return main(args)
    finally:
        root.setLevel(level)
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
                h.close()


def steps(exp: Path) -> list[dict]:
    with open(exp / "steps.csv", newline="") as f:
        return list(csv.DictReader(f))


def same_training(a: Path, b: Path) -> None:
    """Runs ``a`` and ``b`` made the same steps, with the same losses and final weights, up to
    float32 summation order."""
    ra, rb = steps(a), steps(b)
    assert [(r["step"], r["epoch"], r["batch"], r["utterances"]) for r in ra] == \
        [(r["step"], r["epoch"], r["batch"], r["utterances"]) for r in rb]
    assert len(ra) == STEPS
    la = torch.tensor([float(r["loss"]) for r in ra], dtype=torch.float64)
    lb = torch.tensor([float(r["loss"]) for r in rb], dtype=torch.float64)
    torch.testing.assert_close(la, lb, rtol=RTOL, atol=0.0)
    wa, wb = safe_load(a / "model.pt")["model"], safe_load(b / "model.pt")["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=RTOL, atol=ATOL, msg=k)


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory) -> Path:
    """The reference: the config trained by one process, without torchrun."""
    exp = tmp_path_factory.mktemp("one") / "exp"
    assert in_process(train_args(corpus, exp)) == 0
    return exp


@pytest.fixture(scope="module")
def two_processes(corpus, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("two")
    cmd = torchrun("--standalone", "--nproc-per-node", "2") + train_args(corpus, d / "exp")
    finish(launch(cmd, d / "out.txt"), d / "out.txt")
    return d / "exp"


def test_two_processes_train_like_one(one_process, two_processes):
    same_training(one_process, two_processes)
    rows = steps(two_processes)
    assert {r["utterances"] for r in rows} == {"3", "1"}  # a batch of 1: rank 1's share empty
    # rank 0 alone writes the files
    assert (two_processes / "model.pt").is_file() and (two_processes / "log.csv").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_like_one_node(corpus, two_processes, tmp_path):
    port, exp = free_port(), tmp_path / "exp"
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"asr-test-{port}"]
    procs = [launch(torchrun(*common, "--node-rank", str(n), "--rdzv-conf", f"is_host={1 - n}")
                    + train_args(corpus, exp), tmp_path / f"node{n}.txt") for n in (0, 1)]
    try:
        for n, p in enumerate(procs):
            finish(p, tmp_path / f"node{n}.txt")
    finally:  # one launcher failed: do not leave the other waiting
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    same_training(two_processes, exp)


# -- the shares of a batch; ranks that agree on every step ---------------------------------------
def test_shares_are_disjoint_balanced_and_augmented_as_in_one_batch(corpus):
    from asr.config import DataConfig
    from asr.data import FeatureSource, filter_utterances, train_batches
    from asr.features import FeatureConfig, SpecAugmentConfig
    from asr.manifest import read_manifest
    from asr.tokenizer import CharTokenizer

    utts = read_manifest(corpus[0])
    tok = CharTokenizer.build([u.text for u in utts])
    fcfg = FeatureConfig(kind="logmel", n_mels=20)
    dcfg = DataConfig(max_frames=100000, max_batch=5, noise_snr=[10.0, 20.0])
    spec = SpecAugmentConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=5)
    examples = filter_utterances(utts, tok.encode, fcfg, dcfg, 2, "train")
    source = FeatureSource(fcfg, None, cache=True)

    def epoch(rank, world):
        return [b for _, b in train_batches(examples, source, dcfg, spec, 7, 2, rank=rank,
                                            world=world)]

    whole = epoch(0, 1)
    assert {len(b.ids) for b in whole} == {5, 1}
    for world in (2, 3, 8):
        ranks = [epoch(r, world) for r in range(world)]
        for bi, batch in enumerate(whole):
            shares = [r[bi] for r in ranks]
            ids = [i for s in shares if s is not None for i in s.ids]
            assert sorted(ids) == sorted(batch.ids)  # disjoint, and together the whole batch
            sizes = [len(s.ids) if s is not None else 0 for s in shares]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
            if len(batch.ids) >= world:  # length-balanced: no share holds two of the longest
                lens = batch.lens.tolist()
                longest = [batch.ids[j] for j in sorted(range(len(lens)),
                                                        key=lambda j: (-lens[j], j))[:world]]
                assert all(sum(i in s.ids for i in longest) == 1 for s in shares)
            for s in shares:  # each utterance augmented exactly as in the whole batch
                for k, uid in enumerate(s.ids if s is not None else []):
                    j = batch.ids.index(uid)
                    n = int(batch.lens[j])
                    assert int(s.lens[k]) == n
                    assert torch.equal(s.feats[k, :n], batch.feats[j, :n]), (world, uid)


def _rank(rank: int, port: int, corpus, exp: Path, out: Path) -> None:
    """One of two forked training processes; rank 1's loss is NaN at its third step."""
    try:
        from asr.config import load_config

        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        cfg = load_config(None, [*TINY, "train.epochs=1", "train.grad_clip=0.05",
                                 "train.dist_timeout_s=30"])
        tr = Trainer(cfg, str(corpus[0]), str(corpus[1]), exp, device="cpu")
        calls, real_ctc, real_step = [0], tr.ctc, tr._step

        def step(batch):
            calls[0] += 1
            return real_step(batch)

        def ctc(*args):
            loss = real_ctc(*args)
            return loss + float("nan") if rank == 1 and calls[0] == 3 else loss

        tr._step, tr.ctc = step, ctc
        tr.fit()
        torch.save({"model": tr.model.state_dict(), "skipped": tr.state.skipped_steps,
                    "steps": tr.state.global_step}, out / f"rank{rank}.pt")
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a forked child must not return into pytest
        import traceback

        (out / f"rank{rank}.err").write_text(traceback.format_exc())
        os._exit(1)


def test_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank(corpus, tmp_path):
    """Two forked processes (gloo): rank 1 alone sees a NaN loss at step 3; both skip that
    update, and with clipping active every step (grad_clip 0.05) they end with the same
    weights, so every rank clipped, skipped and updated alike."""
    import multiprocessing

    ctx, port, exp = multiprocessing.get_context("fork"), free_port(), tmp_path / "exp"
    procs = [ctx.Process(target=_rank, args=(r, port, corpus, exp, tmp_path)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    errors = "".join(f.read_text() for f in tmp_path.glob("rank*.err"))
    assert [p.exitcode for p in procs] == [0, 0], errors
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["skipped"] == r1["skipped"] == 1 and r0["steps"] == r1["steps"] == 6
    assert safe_load(exp / "checkpoints" / "last.pt", "checkpoint")["state"]["skipped_steps"] == 1
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), k
    assert [r["loss"] for r in steps(exp)].count("nan") == 1


# -- resume with another number of processes, SIGKILL of one rank -------------------------------
def position(exp: Path) -> tuple[int, int, int]:
    st = safe_load(exp / "checkpoints" / "last.pt", "checkpoint")["state"]
    return st["epoch"], st["step_in_epoch"], st["global_step"]


def resumed_at(exp: Path) -> list[tuple[int, int]]:
    found = re.findall(r"resumed from \S+: epoch (\d+), batch (\d+)",
                       (exp / "train.log").read_text())
    return [(int(e), int(b)) for e, b in found]


def test_one_process_checkpoint_resumes_with_two(corpus, one_process, tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    calls = []
    real_step = Trainer._step

    def stop_after_four(self, batch):
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a user's Ctrl-C, mid-epoch after 4 checkpoints
        calls.append(1)
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "_step", stop_after_four)
    assert in_process(train_args(corpus, exp)) == 130
    monkeypatch.undo()
    assert position(exp) == (1, 4, 4)
    cmd = torchrun("--standalone", "--nproc-per-node", "2") + train_args(corpus, exp, True)
    finish(launch(cmd, tmp_path / "out.txt"), tmp_path / "out.txt")
    assert resumed_at(exp) == [(1, 4)]
    same_training(one_process, exp)


def session_processes(sid: int) -> dict[int, str]:
    """pid -> state of the live (not zombie) processes of session ``sid``."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(d.name)] = fields[0]
    return out


def worker_of_rank(agent: int, rank: int) -> int | None:
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) \
                    == agent and f"\0RANK={rank}\0" in "\0" + (d / "environ").read_text():
                return int(d.name)
        except OSError:
            continue
    return None


def test_sigkill_of_one_rank_ends_the_job_and_one_process_resumes_it(corpus, one_process,
                                                                       tmp_path):
    exp, out = tmp_path / "exp", tmp_path / "out.txt"
    agent = launch(torchrun("--standalone", "--nproc-per-node", "2")
                   + train_args(corpus, exp), out)
    deadline = time.time() + 120
    victim = None
    # wait for a few steps (each one checkpointed), then SIGKILL rank 1 mid-epoch
    kill_after = random.Random(0).randint(2, 4)
    while not ((exp / "steps.csv").is_file() and len(steps(exp)) >= kill_after):
        assert agent.poll() is None, out.read_text()[-3000:]
        assert time.time() < deadline
        victim = victim or worker_of_rank(agent.pid, 1)
        time.sleep(0.005)
    victim = victim or worker_of_rank(agent.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    t0 = time.time()
    try:
        agent.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(agent.pid, signal.SIGKILL)
        pytest.fail("the job still ran 60 s after one rank was killed")
    ended = time.time() - t0
    text = out.read_text()
    assert agent.returncode != 0
    assert ended < 60
    # torchrun's report names the rank that died, and how
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*\n\s*exitcode\s*:\s*-9", text), text[-3000:]
    assert not (exp / "model.pt").exists()
    time.sleep(0.5)
    assert session_processes(agent.pid) == {}, "processes left behind"

    saved = position(exp)
    assert saved[:2] != (1, 0) and saved[2] < STEPS  # progress was kept, the run unfinished
    assert in_process(train_args(corpus, exp, resume=True)) == 0  # resumed by one process
    assert resumed_at(exp) == [saved[:2]]
    assert position(exp)[2] == STEPS
    same_training(one_process, exp)
    assert not list(exp.rglob("*.tmp"))
