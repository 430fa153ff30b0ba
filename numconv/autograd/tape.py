"""GradientTape: records differentiable ops and runs them backwards.

Each thread has its own stack of active tapes.  An op is recorded on an
active tape only when one of its inputs is tracked by that tape: watched
(explicitly, or automatically for trainable Variables) or produced by an op
the tape recorded.  Nothing is recorded outside a tape.

Backward is a loop over the recorded ops in reverse order, never recursion,
so graphs of any depth work.  It skips ops that do not lead from a source to
the target and asks each op only for the input gradients that are needed.
"""

import threading

import numpy as np


class _ActiveTapes(threading.local):
    def __init__(self):
        self.stack = []


_active = _ActiveTapes()


def record_on_active_tapes(output, inputs, backward):
    """Record ``output = op(*inputs)`` on each active tape tracking an input."""
    for tape in _active.stack:
        if tape._recording and tape._tracks_any(inputs):
            tape._ops.append((output, inputs, backward))
            tape._produced.add(id(output))


def _flatten(structure):
    """Leaves of nested lists/tuples/dicts, and a function rebuilding the structure."""
    if isinstance(structure, dict):
        keys = list(structure)
        parts = [_flatten(structure[key]) for key in keys]

        def rebuild(leaves):
            result, start = {}, 0
            for key, (flat, build) in zip(keys, parts):
                result[key] = build(leaves[start:start + len(flat)])
                start += len(flat)
            return result

        return [leaf for flat, _ in parts for leaf in flat], rebuild
    if isinstance(structure, (list, tuple)):
        parts = [_flatten(item) for item in structure]
        kind = type(structure)

        def rebuild(leaves):
            items, start = [], 0
            for flat, build in parts:
                items.append(build(leaves[start:start + len(flat)]))
                start += len(flat)
            return kind(items) if kind in (list, tuple) else kind(*items)

        return [leaf for flat, _ in parts for leaf in flat], rebuild
    return [structure], lambda leaves: leaves[0]


class GradientTape:
    """Record operations for automatic differentiation, as ``tf.GradientTape``.

    Parameters
    ----------
    persistent : bool
        Allow several ``gradient`` calls; a non-persistent tape allows one.
    watch_accessed_variables : bool
        Watch every trainable Variable an op reads while the tape is active.

    Examples
    --------
    >>> x = numconv.Variable(3.0)
    >>> with numconv.GradientTape() as tape:
    ...     y = x * x
    >>> float(tape.gradient(y, x))
    6.0
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self._persistent = bool(persistent)
        self._watch_accessed_variables = bool(watch_accessed_variables)
        self._watched = {}  # id -> Tensor, kept alive so ids stay unique
        self._produced = set()
        self._ops = []
        self._recording = False
        self._used = False

    # -- context management -----------------------------------------------------
    def __enter__(self):
        if self._recording:
            raise RuntimeError("this GradientTape is already recording")
        _active.stack.append(self)
        self._recording = True
        return self

    def __exit__(self, *exc_info):
        self._recording = False
        if self in _active.stack:
            _active.stack.remove(self)
        return False

    # -- tracking ---------------------------------------------------------------
    def watch(self, tensor):
        """Track ``tensor`` (or every Tensor in a list/tuple/dict of them)."""
        from .tensor import Tensor

        leaves, _ = _flatten(tensor)
        for leaf in leaves:
            if not isinstance(leaf, Tensor):
                raise TypeError(
                    f"GradientTape.watch expects Tensors or Variables; received tensor={leaf!r}"
                )
            self._watched[id(leaf)] = leaf

    def watched_variables(self):
        """The Variables this tape watches, in the order they were first watched."""
        from .tensor import Variable

        return tuple(t for t in self._watched.values() if isinstance(t, Variable))

    def _tracks_any(self, inputs):
        from .tensor import Variable

        tracked = False
        for item in inputs:
            key = id(item)
            if key in self._watched or key in self._produced:
                tracked = True
            elif (
                self._watch_accessed_variables
                and isinstance(item, Variable)
                and item.trainable
            ):
                self._watched[key] = item
                tracked = True
        return tracked

    def reset(self):
        """Forget everything recorded so far."""
        self._watched.clear()
        self._produced.clear()
        self._ops.clear()

    # -- backward ---------------------------------------------------------------
    @staticmethod
    def _seeds(target, output_gradients):
        """{id(target tensor): gradient of the sum w.r.t. it}, checked."""
        from .tensor import Tensor, as_array

        if isinstance(target, Tensor):
            targets, given = [target], [output_gradients]
        else:
            targets, _ = _flatten(target)
            if output_gradients is None:
                given = [None] * len(targets)
            else:
                given, _ = _flatten(output_gradients)
                if len(given) != len(targets):
                    raise ValueError(
                        f"output_gradients must have one entry per target; received {len(given)} "
                        f"entries for {len(targets)} targets"
                    )
        seeds = {}
        for item, gradient in zip(targets, given):
            if not isinstance(item, Tensor):
                raise TypeError(
                    f"target must be a Tensor computed under the tape; received target={item!r}"
                )
            value = as_array(item)
            if gradient is None:
                seed = np.ones_like(value)
            else:
                try:
                    seed = np.asarray(as_array(gradient))
                except (TypeError, ValueError):  # ragged nests
                    seed = np.asarray(None)
                if seed.dtype.kind not in ("biufc" if value.dtype.kind == "c" else "biuf"):
                    raise TypeError(
                        "output_gradients must hold real numbers; received "
                        f"output_gradients={gradient!r:.80} (dtype {seed.dtype})"
                    )
                seed = seed.astype(value.dtype if value.dtype.kind in "fc" else np.float32)
                if seed.shape != value.shape:
                    raise ValueError(
                        f"output_gradients must have the target's shape {value.shape}; "
                        f"received shape {seed.shape}"
                    )
            if value.dtype.kind not in "fc":
                seed = seed.astype(np.float32)
            key = id(item)
            seeds[key] = seed if key not in seeds else seeds[key] + seed
        return seeds

    def gradient(self, target, sources, output_gradients=None):
        """Gradients of ``sum(target)`` (or of ``sum(target * output_gradients)``).

        ``target`` is a Tensor or a list/tuple/dict of them (their sums are
        added); ``output_gradients`` then has the same structure.  Returns the
        gradients in the structure of ``sources``, with None for a source the
        target does not depend on or the tape does not track.
        """
        from .tensor import Tensor, as_array

        if self._used and not self._persistent:
            raise RuntimeError(
                "a non-persistent GradientTape can compute gradients only once; "
                "use GradientTape(persistent=True) to call gradient() several times"
            )
        seeds = self._seeds(target, output_gradients)
        source_list, rebuild = _flatten(sources)
        for source in source_list:
            if not isinstance(source, Tensor):
                raise TypeError(
                    f"sources must be Tensors or Variables; received source={source!r}"
                )
        self._used = True

        # Forward sweep: which recorded tensors depend on some source.  As in
        # TF, a source the tape does not track (neither watched nor computed
        # under it) gets no gradient, so nothing is computed for it.
        source_ids = {
            id(source) for source in source_list
            if id(source) in self._watched or id(source) in self._produced
        }
        depends = set(source_ids)
        for output, inputs, _ in self._ops:
            if any(id(item) in depends for item in inputs):
                depends.add(id(output))

        grads = seeds
        paused = self._recording
        self._recording = False
        try:
            for output, inputs, backward in reversed(self._ops):
                key = id(output)
                # Free gradients once used, except those the caller asked for.
                grad_output = grads.get(key) if key in source_ids else grads.pop(key, None)
                if grad_output is None:
                    continue
                needs = tuple(isinstance(item, Tensor) and id(item) in depends for item in inputs)
                if not any(needs):
                    continue
                input_grads = backward(grad_output, needs)
                for item, need, grad in zip(inputs, needs, input_grads):
                    if not need or grad is None:
                        continue
                    key = id(item)
                    grads[key] = grad if key not in grads else grads[key] + grad
        finally:
            self._recording = paused

        results = []
        for source in source_list:
            grad = grads.get(id(source)) if id(source) in source_ids else None
            if grad is not None:
                grad = np.asarray(grad)
                source_dtype = as_array(source).dtype
                if source_dtype.kind == "f" and grad.dtype != source_dtype:
                    grad = grad.astype(source_dtype)
                grad = Tensor(grad)
            results.append(grad)
        if not self._persistent:
            self.reset()
        return rebuild(results)


def stop_gradient(value):
    """``value`` as a Tensor that no tape sees through."""
    from .tensor import Tensor, as_array

    return Tensor(as_array(value))
