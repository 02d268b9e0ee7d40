"""Fixtures of the robustness suite (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_bad_audio, save_tiny_model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """An untrained tiny model file, shared by the whole suite."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def bad_audio(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected message) for every kind of bad audio file."""
    return make_bad_audio(tmp_path_factory.mktemp("bad_audio"))
