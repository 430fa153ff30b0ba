"""numconv.initializers: distributions checked statistically, fans, seeds, configs, errors.

Statistical checks use a few hundred thousand samples and tolerances of five
standard errors, so a correct implementation fails with negligible probability
(and the seeds are fixed, so the outcome is deterministic anyway).
"""

import math

import numpy as np
import pytest

from numconv import config, initializers

N_SIGMA = 5.0

# Variance of a standard normal truncated to [-2, 2]: 1 - 2 * 2 * phi(2) / (Phi(2) - Phi(-2)).
_MASS_WITHIN_2 = math.erf(2.0 / math.sqrt(2.0))
TRUNCATED_VARIANCE = 1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / _MASS_WITHIN_2


def _normal_cdf(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _assert_fraction(samples_mask, probability):
    n = samples_mask.size
    standard_error = math.sqrt(probability * (1.0 - probability) / n)
    assert abs(samples_mask.mean() - probability) < N_SIGMA * standard_error


def _assert_mean_and_variance(samples, mean, variance, fourth_moment_bound):
    samples = np.asarray(samples, dtype=np.float64).ravel()
    n = samples.size
    assert abs(samples.mean() - mean) < N_SIGMA * math.sqrt(variance / n)
    # Var(X^2) <= E[(X - mean)^4] bounds the spread of the sample variance.
    assert abs(samples.var() - variance) < N_SIGMA * math.sqrt(fourth_moment_bound / n)


def _assert_uniform(samples, low, high):
    samples = np.asarray(samples, dtype=np.float64).ravel()
    width = high - low
    assert samples.min() >= low and samples.max() <= high
    # With this many samples the extremes come within 0.1% of the width of the bounds.
    assert samples.min() < low + 1e-3 * width and samples.max() > high - 1e-3 * width
    _assert_mean_and_variance(samples, (low + high) / 2, width**2 / 12, width**4 / 80)
    _assert_fraction(samples < low + width / 4, 0.25)


def _assert_normal(samples, mean, stddev):
    samples = np.asarray(samples, dtype=np.float64).ravel()
    _assert_mean_and_variance(samples, mean, stddev**2, 3 * stddev**4)
    _assert_fraction(np.abs(samples - mean) < stddev, _normal_cdf(1) - _normal_cdf(-1))
    assert np.any(np.abs(samples - mean) > 3 * stddev)


def _assert_truncated_normal(samples, mean, stddev):
    """Samples of N(mean, stddev^2) restricted to mean +- 2 stddev (redrawn, not clipped)."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    z = (samples - mean) / stddev
    assert np.all(np.abs(z) <= 2.0 + 1e-6)
    _assert_mean_and_variance(z, 0.0, TRUNCATED_VARIANCE, 3.0)
    _assert_fraction(np.abs(z) < 1.0, (_normal_cdf(1) - _normal_cdf(-1)) / _MASS_WITHIN_2)
    # Clipping instead of redrawing would pile 4.6% of the mass at the bounds.
    _assert_fraction(np.abs(z) > 1.9, 2 * (_normal_cdf(2) - _normal_cdf(1.9)) / _MASS_WITHIN_2)


# -- distributions -------------------------------------------------------------------------

def test_random_normal():
    samples = initializers.RandomNormal(mean=0.5, stddev=2.0, seed=1)((500, 600), dtype="float64")
    _assert_normal(samples, 0.5, 2.0)


def test_random_normal_defaults_are_keras():
    _assert_normal(initializers.get("random_normal")((400, 500)), 0.0, 0.05)


def test_random_uniform():
    _assert_uniform(initializers.RandomUniform(-0.3, 0.7, seed=2)((500, 600), "float64"), -0.3, 0.7)
    _assert_uniform(initializers.get("random_uniform")((500, 600)), -0.05, 0.05)


def test_truncated_normal_redraws_beyond_two_stddev():
    samples = initializers.TruncatedNormal(mean=-1.0, stddev=0.5, seed=3)((500, 600), "float64")
    _assert_truncated_normal(samples, -1.0, 0.5)
    _assert_truncated_normal(initializers.get("truncated_normal")((500, 600)), 0.0, 0.05)


def test_the_truncated_normal_constant_restores_the_variance():
    assert math.isclose(math.sqrt(TRUNCATED_VARIANCE), 0.87962566103423978, rel_tol=1e-12)


# Conv kernel (KH, KW, C_in // groups, filters): here C_in = 8 in 4 groups of 2 channels.
CONV_SHAPE = (5, 5, 2, 8000)
CONV_FAN_IN = 5 * 5 * 8 // 4
CONV_FAN_OUT = 5 * 5 * 8000


def test_compute_fans():
    assert initializers.compute_fans(CONV_SHAPE) == (CONV_FAN_IN, CONV_FAN_OUT)
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((7, 3, 5)) == (21, 35)
    assert initializers.compute_fans((20, 30)) == (20, 30)
    assert initializers.compute_fans((12,)) == (12, 12)
    assert initializers.compute_fans(()) == (1, 1)


@pytest.mark.parametrize(
    "name, scale, fan, kind",
    [
        ("glorot_uniform", 1.0, (CONV_FAN_IN + CONV_FAN_OUT) / 2, "uniform"),
        ("glorot_normal", 1.0, (CONV_FAN_IN + CONV_FAN_OUT) / 2, "truncated"),
        ("he_uniform", 2.0, CONV_FAN_IN, "uniform"),
        ("he_normal", 2.0, CONV_FAN_IN, "truncated"),
        ("lecun_uniform", 1.0, CONV_FAN_IN, "uniform"),
        ("lecun_normal", 1.0, CONV_FAN_IN, "truncated"),
    ],
)
def test_named_variance_scaling_on_a_grouped_conv_kernel(name, scale, fan, kind):
    samples = initializers.get(name)(CONV_SHAPE, dtype="float64")
    assert samples.shape == CONV_SHAPE
    variance = scale / fan
    if kind == "uniform":
        limit = math.sqrt(3.0 * variance)
        _assert_uniform(samples, -limit, limit)
    else:
        _assert_truncated_normal(samples, 0.0, math.sqrt(variance) / 0.87962566103423978)
        _assert_mean_and_variance(samples, 0.0, variance, 3 * variance**2)


def test_glorot_uniform_limit_is_keras():
    samples = initializers.GlorotUniform(seed=4)((300, 700), dtype="float64")
    _assert_uniform(samples, -math.sqrt(6 / 1000), math.sqrt(6 / 1000))


@pytest.mark.parametrize(
    "mode, distribution, shape, n",
    [
        ("fan_in", "untruncated_normal", (4, 4, 8, 4000), 128),
        ("fan_out", "uniform", (3000, 100), 100),
        ("fan_avg", "truncated_normal", (600, 400), 500),
        ("fan_in", "normal", (200000,), 200000),
    ],
)
def test_variance_scaling_modes_and_distributions(mode, distribution, shape, n):
    init = initializers.VarianceScaling(scale=3.0, mode=mode, distribution=distribution, seed=5)
    samples = init(shape, dtype="float64")
    variance = 3.0 / n
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)
        _assert_uniform(samples, -limit, limit)
    elif distribution == "untruncated_normal":
        _assert_normal(samples, 0.0, math.sqrt(variance))
    else:
        assert init.distribution == "truncated_normal"
        _assert_truncated_normal(samples, 0.0, math.sqrt(variance) / 0.87962566103423978)


@pytest.mark.parametrize("cls", [initializers.Zeros, initializers.Ones, initializers.Constant,
                                 initializers.RandomNormal, initializers.RandomUniform,
                                 initializers.TruncatedNormal, initializers.VarianceScaling,
                                 initializers.GlorotNormal])
def test_scalar_shape_gives_a_0d_array(cls):
    value = cls()(())
    assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32


def test_truncated_scalars_are_redrawn_too():
    values = [float(initializers.TruncatedNormal(stddev=1.0, seed=seed)(())) for seed in range(300)]
    assert max(abs(v) for v in values) <= 2.0


def test_small_fans_are_floored_at_one():
    samples = initializers.VarianceScaling(scale=1.0, distribution="uniform", seed=6)(())
    assert samples.shape == () and abs(float(samples)) <= math.sqrt(3.0)


# -- orthogonal, identity, constants ------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 4), (3, 8), (5, 5), (3, 3, 4, 16), (2, 2, 2, 16)])
@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_orthogonal(shape, gain):
    weight = initializers.Orthogonal(gain=gain, seed=7)(shape, dtype="float64")
    assert weight.shape == shape
    matrix = weight.reshape(-1, shape[-1])
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-12)
    float32 = initializers.Orthogonal(gain=gain, seed=7)(shape)
    assert float32.dtype == np.float32
    np.testing.assert_allclose(float32, weight, rtol=1e-6, atol=1e-7)


def test_identity():
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((3, 3)), 2.0 * np.eye(3))
    rectangular = initializers.get("identity")((2, 4), dtype="float64")
    expected = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    np.testing.assert_array_equal(rectangular, expected)
    assert rectangular.dtype == np.float64


def test_zeros_ones_constant():
    assert np.array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    assert np.array_equal(initializers.get("Ones")((4,), dtype="int32"), np.ones(4, dtype=np.int32))
    filled = initializers.Constant(0.25)((2, 2))
    assert filled.dtype == np.float32 and np.all(filled == np.float32(0.25))
    broadcast = initializers.constant([1.0, 2.0, 3.0])((2, 3))
    np.testing.assert_array_equal(broadcast, [[1, 2, 3], [1, 2, 3]])
    broadcast[0, 0] = 9.0  # the result is a fresh writable array
    assert initializers.constant([1.0, 2.0, 3.0])((2, 3))[0, 0] == 1.0


# -- dtypes ---------------------------------------------------------------------------------

RANDOM_CLASSES = [
    initializers.RandomNormal, initializers.RandomUniform, initializers.TruncatedNormal,
    initializers.VarianceScaling, initializers.GlorotUniform, initializers.GlorotNormal,
    initializers.HeUniform, initializers.HeNormal, initializers.LecunUniform,
    initializers.LecunNormal, initializers.Orthogonal,
]


@pytest.mark.parametrize("cls", RANDOM_CLASSES + [initializers.Zeros, initializers.Ones,
                                                  initializers.Constant, initializers.Identity])
def test_dtype_defaults_to_floatx(cls):
    init = cls()
    assert init((4, 4)).dtype == np.float32
    assert init((4, 4), dtype="float16").dtype == np.float16
    assert init((4, 4), dtype=np.float64).dtype == np.float64
    previous = config.floatx()
    config.set_floatx("float64")
    try:
        assert init((4, 4)).dtype == np.float64
    finally:
        config.set_floatx(previous)


# -- seeds ------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_seed_makes_values_reproducible(cls):
    shape = (6, 5)
    seeded = cls(seed=11)
    first = seeded(shape)
    np.testing.assert_array_equal(seeded(shape), first)
    np.testing.assert_array_equal(cls(seed=11)(shape), first)
    assert not np.array_equal(cls(seed=12)(shape), first)
    unseeded = cls()
    assert not np.array_equal(unseeded(shape), unseeded(shape))


# -- registry and configs -----------------------------------------------------------------

NAMES = {
    "zeros": "Zeros", "ones": "Ones", "constant": "Constant", "random_normal": "RandomNormal",
    "random_uniform": "RandomUniform", "truncated_normal": "TruncatedNormal",
    "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform",
    "he_normal": "HeNormal", "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
    "variance_scaling": "VarianceScaling", "orthogonal": "Orthogonal", "identity": "Identity",
}


@pytest.mark.parametrize("snake, class_name", sorted(NAMES.items()))
def test_both_names_resolve_to_the_class(snake, class_name):
    cls = getattr(initializers, class_name)
    assert isinstance(initializers.get(snake), cls)
    assert isinstance(initializers.get(class_name), cls)
    assert getattr(initializers, snake) is cls
    instance = initializers.get(snake)
    assert initializers.serialize(instance) == {"class_name": class_name,
                                                "config": instance.get_config()}


CONFIGURED = [
    initializers.Constant([[1.0, 2.0]]),
    initializers.RandomNormal(mean=1.0, stddev=0.2, seed=3),
    initializers.RandomUniform(minval=-2.0, maxval=3.0, seed=4),
    initializers.TruncatedNormal(mean=0.5, stddev=0.1, seed=5),
    initializers.VarianceScaling(scale=2.5, mode="fan_avg", distribution="uniform", seed=6),
    initializers.GlorotNormal(seed=7),
    initializers.HeUniform(seed=8),
    initializers.Orthogonal(gain=0.5, seed=9),
    initializers.Identity(gain=3.0),
    initializers.Zeros(),
]


@pytest.mark.parametrize("init", CONFIGURED, ids=lambda init: type(init).__name__)
def test_config_round_trip(init):
    restored = initializers.deserialize(initializers.serialize(init))
    assert type(restored) is type(init)
    assert restored.get_config() == init.get_config()
    assert type(init).from_config(init.get_config()).get_config() == init.get_config()
    np.testing.assert_array_equal(restored((3, 2)), init((3, 2)))
    assert isinstance(initializers.get(initializers.serialize(init)), type(init))


def test_variance_scaling_config_is_keras():
    init = initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="normal", seed=1)
    assert init.get_config() == {"scale": 2.0, "mode": "fan_out",
                                 "distribution": "truncated_normal", "seed": 1}
    assert initializers.GlorotUniform(seed=2).get_config() == {"seed": 2}


def test_get_passes_instances_callables_and_none_through():
    init = initializers.HeNormal()
    assert initializers.get(init) is init

    def custom(shape, dtype=None):
        return np.full(shape, 7.0)

    assert initializers.get(custom) is custom
    assert initializers.get(None) is None


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'glorot'.*valid names are:.*glorot_uniform"):
        initializers.get("glorot")


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: initializers.RandomNormal(stddev=-1), ValueError, r"stddev=-1"),
        (lambda: initializers.TruncatedNormal(stddev=-0.5), ValueError, r"stddev=-0\.5"),
        (lambda: initializers.RandomNormal(mean=float("nan")), ValueError, r"mean=nan"),
        (lambda: initializers.RandomNormal(stddev="a"), TypeError, r"stddev='a'"),
        (lambda: initializers.RandomUniform(minval=1, maxval=0), ValueError, r"minval=1, maxval=0"),
        (lambda: initializers.VarianceScaling(scale=0), ValueError, r"scale=0"),
        (lambda: initializers.VarianceScaling(scale=-2.0), ValueError, r"scale=-2\.0"),
        (lambda: initializers.VarianceScaling(mode="fan"), ValueError, r"mode='fan'"),
        (lambda: initializers.VarianceScaling(distribution="gaussian"), ValueError,
         r"distribution='gaussian'"),
        (lambda: initializers.VarianceScaling(distribution=None), ValueError, r"distribution=None"),
        (lambda: initializers.GlorotUniform(seed=-1), ValueError, r"seed=-1"),
        (lambda: initializers.HeNormal(seed=1.5), TypeError, r"seed=1\.5"),
        (lambda: initializers.Orthogonal(gain="x"), TypeError, r"gain='x'"),
        (lambda: initializers.Identity(gain=float("inf")), ValueError, r"gain=inf"),
        (lambda: initializers.Constant("a"), TypeError, r"value='a'"),
    ],
)
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "shape, error, message",
    [
        ((2, 0), ValueError, r"shape=\(2, 0\)"),
        ((2, -3), ValueError, r"shape=\(2, -3\)"),
        ((2, 3.0), TypeError, r"shape=\(2, 3\.0\)"),
        ([4, "5"], TypeError, r"shape=\[4, '5'\]"),
        (None, TypeError, r"shape=None"),
        (True, TypeError, r"shape=True"),
        (-4, ValueError, r"shape=-4"),
    ],
)
@pytest.mark.parametrize("init", [initializers.Zeros(), initializers.GlorotUniform(),
                                  initializers.RandomNormal(), initializers.Orthogonal()],
                         ids=lambda init: type(init).__name__)
def test_bad_shapes(init, shape, error, message):
    with pytest.raises(error, match=message):
        init(shape)


def test_bad_dtypes_and_ranks():
    with pytest.raises(TypeError, match=r"floating-point.*dtype='int32'"):
        initializers.RandomNormal()((2,), dtype="int32")
    with pytest.raises(TypeError, match=r"dtype='foo'"):
        initializers.Zeros()((2,), dtype="foo")
    with pytest.raises(TypeError, match=r"dtype='complex64'"):
        initializers.Ones()((2,), dtype="complex64")
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*shape=\(5,\)"):
        initializers.Orthogonal()((5,))
    with pytest.raises(ValueError, match=r"2-D.*shape=\(2, 2, 2\)"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(ValueError, match=r"value of shape \(3,\).*shape \(2, 4\)"):
        initializers.Constant([1.0, 2.0, 3.0])((2, 4))
