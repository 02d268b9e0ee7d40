"""asr.data.prefetch: batches prepared in a background thread arrive in order, errors arrive at
their item, an early stop ends the thread, and training with it gives the same weights."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from asr.checkpoint import load_model_file
from asr.config import load_config
from asr.data import prefetch
from asr.train import Trainer
from conftest import make_tone_corpus

pytestmark = pytest.mark.usefixtures("no_leaked_log_handlers")


def test_order_and_values_are_those_of_the_source():
    src = [torch.full((3,), float(i)) for i in range(50)]
    for depth in (0, 1, 2, 7):
        got = list(prefetch(iter(src), depth))
        assert [int(x[0]) for x in got] == list(range(50))


def test_items_are_prepared_on_another_thread_ahead_of_the_consumer():
    made = []

    def gen():
        for i in range(5):
            made.append((i, threading.current_thread().name))
            yield i

    it = prefetch(gen(), 2)
    assert next(it) == 0
    time.sleep(0.3)
    assert len(made) >= 3  # the one taken, and up to depth more waiting in the queue
    assert all(name == "asr-prefetch" for _, name in made)
    assert list(it) == [1, 2, 3, 4]


def test_an_error_while_preparing_is_raised_at_that_item():
    def gen():
        yield 1
        yield 2
        raise ValueError("bad audio")

    it = prefetch(gen(), 2)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="bad audio"):
        next(it)


def test_closing_early_stops_the_thread():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    it = prefetch(endless(), 2)
    assert next(it) == 0
    it.close()
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if t.name == "asr-prefetch"]


TINY = ["model.hidden=8", "model.layers=1", "features.n_mels=23", "data.max_batch=2",
        "data.speed_perturb=[0.9,1.0,1.1]", "specaug.time_masks=1", "train.warmup_steps=1",
        "train.threads=1", "train.amp=false", "train.epochs=2"]


def test_training_with_prefetch_gives_the_weights_of_training_without(tmp_path: Path):
    train = make_tone_corpus(tmp_path, n_utts=6, seed=11, name="train")
    dev = make_tone_corpus(tmp_path, n_utts=2, seed=12, name="dev")
    weights = []
    for depth in (0, 3):
        cfg = load_config(None, [*TINY, f"data.prefetch={depth}"])
        out = Trainer(cfg, str(train), str(dev), tmp_path / f"exp{depth}", device="cpu").fit()
        weights.append(load_model_file(out)["model"])
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
