"""Moving weights in and out of layers and models: lists of arrays and .npz files.

Everything is checked before anything is assigned, so a failed call leaves
the weights unchanged.  ``owner`` is how messages name the caller, e.g.
``"layer 'conv2d'"`` or ``"model 'sequential'"``.
"""

import os

import numpy as np

from .autograd.tensor import Tensor, as_array


def weight_list(weights, what):
    """``weights`` as a list; TypeError naming it when it is not a sequence of arrays."""
    if weights is None or isinstance(weights, (str, bytes, np.ndarray, Tensor)) or \
            not hasattr(weights, "__iter__"):
        raise TypeError(f"{what} expects a list of arrays; received weights={weights!r:.80}")
    return list(weights)


def numeric_weight(value, label):
    """``value`` as an ndarray of real numbers; TypeError naming the weight otherwise."""
    if value is None:
        raise TypeError(f"weights must be numeric arrays; received None for weight {label!r}")
    try:
        array = np.asarray(as_array(value))
    except (TypeError, ValueError):
        raise TypeError(
            f"weights must be numeric arrays; received {value!r:.80} for weight {label!r}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"weights must be numeric arrays; received an array of dtype {array.dtype} "
            f"for weight {label!r}"
        )
    return array


def shape_or_none(value):
    try:
        return tuple(np.shape(as_array(value)))
    except (TypeError, ValueError):
        return None


def assign_weights(owner, variables, weights):
    """``set_weights``: assign ``weights`` to ``variables`` in order, all or nothing."""
    weights = weight_list(weights, f"set_weights of {owner}")
    expected = [tuple(variable.shape) for variable in variables]
    if len(weights) != len(variables):
        received = [shape_or_none(value) for value in weights]
        raise ValueError(
            f"{owner} expects {len(variables)} weight arrays with shapes {expected}; "
            f"received {len(weights)} arrays with shapes {received}"
        )
    arrays = [numeric_weight(value, variable.name) for variable, value in zip(variables, weights)]
    for variable, array in zip(variables, arrays):
        if array.shape != tuple(variable.shape):
            raise ValueError(
                f"{owner} weight {variable.name!r} has shape {tuple(variable.shape)} but the "
                f"provided array has shape {array.shape}; expected shapes {expected}, "
                f"received shapes {[array.shape for array in arrays]}"
            )
    for variable, array in zip(variables, arrays):
        variable.assign(array)


def load_npz(path, owner):
    """The arrays of an .npz weights file as a dict; ValueError naming the file if unreadable."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive of named arrays")
        with archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(
            f"cannot load weights of {owner} from {path!r}: not a readable .npz file ({error})"
        ) from error


def save_named(path, named_variables):
    """Write ``(key, variable)`` pairs to an .npz file at exactly ``path``."""
    with open(path, "wb") as handle:
        np.savez(handle, **{key: variable.numpy() for key, variable in named_variables})


def load_named(owner, path, named_variables):
    """Assign the arrays stored under each key of ``(key, variable)`` pairs, all or nothing."""
    stored = load_npz(path, owner)
    problems = []
    for key, variable in named_variables:
        if key not in stored:
            problems.append(f"{key!r} is missing (expected shape {tuple(variable.shape)})")
        elif stored[key].shape != tuple(variable.shape):
            problems.append(
                f"{key!r} has shape {stored[key].shape} (expected shape {tuple(variable.shape)})"
            )
    if problems:
        raise ValueError(
            f"cannot load weights of {owner} from {path!r}: " + "; ".join(problems)
            + f"; the file holds {sorted(stored)}"
        )
    arrays = [numeric_weight(stored[key], f"{key} in {path}") for key, _ in named_variables]
    for (_, variable), array in zip(named_variables, arrays):
        variable.assign(array)


def file_path(path, name):
    """``os.fspath(path)``; TypeError naming the argument for anything else."""
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{name} must be a file path; received {name}={path!r:.80}") from None
