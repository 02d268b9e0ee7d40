"""asr.config: strict typed YAML configs with command-line overrides."""

from __future__ import annotations

import pytest

from asr.config import ExperimentConfig, load_config, to_yaml
from asr.errors import UserError


def _yaml(tmp_path, text: str):
    p = tmp_path / "conf.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg == ExperimentConfig()
    assert cfg.model.cell == "lstm" and cfg.features.kind == "fbank"


def test_yaml_values_are_read(tmp_path):
    p = _yaml(tmp_path, "model:\n  cell: gru\n  hidden: 64\nfeatures:\n  kind: mfcc\n"
                        "train:\n  lr: 1\ndata:\n  speed_perturb: [1, 1.1]\n")
    cfg = load_config(p)
    assert (cfg.model.cell, cfg.model.hidden, cfg.features.kind) == ("gru", 64, "mfcc")
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # int accepted for float
    assert cfg.data.speed_perturb == [1.0, 1.1]
    assert cfg.model.layers == ExperimentConfig().model.layers  # untouched keys keep defaults


@pytest.mark.parametrize("text, names", [
    ("modle:\n  cell: gru\n", ["modle"]),
    ("model:\n  cells: gru\n", ["cells", "model"]),
    ("train:\n  epochs: 3\n  learning_rate: 0.1\n", ["learning_rate", "train"]),
])
def test_unknown_key_is_user_error_naming_it(tmp_path, text, names):
    with pytest.raises(UserError) as e:
        load_config(_yaml(tmp_path, text))
    msg = str(e.value)
    assert "unknown" in msg and all(n in msg for n in names) and "\n" not in msg


@pytest.mark.parametrize("text, key", [
    ("model:\n  hidden: big\n", "model.hidden"),
    ("model:\n  hidden: 2.5\n", "model.hidden"),
    ("model:\n  bidirectional: 1\n", "model.bidirectional"),
    ("model:\n  hidden: true\n", "model.hidden"),  # bool is not an int here
    ("data:\n  speed_perturb: 1.1\n", "data.speed_perturb"),
    ("data:\n  speed_perturb: [0.9, fast]\n", "data.speed_perturb"),
    ("train:\n  lr: fast\n", "train.lr"),
    ("text:\n  strip_punct: 'no'\n", "text.strip_punct"),
])
def test_wrong_type_is_user_error(tmp_path, text, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(_yaml(tmp_path, text))


def test_exponent_floats_are_floats(tmp_path):
    # YAML 1.1 (PyYAML) reads 3e-3 as a string; a float key must still take it
    cfg = load_config(_yaml(tmp_path, "train:\n  lr: 3e-3\n"), ["train.min_lr=1e-5"])
    assert cfg.train.lr == pytest.approx(3e-3) and cfg.train.min_lr == pytest.approx(1e-5)


def test_section_must_be_a_mapping(tmp_path):
    with pytest.raises(UserError, match="'model' must be a mapping"):
        load_config(_yaml(tmp_path, "model: 3\n"))


def test_overrides(tmp_path):
    p = _yaml(tmp_path, "model:\n  cell: rnn\n  hidden: 64\n")
    cfg = load_config(p, ["model.cell=gru", "train.epochs=3", "data.speed_perturb=[1.0]",
                          "text.case=lower", "model.bidirectional=false"])
    assert cfg.model.cell == "gru"  # the override beats the file
    assert cfg.model.hidden == 64
    assert cfg.train.epochs == 3 and cfg.data.speed_perturb == [1.0]
    assert cfg.text.case == "lower" and cfg.model.bidirectional is False
    assert load_config(None, ["model.cell=gru"]).model.cell == "gru"


@pytest.mark.parametrize("override, pattern", [
    ("model.subsample=7", "subsample"),
    ("model.cell=transformer", "model.cell"),
    ("features.kind=plp", "features.kind"),
    ("tokenizer.kind=words", "tokenizer.kind"),
    ("text.case=title", "text.case"),
    ("model.hidden=abc", "model.hidden"),
    ("model.nope=1", "nope"),
    ("model.cell", "section.key=value"),
    ("model=3", "mapping"),
    ("model.cell=[unclosed", "YAML"),
])
def test_bad_override_is_user_error(override, pattern):
    with pytest.raises(UserError, match=pattern) as e:
        load_config(None, [override])
    assert "\n" not in str(e.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(_yaml(tmp_path, "model: [unclosed\n"))


def test_yaml_roundtrip(tmp_path):
    cfg = load_config(None, ["model.cell=gru", "features.deltas=2", "data.max_batch=7"])
    again = load_config(_yaml(tmp_path, to_yaml(cfg)))
    assert again == cfg
