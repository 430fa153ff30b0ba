"""The ``tf.compat.v1`` subset numconv provides: ``layers.Conv2D``."""

from . import layers

__all__ = ["layers"]
