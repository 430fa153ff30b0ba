"""numconv.regularizers: penalties against explicit sums, gradients against finite differences."""

import math

import numpy as np
import pytest

from numconv import config, regularizers
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Tensor, Variable

from gradient_check import assert_gradients_close


def _ref_penalty(weight, l1, l2):
    """l1 * sum|w| + l2 * sum w^2 by an explicit loop over Python floats."""
    values = [float(v) for v in np.asarray(weight, dtype=np.float64).ravel()]
    return l1 * math.fsum(abs(v) for v in values) + l2 * math.fsum(v * v for v in values)


WEIGHT = np.random.default_rng(0).normal(size=(3, 3, 2, 4))

CASES = [
    (regularizers.L1(0.3), 0.3, 0.0),
    (regularizers.L2(0.2), 0.0, 0.2),
    (regularizers.L1L2(l1=0.05, l2=0.4), 0.05, 0.4),
    (regularizers.L1L2(l2=0.1), 0.0, 0.1),
    (regularizers.get("l1"), 0.01, 0.0),
    (regularizers.get("l2"), 0.0, 0.01),
    (regularizers.get("l1_l2"), 0.01, 0.01),
    (regularizers.l1_l2(), 0.01, 0.01),
    (regularizers.l1(), 0.01, 0.0),
    (regularizers.l2(0.5), 0.0, 0.5),
    (regularizers.L1L2(), 0.0, 0.0),
]
CASE_IDS = [f"{type(reg).__name__}-{l1}-{l2}" for reg, l1, l2 in CASES]


@pytest.mark.parametrize("regularizer, l1, l2", CASES, ids=CASE_IDS)
def test_value_matches_explicit_sum(regularizer, l1, l2):
    penalty = regularizer(WEIGHT)
    assert isinstance(penalty, Tensor) and penalty.shape == () and penalty.dtype == np.float64
    np.testing.assert_allclose(float(penalty), _ref_penalty(WEIGHT, l1, l2), rtol=1e-13, atol=0)


@pytest.mark.parametrize("regularizer, l1, l2", CASES, ids=CASE_IDS)
def test_gradient_matches_finite_differences(regularizer, l1, l2):
    # WEIGHT has no zeros, where |w| has its kink.
    variable = Variable(WEIGHT)
    with GradientTape() as tape:
        penalty = regularizer(variable)
    analytic = tape.gradient(penalty, variable)
    assert analytic.shape == WEIGHT.shape
    assert_gradients_close(lambda w: regularizer(w).numpy(), [WEIGHT], [analytic.numpy()],
                           rtol=1e-6, atol=1e-9)


def test_l2_has_no_one_half():
    assert float(regularizers.L2(1.0)(np.array([3.0]))) == 9.0
    variable = Variable(np.array([3.0]))
    with GradientTape() as tape:
        penalty = regularizers.L2(1.0)(variable)
    assert tape.gradient(penalty, variable).numpy()[0] == 6.0


def test_l1_gradient_at_zero_is_zero():
    variable = Variable(np.array([0.0, 2.0, -1.0]))
    with GradientTape() as tape:
        penalty = regularizers.L1(0.5)(variable)
    np.testing.assert_array_equal(tape.gradient(penalty, variable).numpy(), [0.0, 0.5, -0.5])


def test_penalty_adds_into_a_loss_on_the_tape():
    variable = Variable(np.array([[1.0, -2.0], [0.5, 3.0]]))
    with GradientTape() as tape:
        loss = regularizers.L1L2(l1=0.1, l2=0.2)(variable) * 2.0 + regularizers.L2(0.3)(variable)
    w = variable.numpy()
    expected = 2.0 * (0.1 * np.sign(w) + 0.4 * w) + 0.6 * w
    np.testing.assert_allclose(tape.gradient(loss, variable).numpy(), expected, rtol=1e-14)


def test_input_kinds_and_dtypes():
    values = [[1.0, -2.0], [3.0, 0.5]]
    expected = _ref_penalty(values, 0.01, 0.01)
    regularizer = regularizers.get("l1_l2")
    for weight in (values, np.array(values), Tensor(np.array(values)), Variable(np.array(values))):
        np.testing.assert_allclose(float(regularizer(weight)), expected, rtol=1e-7)
    float32 = Variable(np.array(values, dtype=np.float32))
    with GradientTape() as tape:
        penalty = regularizer(float32)
    assert penalty.dtype == np.float32
    assert tape.gradient(penalty, float32).dtype == np.float32
    # float16 squares of 300 overflow float16; the sum is accumulated in float32.
    half = regularizers.L2(1e-4)(np.full(100, 300.0, dtype=np.float16))
    assert half.dtype == np.float16
    np.testing.assert_allclose(float(half), 1e-4 * 100 * 300.0**2, rtol=1e-3)
    assert regularizer(np.array([1, -2])).dtype == np.dtype(config.floatx())


def test_no_penalty_is_recorded_outside_a_tape():
    penalty = regularizers.L2()(Variable(np.ones(3)))
    assert isinstance(penalty, Tensor)
    np.testing.assert_allclose(float(penalty), 0.03)


# -- registry and configs -----------------------------------------------------------------

def test_named_defaults():
    assert regularizers.get("l1").get_config() == {"l1": 0.01}
    assert regularizers.get("L1").get_config() == {"l1": 0.01}
    assert regularizers.get("l2").get_config() == {"l2": 0.01}
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.deserialize("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    # Keras's class default is no penalty at all.
    assert regularizers.get("L1L2").get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.L1(None).l1 == 0.01 and regularizers.L1L2(None, None).l2 == 0.0


@pytest.mark.parametrize("regularizer", [regularizers.L1(0.2), regularizers.L2(0.3),
                                         regularizers.L1L2(0.4, 0.5)],
                         ids=lambda reg: type(reg).__name__)
def test_config_round_trip(regularizer):
    config_dict = regularizers.serialize(regularizer)
    assert config_dict == {"class_name": type(regularizer).__name__,
                           "config": regularizer.get_config()}
    restored = regularizers.deserialize(config_dict)
    assert type(restored) is type(regularizer)
    assert restored.get_config() == regularizer.get_config()
    assert regularizers.get(config_dict).get_config() == regularizer.get_config()
    assert float(restored(WEIGHT)) == float(regularizer(WEIGHT))


def test_get_passes_instances_callables_and_none_through():
    regularizer = regularizers.L2()
    assert regularizers.get(regularizer) is regularizer
    assert regularizers.get(None) is None

    def custom(weight):
        return 0.0

    assert regularizers.get(custom) is custom


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'l3'.*valid names are:.*\bl1_l2\b"):
        regularizers.get("l3")


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: regularizers.L1(-0.1), ValueError, r"l1=-0\.1"),
        (lambda: regularizers.L2(float("nan")), ValueError, r"l2=nan"),
        (lambda: regularizers.L1L2(l1=0.1, l2=-1), ValueError, r"l2=-1"),
        (lambda: regularizers.L1L2(l1=float("inf")), ValueError, r"l1=inf"),
        (lambda: regularizers.L1("0.1"), TypeError, r"l1='0\.1'"),
        (lambda: regularizers.L2(True), TypeError, r"l2=True"),
        (lambda: regularizers.l1_l2(l1=-2.0), ValueError, r"l1=-2\.0"),
    ],
)
def test_bad_factors_name_argument_and_value(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_non_real_weights_are_rejected():
    with pytest.raises(TypeError, match="weight.*dtype complex128"):
        regularizers.L2()(np.array([1j]))
