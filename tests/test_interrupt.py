"""asr/interrupt.py: a SIGINT that Python drops (raised inside a __del__) is raised again by
check(), and the training loop calls check() once per step."""

from __future__ import annotations

import signal
import sys

import pytest

from asr import interrupt


class _DropsInterrupt:
    """Sends SIGINT from its __del__: the KeyboardInterrupt is raised inside __del__, where
    Python prints "Exception ignored" and drops it (what a weakref callback did in training)."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)
        for _ in range(3):  # a loop back-edge: the handler runs here, inside __del__
            pass


@pytest.fixture(autouse=True)
def default_sigint():
    """Python's own SIGINT handler for each test, as in an interactive run (a suite started as a
    background job, `pytest &`, inherits SIGINT ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture
def dropped(monkeypatch) -> list:
    """The exceptions Python drops ("Exception ignored in ..."), via sys.unraisablehook."""
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    return seen


def test_python_drops_an_interrupt_raised_in_del(dropped):
    """The failure guarded against, shown without the guard: nothing reaches the caller."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _DropsInterrupt()  # no KeyboardInterrupt here: Python dropped it
    assert dropped == [KeyboardInterrupt]
    interrupt.check()  # and without guard() nothing was recorded


def test_check_raises_the_dropped_interrupt_once(dropped):
    with interrupt.guard():
        _DropsInterrupt()
        assert dropped == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        interrupt.check()  # raised once, not again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_a_handled_interrupt_is_not_raised_again():
    """An interrupt that reached its caller and was caught there (asr stream finalises on
    Ctrl-C) is not raised again by the next check() once the caller says it handled it."""
    with interrupt.guard():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        interrupt.handled()
        try:
            interrupt.check()
        except KeyboardInterrupt:
            pytest.fail("check() raised the handled interrupt again")


def test_guard_leaves_an_ignored_sigint_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupt.guard():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_training_stops_at_the_next_step_after_a_dropped_interrupt(monkeypatch, dropped):
    """Trainer._epoch_steps calls check() per batch: a pending interrupt stops training before
    the step runs, as a Ctrl-C would."""
    from asr.train import Trainer

    steps = []
    monkeypatch.setattr(Trainer, "_step", lambda self, batch: steps.append(1) or 1.0)

    class _Trainer(Trainer):
        def __init__(self):  # only what _epoch_steps reads
            pass

    t = _Trainer()
    t.cfg = type("C", (), {"train": type("T", (), {"seed": 0, "checkpoint_every_steps": 0})})()
    t.state = type("S", (), {"step_in_epoch": 0, "global_step": 0, "epoch_loss": 0.0,
                             "epoch_steps": 0})()
    t.dist = type("D", (), {"rank": 0, "main": True, "sum_ints": lambda self, n: (n,)})()
    t.logger = None
    with interrupt.guard():
        _DropsInterrupt()
        assert dropped == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            t._epoch_steps(1, iter([(0, None)]), bar=None)
    assert steps == []
