"""Process-wide settings: image data format, default float type, cache switch.

The cache switch is the ``NUMCONV_CACHE`` environment variable, read by
``numconv.kernels.jit`` because kernels import nothing else of numconv.

Defaults come from ``$NUMCONV_HOME/numconv.json`` (``~/.numconv`` when
``NUMCONV_HOME`` is unset) when that file exists.  Reading the settings never
writes a file.
"""

import json
import os

from .kernels.jit import CACHE_ENV_VAR, cache_enabled  # noqa: F401  (re-exported)

_DATA_FORMATS = ("channels_last", "channels_first")
_FLOAT_TYPES = ("float16", "float32", "float64")


def numconv_home():
    """Folder holding ``numconv.json``: ``$NUMCONV_HOME`` or ``~/.numconv``."""
    return os.environ.get("NUMCONV_HOME") or os.path.join(os.path.expanduser("~"), ".numconv")


def _read_config_file():
    path = os.path.join(numconv_home(), "numconv.json")
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _check_data_format(value):
    if not isinstance(value, str) or value.lower() not in _DATA_FORMATS:
        raise ValueError(
            f"data_format must be one of {_DATA_FORMATS}; received data_format={value!r}"
        )
    return value.lower()


def _check_floatx(value):
    if not isinstance(value, str) or value not in _FLOAT_TYPES:
        raise ValueError(f"floatx must be one of {_FLOAT_TYPES}; received floatx={value!r}")
    return value


def _initial_settings():
    file_settings = _read_config_file()
    settings = {"image_data_format": "channels_last", "floatx": "float32"}
    for key, check in (("image_data_format", _check_data_format), ("floatx", _check_floatx)):
        try:
            settings[key] = check(file_settings[key])
        except (KeyError, ValueError):
            pass  # a missing or broken entry keeps the built-in default
    return settings


_settings = _initial_settings()


def image_data_format():
    """The default ``data_format`` of layers: "channels_last" or "channels_first"."""
    return _settings["image_data_format"]


def set_image_data_format(data_format):
    """Set the default ``data_format`` of layers built after this call."""
    _settings["image_data_format"] = _check_data_format(data_format)


def floatx():
    """The default dtype name of layers and weights: "float32" unless changed."""
    return _settings["floatx"]


def set_floatx(value):
    """Set the default dtype name ("float16", "float32" or "float64")."""
    _settings["floatx"] = _check_floatx(value)
