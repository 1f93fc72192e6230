"""ReleaseConfig: the options of a release, frozen and checked before any data is read."""

import dataclasses
import re
from pathlib import Path

import pytest

from privsynth import ConfigError, ReleaseConfig, Schema

SCHEMA = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "id": {"kind": "identifier"},
            "sex": {"kind": "categorical", "categories": ["F", "M"]},
            "age": {"kind": "integer", "lower": 18, "upper": 90},
        },
    }
)


def test_the_public_name_stays_the_release_function_after_the_module_is_imported():
    import privsynth.pipeline  # noqa: F401  (a submodule import must not shadow the function)

    assert callable(privsynth.release)
    assert privsynth.release is privsynth.pipeline.release


def test_config_is_frozen_and_normalised(tmp_path):
    params = {"max_cells": 1000}
    cfg = ReleaseConfig(
        out=str(tmp_path / "rel"), generator="MST", sensitive=["sex"], generator_params=params
    )
    assert cfg.out == Path(tmp_path / "rel") and cfg.generator == "mst"
    assert cfg.sensitive == ("sex",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epsilon = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.generator_params["max_cells"] = 1  # type: ignore[index]
    params["max_cells"] = 1  # the caller's dict is copied, not shared
    assert cfg.generator_params["max_cells"] == 1000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fmt": "xlsx"}, "format 'xlsx' is not supported"),
        ({"holdout_fraction": 1.0}, "holdout fraction (1.0) must be in [0, 1)"),
        ({"holdout_fraction": -0.1}, "holdout fraction (-0.1) must be in [0, 1)"),
        ({"generator": "gan"}, "unknown generator 'gan'"),
        ({"out": Path("..")}, "must end in the name of a new folder"),
    ],
)
def test_options_are_refused_when_built(tmp_path, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ReleaseConfig(**{"out": tmp_path / "rel", **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sensitive": ("income",)}, "sensitive: column 'income' is not in the schema"),
        ({"quasi_identifiers": ("id",)}, "quasi_identifiers: column 'id' is an identifier"),
        ({"target": "nope"}, "target: column 'nope' is not in the schema"),
    ],
)
def test_columns_are_checked_against_the_schema(tmp_path, options, message):
    cfg = ReleaseConfig(out=tmp_path / "rel", **options)
    with pytest.raises(ConfigError, match=message):
        cfg.check_columns(SCHEMA)


def test_mst_is_built_around_the_target_unless_its_parameters_name_another(tmp_path):
    cfg = ReleaseConfig(out=tmp_path / "r", target="sex")
    assert cfg.make_generator().target == "sex"
    other = ReleaseConfig(out=tmp_path / "r", target="sex", generator_params={"target": "age"})
    assert other.make_generator().target == "age"


def test_release_options_are_the_config_fields_and_an_unknown_one_is_named(tmp_path):
    cfg = ReleaseConfig.from_options(out=tmp_path / "r", epsilon=2.0, sensitive=["sex"])
    assert cfg.epsilon == 2.0 and cfg.sensitive == ("sex",)
    with pytest.raises(ConfigError, match=r"unknown release option\(s\) \['epsilno'\]"):
        ReleaseConfig.from_options(out=tmp_path / "r", epsilno=2.0)
    with pytest.raises(ConfigError, match="needs out="):
        ReleaseConfig.from_options(epsilon=2.0)
