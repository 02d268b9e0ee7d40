"""The pause detector behind ``asr transcribe --segment pause`` (asr/segment.py), on made-up
frame energies and on a synthetic waveform."""

from __future__ import annotations

import numpy as np
import pytest

from asr.segment import find_cut, frame_energies_db, noise_floor_db, quietest_cut


def energies(pattern: str, speech: float = -30.0, quiet: float = -70.0) -> np.ndarray:
    """One frame per character: '#' speech, '.' background noise, '0' digital silence."""
    return np.array([{"#": speech, ".": quiet, "0": -100.0}[c] for c in pattern])


def test_frame_energies_of_a_known_signal():
    x = np.concatenate([np.zeros(160), 0.1 * np.ones(160), np.ones(100)])  # last frame partial
    e = frame_energies_db(x, 160)
    assert e.shape == (2,)
    assert e[0] == pytest.approx(-100.0)
    assert e[1] == pytest.approx(-20.0)  # mean square 0.01
    assert frame_energies_db(np.ones(10), 160).shape == (0,)


def test_noise_floor_leaves_out_digital_silence():
    e = energies("0" * 50 + "." * 20 + "#" * 30)
    assert noise_floor_db(e) == pytest.approx(-70.0)
    assert noise_floor_db(energies("000")) == np.inf


def test_cut_in_the_middle_of_the_first_long_enough_pause():
    e = energies("..###.##....###")  # a 1-frame gap (too short), then a 4-frame pause
    assert find_cut(e, -70.0, 16.0, 3) == 10  # the pause is frames 8-11
    assert find_cut(e, -70.0, 16.0, 5) is None  # no pause of 5 frames
    # leading and trailing silence are not pauses: they belong to the segment
    assert find_cut(energies("......###......"), -70.0, 16.0, 3) is None
    # the margin decides what counts as speech
    assert find_cut(e, -70.0, 50.0, 3) is None
    # a segment may not pass the limit: a pause that begins before it is cut at the limit at
    # the latest; one that begins at or after it does not count
    assert find_cut(e, -70.0, 16.0, 3, limit=9) == 9
    assert find_cut(e, -70.0, 16.0, 3, limit=8) is None
    assert find_cut(e, -70.0, 16.0, 3, limit=12) == 10


def test_quietest_cut_lies_in_the_second_half():
    e = np.full(100, -30.0)
    e[20:25] = -80.0  # quiet, but in the first half
    e[70:75] = -60.0
    assert quietest_cut(e, 5) == 72
    assert quietest_cut(np.full(6, -30.0), 5) == 3
