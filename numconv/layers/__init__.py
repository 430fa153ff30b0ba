"""Keras-style layers: Conv2D and the layers needed to train small models."""

from .base import Layer
from .conv import Conv2D, Convolution2D
from .core import Activation, Dense, Dropout, Flatten, ReLU, Reshape
from .pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)

# Keras's short aliases.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "Conv2D",
    "Convolution2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
]
