"""A Ctrl-C that cannot be lost: SIGINT is recorded as well as raised, and long loops re-raise it.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode the main thread runs. When that
bytecode belongs to a weakref callback, a ``__del__`` or a gc callback, Python prints "Exception
ignored in ..." and drops the exception, so the program carries on as if the key had not been
pressed. Reported by the session that wrote this module (not re-measured since): 1 of 40
SIGINTs to a tiny ``asr train`` was dropped in a ``WeakKeyDictionary`` callback and training went
on logging epochs. ``guard()`` installs a handler that also records the
signal, and the training, evaluation and transcription loops call ``check()`` once per batch,
which raises the interrupt again if Python dropped it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_pending = False


def _handler(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a SIGINT arrived under ``guard()`` and was not yet raised
    to the caller (Python dropped it, see the module docstring). Cheap: one global read."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def handled() -> None:
    """The caller caught the ``KeyboardInterrupt`` and carries on (``asr stream`` finalises the
    utterance): ``check()`` must not raise it a second time."""
    global _pending
    _pending = False


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Record SIGINTs for ``check()`` while the block runs. A process that ignores SIGINT (a
    background job of a non-interactive shell) keeps ignoring it; off the main thread, or where
    someone else installed a handler, nothing changes."""
    global _pending
    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if ours:
        signal.signal(signal.SIGINT, _handler)
    _pending = False
    try:
        yield
    finally:
        _pending = False  # the interrupt reached the caller, or the block ended without one
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
