"""GradientTape, Tensor and Variable: what is recorded, what is differentiated,
and how the results come back."""

import collections
import threading

import numpy as np
import pytest

from numconv import GradientTape, Tensor, Variable, constant, convert_to_tensor, stop_gradient
from numconv.autograd.tensor import record


class Spy:
    """An op ``x * y`` built on record() that logs every call of its backward."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, y):
        a, b = np.asarray(x), np.asarray(y)

        def backward(grad, needs):
            self.calls.append(needs)
            return (grad * b if needs[0] else None, grad * a if needs[1] else None)

        return record(a * b, (x, y), backward)


# -- watching -----------------------------------------------------------------------
def test_trainable_variables_read_inside_are_watched_automatically():
    x = Variable(3.0)
    with GradientTape() as tape:
        y = x * x
    assert float(tape.gradient(y, x)) == 6.0
    assert tape.watched_variables() == ()  # a used non-persistent tape forgets


def test_watched_variables_lists_what_was_read():
    w, v, frozen = Variable(1.0), Variable(2.0), Variable(3.0, trainable=False)
    with GradientTape(persistent=True) as tape:
        _ = w * frozen + v
    assert tape.watched_variables() == (w, v)


def test_watch_accessed_variables_false_needs_explicit_watch():
    x, z = Variable(3.0), Variable(5.0)
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(z)
        y = x * z
    grad_x, grad_z = tape.gradient(y, [x, z])
    assert grad_x is None
    assert float(grad_z) == 3.0


def test_watch_a_tensor_and_structures_of_tensors():
    a, b, c = constant(2.0), constant(3.0), constant(4.0)
    with GradientTape() as tape:
        tape.watch([a, {"b": b}])
        y = a * b * c
    grads = tape.gradient(y, {"a": a, "b": b, "c": c})
    assert float(grads["a"]) == 12.0
    assert float(grads["b"]) == 8.0
    assert grads["c"] is None  # never watched: no gradient, as in TF


def test_watch_refuses_non_tensors():
    with GradientTape() as tape:
        with pytest.raises(TypeError, match=r"tensor=1\.0"):
            tape.watch([[1.0]])
        with pytest.raises(TypeError, match="tensor=3"):
            tape.watch(3)


def test_non_trainable_variables_are_not_watched_automatically():
    frozen = Variable(2.0, trainable=False)
    with GradientTape() as tape:
        y = frozen * frozen
    assert tape.gradient(y, frozen) is None
    with GradientTape() as tape:
        tape.watch(frozen)
        y = frozen * frozen
    assert float(tape.gradient(y, frozen)) == 4.0


def test_unwatched_constant_source_gets_none_and_no_backward_work():
    spy = Spy()
    x, c = Variable(2.0), constant(5.0)
    with GradientTape() as tape:
        y = spy(x, c)
    grad_x, grad_c = tape.gradient(y, [x, c])
    assert float(grad_x) == 5.0 and grad_c is None
    assert spy.calls == [(True, False)]


# -- persistence ---------------------------------------------------------------------
def test_non_persistent_tape_allows_one_gradient_call():
    x = Variable(1.0)
    with GradientTape() as tape:
        y = x * 2.0
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, x)


def test_persistent_tape_allows_several_gradient_calls():
    x = Variable(3.0)
    with GradientTape(persistent=True) as tape:
        y = x * x
        z = y * y
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, x)) == 4 * 27.0
    assert float(tape.gradient(z, y)) == 18.0
    assert float(tape.gradient(y, x)) == 6.0


def test_failed_call_with_bad_arguments_leaves_a_non_persistent_tape_usable():
    x = Variable([1.0, 2.0])
    with GradientTape() as tape:
        y = x * x
    with pytest.raises(ValueError, match=r"shape \(2,\); received shape \(3,\)"):
        tape.gradient(y, x, output_gradients=np.ones(3))
    with pytest.raises(TypeError, match="source=1.0"):
        tape.gradient(y, [x, 1.0])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0])


def test_target_must_be_a_tensor():
    with GradientTape() as tape:
        pass
    with pytest.raises(TypeError, match="target='loss'"):
        tape.gradient("loss", Variable(1.0))
    with pytest.raises(TypeError, match="target=3"):
        tape.gradient([constant(1.0), 3], Variable(1.0))


def test_a_tape_cannot_be_entered_twice():
    tape = GradientTape()
    with tape:
        with pytest.raises(RuntimeError, match="already recording"):
            tape.__enter__()


# -- results -------------------------------------------------------------------------
def test_none_for_a_source_the_target_does_not_depend_on():
    x, unused = Variable(1.0), Variable(2.0)
    with GradientTape() as tape:
        y = x * 4.0
        _ = unused * 3.0
    assert tape.gradient(y, [x, unused])[1] is None


def test_results_have_the_structure_of_sources():
    a, b = Variable(1.0), Variable(2.0)
    Pair = collections.namedtuple("Pair", "first second")
    with GradientTape(persistent=True) as tape:
        y = a * b
    assert isinstance(tape.gradient(y, a), Tensor)
    as_list = tape.gradient(y, [a, b])
    assert isinstance(as_list, list) and [float(g) for g in as_list] == [2.0, 1.0]
    as_tuple = tape.gradient(y, (a, b))
    assert isinstance(as_tuple, tuple) and [float(g) for g in as_tuple] == [2.0, 1.0]
    as_dict = tape.gradient(y, {"b": b, "a": a})
    assert list(as_dict) == ["b", "a"] and float(as_dict["b"]) == 1.0
    nested = tape.gradient(y, {"pair": Pair(a, b), "list": [b]})
    assert isinstance(nested["pair"], Pair) and float(nested["pair"].second) == 1.0
    assert float(nested["list"][0]) == 1.0


def test_non_scalar_target_differentiates_its_sum():
    values = np.array([[1.0, -2.0], [3.0, 0.5]])
    x = Variable(values)
    with GradientTape() as tape:
        y = x * x
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), 2 * values)


def test_output_gradients_weight_the_target():
    values, weights = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    x = Variable(values)
    with GradientTape() as tape:
        y = x * x
    grad = tape.gradient(y, x, output_gradients=weights)
    np.testing.assert_array_equal(grad.numpy(), 2 * values * weights)


def test_structured_target_sums_its_parts():
    x = Variable(2.0)
    with GradientTape(persistent=True) as tape:
        y = x * x
        z = y * x
    assert float(tape.gradient([y, z], x)) == 4.0 + 12.0
    assert float(tape.gradient({"a": y, "b": z}, x, output_gradients={"a": 2.0, "b": 0.0})) == 8.0
    with pytest.raises(ValueError, match="1 entries for 2 targets"):
        tape.gradient([y, z], x, output_gradients=[1.0])


def test_gradient_of_a_source_with_respect_to_itself_is_ones():
    x = Variable([1.0, 2.0])
    with GradientTape() as tape:
        tape.watch(x)
    np.testing.assert_array_equal(tape.gradient(x, x).numpy(), [1.0, 1.0])


def test_gradients_have_the_source_dtype():
    x = Variable(np.array([1.0, 2.0], dtype=np.float32))
    with GradientTape() as tape:
        y = x * np.float64(3.0)  # a NumPy float64 scalar promotes the product to float64
    assert y.dtype == np.float64
    grad = tape.gradient(y, x)
    assert grad.dtype == np.float32


def test_a_tensor_used_twice_accumulates_both_paths():
    x = Variable(3.0)
    with GradientTape() as tape:
        y = x * x + x * 2.0
    assert float(tape.gradient(y, x)) == 8.0


# -- stop_gradient, recording scope ---------------------------------------------------------
def test_stop_gradient_blocks_the_path():
    x = Variable(3.0)
    with GradientTape() as tape:
        y = x * stop_gradient(x)
    assert float(tape.gradient(y, x)) == 3.0
    with GradientTape() as tape:
        y = stop_gradient(x * x)
    assert tape.gradient(y, x) is None
    assert isinstance(stop_gradient(np.ones(2)), Tensor)


def test_nothing_is_recorded_outside_a_tape():
    spy = Spy()
    x = Variable(2.0)
    before = spy(x, x)  # computed before the tape exists
    with GradientTape(persistent=True) as tape:
        inside = spy(x, 3.0)
    after = spy(x, 5.0)  # computed after the tape closed
    assert tape.gradient(before, x) is None
    assert tape.gradient(after, x) is None
    assert float(tape.gradient(inside, x)) == 3.0
    assert spy.calls == [(True, False)]


def test_ops_outside_any_tape_keep_no_reference():
    import gc
    import weakref

    x = Variable(np.ones(3))
    y = x * 2.0
    reference = weakref.ref(y)
    del y
    gc.collect()
    assert reference() is None


def test_other_threads_do_not_record_on_this_threads_tape():
    x = Variable(2.0)
    results = {}
    with GradientTape(persistent=True) as tape:
        worker = threading.Thread(target=lambda: results.setdefault("y", x * x))
        worker.start()
        worker.join()
        z = x * 4.0
    assert tape.gradient(results["y"], x) is None
    assert float(tape.gradient(z, x)) == 4.0


def test_nested_tapes_both_record():
    x = Variable(3.0)
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = x * x
        z = y * 2.0
    assert float(inner.gradient(y, x)) == 6.0
    assert float(outer.gradient(z, x)) == 12.0


def test_deep_graph_of_ten_thousand_ops():
    x = Variable(1.0)
    with GradientTape() as tape:
        y = x
        for _ in range(10_000):
            y = y * 1.0001
    assert float(tape.gradient(y, x)) == pytest.approx(1.0001 ** 10_000, rel=1e-9)


# -- only what is needed is computed --------------------------------------------------------
def test_backward_asks_only_for_needed_inputs():
    first, second, unrelated = Spy(), Spy(), Spy()
    data, w1, w2 = constant(2.0), Variable(3.0), Variable(5.0)
    with GradientTape() as tape:
        hidden = first(data, w1)  # the input data is a constant: its gradient is never needed
        y = second(hidden, w2)
        _ = unrelated(w1, w2)  # not on the path to y
    grads = tape.gradient(y, [w1, w2])
    assert [float(g) for g in grads] == [10.0, 6.0]
    assert first.calls == [(False, True)]
    assert second.calls == [(True, True)]
    assert unrelated.calls == []


def test_backward_skips_branches_that_do_not_reach_a_source():
    spy_a, spy_b = Spy(), Spy()
    w, v = Variable(2.0), Variable(3.0)
    with GradientTape() as tape:
        y = spy_a(w, 4.0) + spy_b(v, 5.0)
    assert float(tape.gradient(y, w)) == 4.0
    assert spy_a.calls == [(True, False)]
    assert spy_b.calls == []  # v is watched but not asked for


def test_backward_is_called_once_per_op_per_gradient_call():
    spy = Spy()
    x = Variable(2.0)
    with GradientTape(persistent=True) as tape:
        y = spy(x, x)
        z = y + y
    tape.gradient(z, x)
    tape.gradient(y, x)
    assert spy.calls == [(True, True), (True, True)]


# -- Tensor and Variable -------------------------------------------------------------------
def test_tensor_wraps_an_array():
    values = np.arange(6.0).reshape(2, 3)
    t = constant(values)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(t), values)
    np.testing.assert_array_equal(t.numpy(), values)
    values[0, 0] = 99.0  # constant copies
    assert t.numpy()[0, 0] == 0.0
    assert convert_to_tensor(t) is t
    assert convert_to_tensor(t, dtype="float32").dtype == np.float32
    assert convert_to_tensor([1, 2]).dtype == np.array([1, 2]).dtype
    with pytest.raises(TypeError, match="value=None"):
        convert_to_tensor(None)
    with pytest.raises(TypeError, match="dtype <U"):
        constant(["a"])


def test_variable_assignments():
    v = Variable(np.array([1.0, 2.0], dtype=np.float32), name="v")
    snapshot = v.numpy()
    read = v.value()
    v.assign([3.0, 4.0])
    v.assign_add(np.array([1.0, 1.0]))
    v.assign_sub([0.5, 0.5])
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])
    assert v.dtype == np.float32
    np.testing.assert_array_equal(snapshot, [1.0, 2.0])
    np.testing.assert_array_equal(read.numpy(), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(3,\).*'v'.*shape \(2,\)"):
        v.assign([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="initial_value=None"):
        Variable(None)


def test_variable_value_is_recorded_and_snapshots():
    v = Variable([1.0, 2.0])
    with GradientTape() as tape:
        read = v.value()
        y = read * read
    v.assign([10.0, 10.0])
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [2.0, 4.0])
