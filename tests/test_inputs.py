"""CityInputs: one description of a city's inputs for plan_city, the manifest and rollout resume."""

import dataclasses

import pandas as pd

import gridengine as ge
from gridengine.inputs import INPUT_KINDS, CityInputs, input_record


def _config_with_gazetteer(path):
    cfg = ge.Config()
    return dataclasses.replace(cfg, geocode=dataclasses.replace(cfg.geocode, gazetteer=str(path)))


def test_every_input_kind_is_a_field_and_the_manifest_order_is_kept():
    assert tuple(f.name for f in dataclasses.fields(CityInputs)) == INPUT_KINDS
    rec = CityInputs("c.csv", None).record(ge.Config())
    assert list(rec) == ["customers", "specialists", "service_area", "barriers", "zones", "locked", "gazetteer"]
    assert rec["customers"] == {"name": "c.csv", "sha256": None}  # no such file: recorded, not hashed


def test_a_changed_gazetteer_or_a_new_input_is_a_change(tmp_path):
    cust = tmp_path / "customers.csv"
    cust.write_text("customer_id,address\nc1,深圳市福田区福华路1号\n", encoding="utf-8")
    gaz = tmp_path / "gazetteer.csv"
    gaz.write_text("address,lat,lon\n深圳市福田区福华路1号,22.54,114.05\n", encoding="utf-8")
    cfg = _config_with_gazetteer(gaz)
    inputs = CityInputs(cust)
    recorded = inputs.record(cfg)
    assert recorded["gazetteer"]["sha256"] is not None
    assert inputs.unchanged_since(recorded, cfg)
    gaz.write_text("address,lat,lon\n深圳市福田区福华路1号,22.55,114.05\n", encoding="utf-8")
    assert not inputs.unchanged_since(recorded, cfg)  # same path, new content: the plan is stale
    recorded = inputs.record(cfg)
    roads = tmp_path / "roads.csv"
    roads.write_text("u,v,length_m\n", encoding="utf-8")
    assert not CityInputs(cust, road_graph=roads).unchanged_since(recorded, cfg)
    locks = tmp_path / "locks.csv"
    locks.write_text("grid_id\nG001\n", encoding="utf-8")
    assert not CityInputs(cust, locked=locks).unchanged_since(recorded, cfg)
    assert not inputs.unchanged_since(recorded, ge.Config())  # the gazetteer dropped


def test_tables_are_recorded_by_content():
    a = pd.DataFrame({"customer_id": ["c1"], "lat": [22.5], "lon": [114.0]})
    assert input_record(a, "customers") == input_record(a.copy(), "customers")
    assert input_record(a, "customers")["sha256"] != input_record(a.assign(lat=22.6), "customers")["sha256"]


def test_a_table_input_is_compared_by_content():
    a = pd.DataFrame({"customer_id": ["c1"], "lat": [22.5], "lon": [114.0]})
    rec = CityInputs(a).record(ge.Config())
    assert CityInputs(a.copy()).unchanged_since(rec, ge.Config())
    assert not CityInputs(a.assign(lon=114.1)).unchanged_since(rec, ge.Config())


def test_a_rollout_city_takes_every_input_kind(tmp_path):
    from gridengine.rollout import RolloutSpec

    (tmp_path / "spec.toml").write_text(
        '[config.partition]\ncapacity = 100.0\n[[city]]\nname = "a"\ncustomers = "a/c.csv"\nlocked = "a/locks.csv"\n'
        'road_graph = "a/roads.graphml"\n', encoding="utf-8")
    city = RolloutSpec.from_toml(tmp_path / "spec.toml").cities[0]
    assert city.locked == tmp_path / "a" / "locks.csv" and city.road_graph == tmp_path / "a" / "roads.graphml"
