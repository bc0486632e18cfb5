import pytest

import gridengine as ge


def test_defaults_validate_and_roundtrip():
    cfg = ge.Config()
    assert ge.Config.from_dict(cfg.to_dict()) == cfg


def test_toml_reads_groups(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("seed = 3\n[partition]\ncapacity = 800\nk = 12\n[cells]\nresolution = 8\n")
    cfg = ge.Config.from_toml(p)
    assert cfg.seed == 3 and cfg.partition.capacity == 800.0 and cfg.partition.k == 12 and cfg.cells.resolution == 8


@pytest.mark.parametrize("text, needle", [
    ("[partition]\ncapcity = 1\n", "unknown key(s) in [partition]: capcity"),
    ("colour = 1\n", "unknown key(s) in config: colour"),
    ("[cells]\nresolution = '9'\n", "[cells] resolution must be of type int"),
    ("[cells]\nresolution = 16\n", "cells.resolution must be an integer in [0, 15]"),
    ("[partition]\ntarget_fill = 2.0\n", "partition.target_fill must be in [0.1, 1]"),
    ("[partition]\ncapacity = -5\n", "partition.capacity must be a positive number"),
    ("[input]\ncoord_system = 'utm'\n", "input.coord_system must be one of wgs84, gcj02, bd09"),
    ("[assign]\nrequire_full_staffing = 'yes'\n", "[assign] require_full_staffing must be of type bool"),
    ("seed = true\n", "seed must be an integer"),
    ("[partition\n", "not valid TOML"),
])
def test_bad_toml_names_file_and_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ge.ConfigError) as exc:
        ge.Config.from_toml(p)
    assert str(p) in str(exc.value)
    assert needle in str(exc.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ge.ConfigError, match="config file not found"):
        ge.Config.from_toml(tmp_path / "nope.toml")


def test_config_path_is_a_folder(tmp_path):
    with pytest.raises(ge.ConfigError, match="is a folder, expected a config TOML file"):
        ge.Config.from_toml(tmp_path)


def test_config_errors_are_value_errors():
    with pytest.raises(ValueError):
        ge.PartitionConfig(tolerance=0)
