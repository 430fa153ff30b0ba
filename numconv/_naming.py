"""Default object names as Keras makes them: snake_case class names, numbered when reused."""

import itertools
import re
from collections import defaultdict

_counters = defaultdict(itertools.count)


def snake_case(class_name):
    """``"MaxPooling2D"`` -> ``"max_pooling2d"``, ``"MeanSquaredError"`` -> ``"mean_squared_error"``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """``base`` the first time, then ``base_1``, ``base_2``, ... (per process)."""
    count = next(_counters[base])
    return base if count == 0 else f"{base}_{count}"
