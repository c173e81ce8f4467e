"""User overrides: config files (TOML, YAML), environment variables, precedence and clear errors."""

import pytest

from tailpipe_ai.carbon import ConfigError, Usage, estimate, load_config, read_config_file

TOML = """
method = "flat"
region = "aws:eu-central-1"

[factors]
pse = 1.05

[defaults]
pue = 1.3
grid = 400

[regions."aws:eu-central-1"]
grid = 332

[regions."onprem:paris-dc1"]
country = "FR"
pue = 1.4

[models."acme-llm"]
wh_per_token = 0.001
aliases = ["acme-llm-2026"]
source = "internal measurement, 2026-03"

[aliases]
"prod-gpt4o" = "gpt-4o"
"""

YAML = """
method: shape
factors: {transmission: 1.1}
regions:
  azure:westeurope: {pue: 1.2}
models:
  acme-small: {params_b: 3}
"""


def test_toml_config(tmp_path):
    p = tmp_path / "tailpipe.toml"
    p.write_text(TOML)
    cfg = load_config({"TAILPIPE_CONFIG": str(p)})
    e = estimate(Usage(model="claude-sonnet-4", total_tokens=1000), config=cfg)
    assert e.method == "flat"
    assert e.factors["grid"]["value"] == 332  # region override
    assert e.factors["pue"]["value"] == 1.35  # regional data kept
    assert e.factors["pse"]["value"] == 1.05
    assert e.energy_wh == pytest.approx(1000 * 0.00245 * 1.05 * 1.08 * 1.35)
    onprem = estimate(Usage(model="acme-llm-2026", total_tokens=1000), region="onprem:paris-dc1", config=cfg)
    assert onprem.factors["pue"]["value"] == 1.4
    assert onprem.factors["grid"]["area"] == "FR"
    assert onprem.energy_wh == pytest.approx(1.0 * 1.05 * 1.08 * 1.4)
    assert estimate(Usage(model="prod-gpt4o", total_tokens=10), config=cfg).model.id == "gpt-4o"


def test_defaults_apply_only_where_no_location_is_known(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[defaults]\npue = 1.3\ngrid = 400\n")
    cfg = load_config({"TAILPIPE_CONFIG": str(p)})
    e = estimate(Usage(model="gpt-4o", total_tokens=10), config=cfg)
    assert (e.factors["pue"]["value"], e.factors["grid"]["value"]) == (1.3, 400)
    r = estimate(Usage(model="gpt-4o", total_tokens=10), region="aws:eu-north-1", config=cfg)
    assert r.factors["pue"]["value"] != 1.3 and r.factors["grid"]["area"] == "SE"


def test_yaml_config(tmp_path):
    p = tmp_path / "tailpipe.yaml"
    p.write_text(YAML)
    cfg = read_config_file(p)
    e = estimate(Usage(model="acme-small", input_tokens=10, output_tokens=10), region="azure:westeurope", config=cfg)
    assert e.factors["pue"]["value"] == 1.2
    assert e.factors["transmission"]["value"] == 1.1
    assert e.factors["model"]["size_class"] == "nano"


def test_environment_beats_the_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(TOML)
    cfg = load_config(
        {"TAILPIPE_CONFIG": str(p), "TAILPIPE_PUE": "1.1", "TAILPIPE_GRID": "100", "TAILPIPE_METHOD": "shape"}
    )
    e = estimate(Usage(model="gpt-4o", input_tokens=10, output_tokens=10), config=cfg)
    assert e.factors["pue"]["value"] == 1.1
    assert e.factors["grid"]["value"] == 100
    assert e.method == "shape"
    # call-site overrides beat the environment
    e2 = estimate(Usage(model="gpt-4o", total_tokens=10), overrides={"pue": 1.2}, config=cfg)
    assert e2.factors["pue"]["value"] == 1.2


def test_cwd_file_is_found(tmp_path):
    (tmp_path / "tailpipe.toml").write_text('region = "DE"\n')
    assert load_config({}, cwd=tmp_path).region == "DE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[factors]\npue = 1.3\n", "unknown key 'pue'"),
        ("[defaults]\npue = 'high'\n", "pue must be a number"),
        ("[defaults]\npue = 0.5\n", "pue = 0.5 is outside"),
        ("[defaults]\ngrid = -4\n", "grid = -4 is outside"),
        ("method = 'magic'\n", "method must be one of"),
        ("colour = 'blue'\n", "unknown key 'colour'"),
        ("[models.x]\nwh_per_token = 0.1\nparams_b = 3\n", "exactly one of"),
        ("[models.x]\nparams_b = -3\n", "params_b must be a positive"),
        ("[regions.'aws:x']\nfoo = 1\n", "unknown key 'foo'"),
        ("this is = = not toml\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key_and_value(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        read_config_file(p)
    assert str(p) in str(info.value)


def test_malformed_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("factors: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_config_file(p)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({"TAILPIPE_CONFIG": "/nonexistent/tailpipe.toml"})


@pytest.mark.parametrize(
    ("var", "value"), [("TAILPIPE_PUE", "abc"), ("TAILPIPE_GRID", "-1"), ("TAILPIPE_METHOD", "fast")]
)
def test_bad_environment_variable(var, value):
    with pytest.raises(ConfigError, match=var):
        load_config({var: value})
