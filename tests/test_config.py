import dataclasses

import pytest
import yaml

from conftest import REPO, run_snakemake
from photostyle.config import ConfigError, config_hash, full_schema, load_config, load_schema, validate_config
from photostyle.methods import REGISTRY


def test_default_config_is_valid_and_complete():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert cfg["stylize"]["methods"] == ["reinhard", "mkl", "wct_photo"]  # the sample runs a real neural method
    assert cfg["methods"]["wct_photo"]["encoder"] == "cd16x" and cfg["refine"]["per_method"]["wct_photo"]["smoothing"]["mode"] == "guided"
    assert cfg["refine"]["sigma_spatial"] == 60


def test_defaults_fill_an_empty_config():
    cfg = validate_config({})
    assert cfg["ingest"]["shard_size"] == 500 and cfg["weights"]["mode"] == "auto"
    assert cfg["methods"]["mkl"]["eps"] == 1e-6


def test_the_schemas_lift_models_are_the_ones_the_lift_implements():
    from photostyle.ops.lift import MODELS

    assert full_schema()["properties"]["lift"]["properties"]["model"]["enum"] == list(MODELS)
    assert validate_config({"lift": {"model": "upsample"}})["lift"]["model"] == "upsample"
    per = validate_config({"lift": {"per_method": {"fast": {"model": "upsample"}}}})["lift"]["per_method"]
    assert per == {"fast": {"model": "upsample"}}  # an override holds only what it sets: no defaults filled in
    for bad in ({"fsat": {"model": "upsample"}}, {"fast": {"enabled": False}}, {"fast": {"model": "bicubic"}}):
        with pytest.raises(ConfigError):
            validate_config({"lift": {"per_method": bad}})


@pytest.mark.parametrize("section, fixed", [("refine", ()), ("lift", ("enabled",))])
def test_a_per_method_override_accepts_exactly_the_sections_keys_and_values(section, fixed):
    """The schema's override blocks ($defs refine_settings, lift_settings) are written beside their
    section: each must allow every key of the section (but ``fixed`` ones), with the same types,
    enums and bounds, and no defaults (an override holds only what it sets)."""
    schema = full_schema()
    props = schema["properties"][section]["properties"]
    ref = props["per_method"]["additionalProperties"]["$ref"].rsplit("/", 1)[-1]
    override = schema["$defs"][ref]["properties"]
    bare = {k: {kk: vv for kk, vv in v.items() if kk not in ("default", "description")}
            for k, v in props.items() if k not in ("per_method", *fixed)}
    assert override == bare
    assert not any("default" in v for v in override.values())


def test_schema_method_names_and_blocks_come_from_the_registry():
    schema = full_schema()["properties"]
    assert schema["stylize"]["properties"]["methods"]["items"]["enum"] == list(REGISTRY)
    assert set(schema["methods"]["properties"]) == set(REGISTRY)
    assert schema["refine"]["properties"]["per_method"]["propertyNames"]["enum"] == list(REGISTRY)
    assert schema["lift"]["properties"]["per_method"]["propertyNames"]["enum"] == list(REGISTRY)
    # the schema file names no method: the registry is the one place a method is declared
    lines = (REPO / "workflow" / "schemas" / "config.schema.yaml").read_text().splitlines()
    text = "\n".join(line for line in lines if "default: [reinhard, mkl]" not in line)  # the one default
    assert not [m for m in REGISTRY if f"{m}:" in text or f" {m}," in text or f"[{m}" in text]
    assert load_schema()["properties"]["methods"]["properties"] == {}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_methods_params_dataclass_and_schema_block_agree(name):
    cls = REGISTRY[name]
    block = full_schema()["properties"]["methods"]["properties"][name]
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    assert set(block["properties"]) == set(fields) and block["additionalProperties"] is False
    # the defaults the config fills in are the dataclass's defaults
    assert cls.parse(validate_config({})["methods"][name]) == cls.Params()
    with pytest.raises(TypeError):
        cls.parse({"no_such_parameter": 1})


def test_misspelled_key_is_named_with_suggestion():
    with pytest.raises(ConfigError) as exc:
        validate_config({"refine": {"sigma_spacial": 30}})
    msg = str(exc.value)
    assert "refine.sigma_spacial" in msg and "Did you mean 'sigma_spatial'" in msg
    assert "Allowed keys here:" in msg and "iterations" in msg


def test_unknown_method_lists_allowed_values():
    with pytest.raises(ConfigError) as exc:
        validate_config({"stylize": {"methods": ["mlk"]}})
    msg = str(exc.value)
    assert "stylize.methods[0]" in msg and "'mlk'" in msg and "Allowed values:" in msg and "reinhard" in msg.split("Allowed values:")[1]


def test_wrong_type_and_range_are_named():
    with pytest.raises(ConfigError, match=r"ingest\.shard_size"):
        validate_config({"ingest": {"shard_size": "500"}})
    with pytest.raises(ConfigError, match=r"methods\.mkl\.strength"):
        validate_config({"methods": {"mkl": {"strength": 2}}})


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        validate_config({"seeed": 1, "device": "gpu"})
    msg = str(exc.value)
    assert "unknown config key 'seeed'" in msg  # the first problem
    assert "config key 'device' has value 'gpu'" in msg  # and the second, naming the bad value itself


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_snakemake_stops_on_bad_config_before_any_job(tiny_collection):
    workdir, cfg_path, cfg = tiny_collection
    cfg["refine"] = {"sigma_spacial": 30}
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(workdir, cfg_path, "--cores", "1", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "refine.sigma_spacial" in out and "sigma_spatial" in out
    assert not (workdir / "results" / "ingest" / "content").exists()


def test_missing_content_folder_stops_the_run(tiny_collection):
    workdir, cfg_path, cfg = tiny_collection
    cfg["content_dir"] = str(workdir / "photoz")
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(workdir, cfg_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "content_dir" in proc.stdout + proc.stderr and "photoz" in proc.stdout + proc.stderr


def test_scientific_notation_from_yaml_is_a_number():
    """PyYAML (YAML 1.1) reads 1e4, 1.0e9 and 1e-6 as strings; the config takes them as numbers."""
    import yaml

    text = ("methods:\n  dpst: {photorealism_weight: 1e4, matting_eps: 1e-7}\n  mkl: {eps: 1e-6}\n"
            "ingest: {max_megapixels: 1.0e2, shard_size: 5e2}\n")
    raw = yaml.safe_load(text)
    assert raw["methods"]["dpst"]["photorealism_weight"] == "1e4"  # what PyYAML gives
    cfg = validate_config(raw)
    assert cfg["methods"]["dpst"]["photorealism_weight"] == 1e4
    assert cfg["methods"]["dpst"]["matting_eps"] == 1e-7 and cfg["methods"]["mkl"]["eps"] == 1e-6
    assert cfg["ingest"]["max_megapixels"] == 100.0
    assert cfg["ingest"]["shard_size"] == 500 and isinstance(cfg["ingest"]["shard_size"], int)
    assert validate_config(yaml.safe_load("ingest: {max_decode_megapixels: 1.0e9}"))["ingest"]["max_decode_megapixels"] == 1e9


def test_a_string_that_is_no_number_is_still_refused():
    with pytest.raises(ConfigError, match=r"methods\.dpst\.photorealism_weight.*'abc', which is not a number"):
        validate_config({"methods": {"dpst": {"photorealism_weight": "abc"}}})
    with pytest.raises(ConfigError, match=r"ingest\.shard_size"):  # an integer field: 2.5e0 is no integer
        validate_config({"ingest": {"shard_size": "2.5e0"}})
