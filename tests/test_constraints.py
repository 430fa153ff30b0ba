"""numconv.constraints: closed forms, and a transcription of tf.keras's radial pad loop."""

import math

import numpy as np
import pytest

from numconv import config, constraints
from numconv.autograd.tensor import Tensor, Variable

EPSILON = 1e-7

WEIGHT = np.random.default_rng(0).normal(scale=2.0, size=(6, 5))
KERNEL = np.random.default_rng(1).normal(size=(3, 3, 4, 8))


def _slices(weight, axes):
    """Yield (index tuple, 1-D slice) for every slice over ``axes`` of ``weight``."""
    other = [d for d in range(weight.ndim) if d not in axes]
    moved = np.moveaxis(weight, other, list(range(len(other))))
    for index in np.ndindex(*moved.shape[: len(other)]):
        yield index, moved[index].ravel()


def _ref_rescale(weight, axes, desired_of_norm):
    """Each slice over ``axes`` times desired(norm) / (eps + norm), slice by slice."""
    other = [d for d in range(weight.ndim) if d not in axes]
    result = np.moveaxis(np.array(weight, dtype=np.float64), other, list(range(len(other)))).copy()
    for index, values in _slices(weight, axes):
        norm = math.sqrt(math.fsum(v * v for v in values))
        result[index] = result[index] * (desired_of_norm(norm) / (EPSILON + norm))
    return np.moveaxis(result, list(range(len(other))), other)


# -- norm constraints ---------------------------------------------------------------------

@pytest.mark.parametrize("axis, axes", [(0, (0,)), (1, (1,)), (-1, (1,))])
def test_max_norm_matches_closed_form(axis, axes):
    result = constraints.MaxNorm(max_value=2.5, axis=axis)(WEIGHT)
    expected = _ref_rescale(WEIGHT, axes, lambda n: min(n, 2.5))
    np.testing.assert_allclose(result, expected, rtol=1e-13)
    for _, values in _slices(result, axes):
        assert np.linalg.norm(values) <= 2.5


def test_max_norm_over_a_conv_kernel_bounds_each_filter():
    result = constraints.MaxNorm(max_value=1.0, axis=[0, 1, 2])(KERNEL)
    norms = np.sqrt(np.sum(result**2, axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
    np.testing.assert_allclose(result, _ref_rescale(KERNEL, (0, 1, 2), lambda n: min(n, 1.0)),
                               rtol=1e-13)


def test_max_norm_leaves_short_columns_nearly_unchanged():
    short = np.array([[0.3, 0.0], [0.4, 0.0]])
    result = constraints.get("max_norm")(short)
    np.testing.assert_allclose(result[:, 0], short[:, 0] * 0.5 / (0.5 + EPSILON), rtol=1e-15)
    np.testing.assert_array_equal(result[:, 1], [0.0, 0.0])


@pytest.mark.parametrize("rate", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("axis, axes", [(0, (0,)), ((0, 1, 2), (0, 1, 2))])
def test_min_max_norm_matches_closed_form(rate, axis, axes):
    weight = KERNEL if len(axes) == 3 else WEIGHT
    constraint = constraints.MinMaxNorm(min_value=1.5, max_value=2.5, rate=rate, axis=axis)
    result = constraint(weight)

    def desired(norm):
        return rate * min(max(norm, 1.5), 2.5) + (1.0 - rate) * norm

    np.testing.assert_allclose(result, _ref_rescale(weight, axes, desired), rtol=1e-13)
    if rate == 1.0:
        for _, values in _slices(result, axes):
            assert 1.5 - 1e-6 <= np.linalg.norm(values) <= 2.5


def test_min_max_norm_defaults_bound_norms_by_one():
    result = constraints.get("min_max_norm")(WEIGHT)
    assert np.all(np.linalg.norm(result, axis=0) <= 1.0)


@pytest.mark.parametrize("axis, axes", [(0, (0,)), (1, (1,)), ((0, 1, 2), (0, 1, 2))])
def test_unit_norm(axis, axes):
    weight = KERNEL if len(axes) == 3 else WEIGHT
    result = constraints.UnitNorm(axis=axis)(weight)
    np.testing.assert_allclose(result, _ref_rescale(weight, axes, lambda n: 1.0), rtol=1e-13)
    for _, values in _slices(result, axes):
        np.testing.assert_allclose(np.linalg.norm(values), 1.0, rtol=1e-6)


def test_non_neg():
    result = constraints.NonNeg()(WEIGHT)
    expected = np.array([[v if v >= 0 else 0.0 for v in row] for row in WEIGHT])
    np.testing.assert_array_equal(result, expected)


# -- radial constraint ------------------------------------------------------------------

def _ref_radial_slice(kernel):
    """tf.keras 2's RadialConstraint on one (K, K) slice, transcribed as a pad loop."""
    size = kernel.shape[0]
    start = size // 2
    if size % 2:
        result = kernel[start - 1:start, start - 1:start] if size > 1 else kernel
        index = 0
    else:
        result = np.full((2, 2), kernel[start - 1, start - 1])
        index = 1
    while index < start:
        result = np.pad(result, 1, constant_values=kernel[start + index, start + index])
        index += 1
    return result


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
def test_radial_constraint_matches_tf_keras(size):
    kernel = np.random.default_rng(size).normal(size=(size, size, 2, 3))
    result = constraints.RadialConstraint()(kernel)
    assert result.shape == kernel.shape
    for c in range(2):
        for f in range(3):
            np.testing.assert_array_equal(result[:, :, c, f], _ref_radial_slice(kernel[:, :, c, f]))
            # tf.keras's own test: ceil(K / 2) distinct values per slice, constant down a border.
            assert len(set(result[:, :, c, f].ravel())) == math.ceil(size / 2)
            assert np.all(result[:, 0, c, f] == result[0, 0, c, f])


def test_radial_constraint_on_the_documented_four_by_four_example():
    kernel = np.arange(16.0).reshape(4, 4, 1, 1)
    v11, v33 = 5.0, 15.0
    ring = np.array([[v33] * 4, [v33, v11, v11, v33], [v33, v11, v11, v33], [v33] * 4])
    np.testing.assert_array_equal(constraints.get("radial_constraint")(kernel)[:, :, 0, 0], ring)


# -- dtypes and input kinds ---------------------------------------------------------------

ALL = [constraints.MaxNorm(1.0), constraints.MinMaxNorm(0.5, 1.5), constraints.NonNeg(),
       constraints.UnitNorm(), constraints.RadialConstraint()]


@pytest.mark.parametrize("constraint", ALL, ids=lambda c: type(c).__name__)
def test_dtype_shape_and_input_kinds(constraint):
    expected = constraint(KERNEL)
    assert isinstance(expected, np.ndarray) and expected.shape == KERNEL.shape
    assert expected.dtype == np.float64
    for weight in (Tensor(KERNEL), Variable(KERNEL), KERNEL.tolist()):
        result = constraint(weight)
        assert isinstance(result, np.ndarray)
        np.testing.assert_allclose(result, expected, rtol=1e-14)
    for dtype, rtol in ((np.float32, 1e-6), (np.float16, 2e-3)):
        result = constraint(KERNEL.astype(dtype))
        assert result.dtype == dtype
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol)
    assert constraint(np.ones((3, 3, 1, 1), dtype=np.int64)).dtype == np.dtype(config.floatx())


@pytest.mark.parametrize("constraint", ALL, ids=lambda c: type(c).__name__)
def test_input_is_not_modified(constraint):
    weight = KERNEL.copy()
    variable = Variable(weight)
    constraint(weight)
    constraint(variable)
    np.testing.assert_array_equal(weight, KERNEL)
    np.testing.assert_array_equal(variable.numpy(), KERNEL)


def test_float16_norms_do_not_overflow():
    weight = np.full((4, 2), 300.0, dtype=np.float16)  # 300**2 overflows float16
    result = constraints.UnitNorm()(weight)
    np.testing.assert_allclose(result.astype(np.float64), 0.5, rtol=1e-3)


# -- registry and configs -----------------------------------------------------------------

NAMES = {"max_norm": "MaxNorm", "min_max_norm": "MinMaxNorm", "non_neg": "NonNeg",
         "unit_norm": "UnitNorm", "radial_constraint": "RadialConstraint"}


@pytest.mark.parametrize("snake, class_name", sorted(NAMES.items()))
def test_names_resolve(snake, class_name):
    cls = getattr(constraints, class_name)
    assert isinstance(constraints.get(snake), cls)
    assert isinstance(constraints.get(class_name), cls)
    assert getattr(constraints, snake) is cls


def test_keras_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                     "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}
    assert constraints.RadialConstraint().get_config() == {}


@pytest.mark.parametrize(
    "constraint",
    [constraints.MaxNorm(3.0, axis=[0, 1, 2]), constraints.MinMaxNorm(0.2, 0.9, 0.5, axis=(0, 1)),
     constraints.UnitNorm(axis=-1), constraints.NonNeg(), constraints.RadialConstraint()],
    ids=lambda c: type(c).__name__,
)
def test_config_round_trip(constraint):
    serialized = constraints.serialize(constraint)
    settings = constraint.get_config()
    assert serialized == {"class_name": type(constraint).__name__, "config": settings}
    restored = constraints.deserialize(serialized)
    assert type(restored) is type(constraint)
    assert restored.get_config() == constraint.get_config()
    assert type(constraint).from_config(settings).get_config() == settings
    np.testing.assert_array_equal(restored(KERNEL), constraint(KERNEL))


def test_get_passes_instances_callables_and_none_through():
    constraint = constraints.NonNeg()
    assert constraints.get(constraint) is constraint
    assert constraints.get(None) is None
    assert constraints.get(np.abs) is np.abs


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'maxnorm2'.*valid names are:.*\bmax_norm\b"):
        constraints.get("maxnorm2")


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: constraints.MaxNorm(max_value=-1), ValueError, r"max_value=-1"),
        (lambda: constraints.MaxNorm(max_value="2"), TypeError, r"max_value='2'"),
        (lambda: constraints.MaxNorm(max_value=float("nan")), ValueError, r"max_value=nan"),
        (lambda: constraints.MaxNorm(axis=1.0), TypeError, r"axis=1\.0"),
        (lambda: constraints.UnitNorm(axis="0"), TypeError, r"axis='0'"),
        (lambda: constraints.UnitNorm(axis=()), TypeError, r"axis=\(\)"),
        (lambda: constraints.MinMaxNorm(min_value=2.0, max_value=1.0), ValueError,
         r"min_value=2\.0, max_value=1\.0"),
        (lambda: constraints.MinMaxNorm(min_value=-0.5), ValueError, r"min_value=-0\.5"),
        (lambda: constraints.MinMaxNorm(rate=-1.0), ValueError, r"rate=-1\.0"),
        (lambda: constraints.MinMaxNorm(rate=float("inf")), ValueError, r"rate=inf"),
    ],
)
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_weights():
    with pytest.raises(ValueError, match=r"shape \(6, 5\).*axis=2"):
        constraints.MaxNorm(axis=2)(WEIGHT)
    with pytest.raises(ValueError, match=r"axis=\(0, -2\)"):
        constraints.UnitNorm(axis=(0, -2))(WEIGHT)
    with pytest.raises(ValueError, match=r"4-D.*shape \(6, 5\)"):
        constraints.RadialConstraint()(WEIGHT)
    with pytest.raises(ValueError, match=r"square.*shape \(3, 5, 1, 1\)"):
        constraints.RadialConstraint()(np.ones((3, 5, 1, 1)))
    with pytest.raises(TypeError, match=r"weight.*dtype complex128"):
        constraints.NonNeg()(np.array([1j]))
