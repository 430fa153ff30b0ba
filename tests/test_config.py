"""numconv.config: data format and floatx defaults, setters, config file, no write on import."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import numconv


@pytest.fixture
def restore_config():
    saved = numconv.config.image_data_format(), numconv.config.floatx()
    yield
    numconv.config.set_image_data_format(saved[0])
    numconv.config.set_floatx(saved[1])


def run_python(code, env_updates, cwd):
    env = {key: value for key, value in os.environ.items() if key != "NUMCONV_HOME"}
    env.update(env_updates)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


PROBE = (
    "import numconv\n"
    "from numconv import config, layers\n"
    "print(config.image_data_format(), config.floatx(), layers.Conv2D(2, 3).data_format,"
    " layers.Conv2D(2, 3).dtype, layers.Flatten().data_format)\n"
)


@pytest.mark.slow
def test_built_in_defaults_without_a_config_file(tmp_path):
    assert run_python(PROBE, {"NUMCONV_HOME": str(tmp_path)}, tmp_path) == [
        "channels_last",
        "float32",
        "channels_last",
        "float32",
        "channels_last",
    ]


@pytest.mark.slow
def test_config_file_sets_the_defaults(tmp_path):
    (tmp_path / "numconv.json").write_text(
        json.dumps({"image_data_format": "channels_first", "floatx": "float64"})
    )
    assert run_python(PROBE, {"NUMCONV_HOME": str(tmp_path)}, tmp_path) == [
        "channels_first",
        "float64",
        "channels_first",
        "float64",
        "channels_first",
    ]


@pytest.mark.slow
def test_broken_config_entries_keep_the_built_in_defaults(tmp_path):
    (tmp_path / "numconv.json").write_text(json.dumps({"image_data_format": "NHWC", "floatx": 3}))
    assert run_python(PROBE, {"NUMCONV_HOME": str(tmp_path)}, tmp_path)[:2] == [
        "channels_last",
        "float32",
    ]
    (tmp_path / "numconv.json").write_text("{not json")
    assert run_python(PROBE, {"NUMCONV_HOME": str(tmp_path)}, tmp_path)[:2] == [
        "channels_last",
        "float32",
    ]


@pytest.mark.slow
def test_importing_numconv_writes_no_config_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    numconv_home = tmp_path / "numconv_home"  # does not exist; must still not exist afterwards
    code = PROBE + "numconv.config.set_image_data_format('channels_first')\n"
    run_python(code, {"HOME": str(home), "NUMCONV_HOME": str(numconv_home)}, tmp_path)
    assert not numconv_home.exists()
    run_python(code, {"HOME": str(home)}, tmp_path)  # the default folder ~/.numconv
    assert not (home / ".numconv").exists()


def test_setters_change_later_layers(restore_config):
    numconv.config.set_image_data_format("channels_first")
    assert numconv.config.image_data_format() == "channels_first"
    layer = numconv.layers.Conv2D(2, 3)
    assert layer.data_format == "channels_first"
    numconv.config.set_image_data_format("channels_last")
    assert layer.data_format == "channels_first"  # fixed at construction
    numconv.config.set_floatx("float64")
    assert numconv.layers.Dense(2).dtype == "float64"
    y = numconv.layers.Dense(2)(np.ones((1, 3), np.float32))
    assert y.dtype == np.float64


@pytest.mark.parametrize("value", ["NHWC", "channels", None, 3])
def test_set_image_data_format_rejects_unknown_values(value, restore_config):
    with pytest.raises(ValueError, match=f"data_format={value!r}"):
        numconv.config.set_image_data_format(value)
    assert numconv.config.image_data_format() in ("channels_last", "channels_first")


@pytest.mark.parametrize("value", ["float128", "int32", None])
def test_set_floatx_rejects_unknown_values(value, restore_config):
    with pytest.raises(ValueError, match=f"floatx={value!r}"):
        numconv.config.set_floatx(value)
