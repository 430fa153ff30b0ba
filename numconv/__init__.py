"""numconv: Keras-exact 2-D convolution on the CPU with NumPy and Numba.

Public names are loaded on first access, so ``import numconv`` stays cheap and
has no side effects (no file written, no Numba setting changed).
"""

import importlib

__version__ = "0.1.0"

# Submodules reachable as attributes: numconv.nn, numconv.layers, ...
_SUBMODULES = (
    "activations", "autograd", "callbacks", "compat", "config", "constraints", "initializers",
    "kernels", "layers", "losses", "metrics", "models", "nn", "ops", "optimizers",
    "regularizers", "runtime",
)

# Top-level names -> the module that defines them.
_NAMES = {
    "Tensor": "autograd.tensor",
    "Variable": "autograd.tensor",
    "constant": "autograd.tensor",
    "convert_to_tensor": "autograd.tensor",
    "GradientTape": "autograd.tape",
    "stop_gradient": "autograd.tape",
    "Conv2D": "layers",
    "Convolution2D": "layers",
    "Sequential": "models",
    "conv2d": "nn",
    "conv2d_grads": "nn",
    "warmup": "_warmup",
    "set_num_threads": "runtime",
    "get_num_threads": "runtime",
    "num_threads": "runtime",
    "show_config": "runtime",
}

__all__ = sorted(set(_SUBMODULES) | set(_NAMES))


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        module = importlib.import_module(f"{__name__}.{_NAMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'numconv' has no attribute {name!r}")


def __dir__():
    return __all__
