"""Shared test settings: bounded hypothesis runs without deadlines (first calls compile)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "numconv",
    max_examples=int(os.environ.get("NUMCONV_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("numconv")
