"""Compatibility namespaces for code written against older TensorFlow APIs."""

from . import v1

__all__ = ["v1"]
