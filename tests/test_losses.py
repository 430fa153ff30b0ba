"""Losses: values against closed forms, gradients against finite differences, errors."""

import numpy as np
import pytest

from numconv import losses
from numconv.autograd.tape import GradientTape
from numconv.autograd.tensor import Tensor, Variable

from gradient_check import assert_gradients_close

EPS = 1e-7
rng = np.random.default_rng(1234)


def value(loss, y_true, y_pred, sample_weight=None):
    return float(np.asarray(loss(y_true, y_pred, sample_weight=sample_weight)))


def grads(loss, y_true, y_pred, sample_weight=None):
    """Analytic gradients of the reduced loss with respect to y_true and y_pred."""
    true, pred = Variable(y_true), Variable(y_pred)
    with GradientTape() as tape:
        result = loss(true, pred, sample_weight=sample_weight)
    grad_true, grad_pred = tape.gradient(result, [true, pred])
    return tuple(None if grad is None else grad.numpy() for grad in (grad_true, grad_pred))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- closed-form values ---------------------------------------------------------------------


def test_mse_and_mae_closed_form():
    y_true = np.array([[0.0, 1.0], [2.0, 3.0]])
    y_pred = np.array([[1.0, 1.0], [2.0, 5.0]])
    # per sample: mse (1 + 0)/2, (0 + 4)/2; mae (1 + 0)/2, (0 + 2)/2
    assert value(losses.MeanSquaredError(), y_true, y_pred) == pytest.approx((0.5 + 2.0) / 2)
    assert value(losses.MeanAbsoluteError(), y_true, y_pred) == pytest.approx((0.5 + 1.0) / 2)
    assert value(losses.get("mse"), y_true, y_pred, sample_weight=[2.0, 0.0]) == pytest.approx(
        2 * 0.5 / 2
    )
    assert value(
        losses.get("mae"), y_true, y_pred, sample_weight=np.array([[1.0], [3.0]])
    ) == pytest.approx((0.5 + 3.0) / 2)


def test_reductions_sum_and_none():
    y_true = np.zeros((3, 2))
    y_pred = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    per_sample = np.array([1.0, 2.0, 0.0])
    assert value(losses.MeanSquaredError(reduction="sum"), y_true, y_pred) == pytest.approx(3.0)
    np.testing.assert_allclose(
        losses.MeanSquaredError(reduction="none")(
            y_true, y_pred, sample_weight=[1.0, 2.0, 3.0]
        ).numpy(),
        per_sample * [1.0, 2.0, 3.0],
    )


def test_trailing_axis_of_size_one_is_squeezed():
    y_true = np.array([1.0, 2.0, 3.0])
    y_pred = np.array([[1.0], [1.0], [1.0]])
    # Keras: (N,) vs (N, 1) compares elementwise; the mean over the last axis of (N,) is one value.
    assert value(losses.MeanSquaredError(), y_true, y_pred) == pytest.approx((0 + 1 + 4) / 3)


def test_binary_crossentropy_probabilities_closed_form():
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]])
    y_pred = np.array([[0.9, 0.2], [0.0, 1.0]])
    # Keras clips probabilities to [eps, 1 - eps]: 0 -> eps and 1 -> 1 - eps.
    first = -(np.log(0.9) + np.log(0.8)) / 2
    second = -(np.log(1 - EPS) + np.log(1 - EPS)) / 2
    assert value(losses.BinaryCrossentropy(), y_true, y_pred) == pytest.approx(
        (first + second) / 2, rel=1e-9
    )
    wrong = np.array([[0.0, 1.0]])
    assert value(losses.BinaryCrossentropy(), np.array([[1.0, 0.0]]), wrong) == pytest.approx(
        -np.log(EPS)
    )


def test_binary_crossentropy_from_logits_closed_form_and_stability():
    logits = np.array([[0.0, 2.0, -3.0]])
    y_true = np.array([[1.0, 0.0, 1.0]])
    sigmoid = 1 / (1 + np.exp(-logits))
    expected = -np.mean(y_true * np.log(sigmoid) + (1 - y_true) * np.log(1 - sigmoid))
    assert value(losses.BinaryCrossentropy(from_logits=True), y_true, logits) == pytest.approx(
        expected
    )
    # -log(sigmoid(-1000)) = 1000 exactly up to rounding; sigmoid(1000) with label 1 costs nothing.
    huge = np.array([[1000.0, -1000.0]])
    labels = np.array([[1.0, 1.0]])
    assert value(losses.BinaryCrossentropy(from_logits=True), labels, huge) == pytest.approx(500.0)
    _, grad_pred = grads(losses.BinaryCrossentropy(from_logits=True), labels, huge)
    np.testing.assert_allclose(grad_pred, [[0.0, -0.5]], atol=1e-12)


def test_categorical_crossentropy_probabilities_renormalised_and_clipped():
    y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_pred = np.array([[1.0, 2.0, 1.0], [0.0, 3.0, 1.0]])
    # Row 1 renormalises to [0.25, 0.5, 0.25]; row 2's true class has probability 0 -> eps.
    expected = (-np.log(0.5) - np.log(EPS)) / 2
    assert value(losses.CategoricalCrossentropy(), y_true, y_pred) == pytest.approx(
        expected, rel=1e-9
    )


def test_categorical_crossentropy_from_logits_closed_form_and_stability():
    logits = np.array([[1.0, 2.0, 3.0]])
    y_true = np.array([[0.2, 0.3, 0.5]])
    log_z = np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0))
    expected = -(0.2 * (1 - log_z) + 0.3 * (2 - log_z) + 0.5 * (3 - log_z))
    assert value(losses.CategoricalCrossentropy(from_logits=True), y_true, logits) == pytest.approx(
        expected
    )
    huge = np.array([[1000.0, -1000.0, 0.0]])
    onehot = np.array([[0.0, 1.0, 0.0]])
    assert value(losses.CategoricalCrossentropy(from_logits=True), onehot, huge) == pytest.approx(
        2000.0
    )
    _, grad_pred = grads(losses.CategoricalCrossentropy(from_logits=True), onehot, huge)
    assert np.all(np.isfinite(grad_pred))
    np.testing.assert_allclose(grad_pred, [[1.0, -1.0, 0.0]], atol=1e-12)


@pytest.mark.parametrize("labels", [np.array([2, 0]), np.array([[2], [0]]), np.array([2.0, 0.0])])
def test_sparse_categorical_crossentropy_label_shapes(labels):
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = (-np.log(softmax(logits)[0, 2]) + np.log(3.0)) / 2
    from_logits = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert value(from_logits, labels, logits) == pytest.approx(expected)
    probs = np.array([[0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    expected = (-np.log(0.6) - np.log(0.5)) / 2
    assert value(losses.get("sparse_categorical_crossentropy"), labels, probs) == pytest.approx(
        expected
    )


def test_sparse_categorical_crossentropy_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0]])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert value(loss, [1], logits) == pytest.approx(2000.0)
    _, grad_pred = grads(loss, np.array([0.0]), logits)
    np.testing.assert_allclose(grad_pred, [[0.0, 0.0, 0.0]], atol=1e-12)


def test_sparse_equals_categorical_with_one_hot_labels():
    logits = rng.normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[labels]
    weights = rng.uniform(size=5)
    for from_logits, pred in ((True, logits), (False, softmax(logits))):
        sparse = value(
            losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, pred, weights
        )
        dense = -np.sum(weights * np.log(softmax(logits))[np.arange(5), labels]) / 5
        assert sparse == pytest.approx(dense, rel=1e-9)
        assert value(
            losses.CategoricalCrossentropy(from_logits=from_logits), onehot, pred, weights
        ) == pytest.approx(dense, rel=1e-9)


def test_float32_inputs_give_float32_loss():
    y_pred = np.array([[0.3, 0.7]], dtype=np.float32)
    result = losses.CategoricalCrossentropy()(np.array([[0, 1]]), y_pred)
    assert result.dtype == np.float32
    assert float(result) == pytest.approx(-np.log(0.7), rel=1e-6)


# -- gradients against finite differences ------------------------------------------------


def _check_loss_gradients(loss, y_true, y_pred, sample_weight=None, wrt_true=True):
    def function(true, pred):
        return np.asarray(loss(true, pred, sample_weight=sample_weight))

    grad_true, grad_pred = grads(loss, y_true, y_pred, sample_weight)
    assert_gradients_close(
        function,
        [y_true, y_pred],
        [grad_true if wrt_true else None, grad_pred],
        rtol=1e-5,
        atol=1e-8,
    )


def test_gradients_mse_mae():
    y_true, y_pred = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    weights = rng.uniform(size=4)
    _check_loss_gradients(losses.MeanSquaredError(), y_true, y_pred, weights)
    _check_loss_gradients(losses.MeanAbsoluteError(), y_true, y_pred)


@pytest.mark.parametrize("from_logits", [False, True])
def test_gradients_binary_crossentropy(from_logits):
    y_true = rng.uniform(size=(3, 4))
    y_pred = rng.normal(size=(3, 4)) if from_logits else rng.uniform(0.1, 0.9, size=(3, 4))
    _check_loss_gradients(
        losses.BinaryCrossentropy(from_logits=from_logits),
        y_true,
        y_pred,
        sample_weight=rng.uniform(size=3),
    )


@pytest.mark.parametrize("from_logits", [False, True])
def test_gradients_categorical_crossentropy(from_logits):
    y_true = rng.uniform(size=(3, 4))
    # Unnormalised positive scores exercise the renormalisation's gradient.
    y_pred = rng.normal(size=(3, 4)) if from_logits else rng.uniform(0.5, 2.0, size=(3, 4))
    _check_loss_gradients(
        losses.CategoricalCrossentropy(from_logits=from_logits),
        y_true,
        y_pred,
        sample_weight=rng.uniform(size=3),
    )


@pytest.mark.parametrize("from_logits", [False, True])
def test_gradients_sparse_categorical_crossentropy(from_logits):
    labels = np.array([1.0, 0.0, 3.0])
    y_pred = rng.normal(size=(3, 4)) if from_logits else rng.uniform(0.5, 2.0, size=(3, 4))
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    _check_loss_gradients(loss, labels, y_pred, sample_weight=rng.uniform(size=3), wrt_true=False)
    grad_labels, _ = grads(loss, labels, y_pred)
    assert grad_labels is None


def test_clipped_probabilities_have_zero_gradient():
    _, grad_pred = grads(
        losses.BinaryCrossentropy(), np.array([[1.0, 1.0]]), np.array([[0.0, 0.5]])
    )
    assert grad_pred[0, 0] == 0.0
    assert grad_pred[0, 1] == pytest.approx(-1 / 0.5 / 2)


def test_loss_of_tensors_flows_to_earlier_ops():
    weight = Variable(np.array([[2.0]]))
    x = np.array([[1.0], [3.0]])
    with GradientTape() as tape:
        prediction = Tensor(x) * weight
        loss = losses.MeanSquaredError()(np.zeros((2, 1)), prediction)
    # loss = ((1 w)^2 + (3 w)^2) / 2 = 5 w^2, so d loss / dw = 10 w = 20 at w = 2.
    assert float(tape.gradient(loss, weight).numpy().squeeze()) == pytest.approx(20.0)


# -- registry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls",
    [
        ("mse", losses.MeanSquaredError),
        ("mean_squared_error", losses.MeanSquaredError),
        ("mae", losses.MeanAbsoluteError),
        ("mean_absolute_error", losses.MeanAbsoluteError),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
        ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
    ],
)
def test_get_by_name(name, cls):
    assert isinstance(losses.get(name), cls)


def test_get_instance_callable_config_and_round_trip():
    loss = losses.CategoricalCrossentropy(from_logits=True, name="cce")
    assert losses.get(loss) is loss

    def custom(y_true, y_pred):
        return y_pred

    assert losses.get(custom) is custom
    restored = losses.deserialize(losses.serialize(loss))
    assert isinstance(restored, losses.CategoricalCrossentropy)
    assert (
        restored.get_config()
        == loss.get_config()
        == {"name": "cce", "reduction": "sum_over_batch_size", "from_logits": True}
    )
    assert isinstance(losses.get({"class_name": "mse", "config": {}}), losses.MeanSquaredError)
    assert losses.get(None) is None


# -- errors -----------------------------------------------------------------------------


def test_unknown_name_and_bad_identifier():
    with pytest.raises(ValueError, match="unknown loss 'msee'.*mean_squared_error"):
        losses.get("msee")
    with pytest.raises(TypeError, match="loss=3"):
        losses.get(3)


def test_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 3\), y_pred.shape=\(2, 4\)"):
        losses.MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(3,\), y_pred.shape=\(2, 4\)"):
        losses.SparseCategoricalCrossentropy()(np.zeros(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"sample_weight.shape=\(3,\)"):
        losses.MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(3))


@pytest.mark.parametrize("labels, bad", [([0, 4], "4"), ([-1, 0], "-1"), ([0.0, 10.0], "10.0")])
def test_labels_out_of_range(labels, bad):
    with pytest.raises(ValueError, match=rf"labels must be in \[0, 4\).*labels containing {bad}"):
        losses.SparseCategoricalCrossentropy(from_logits=True)(np.array(labels), np.zeros((2, 4)))


def test_labels_not_integer():
    with pytest.raises(ValueError, match="labels must be integer.*labels containing 1.5"):
        losses.SparseCategoricalCrossentropy()(np.array([1.5, 0.0]), np.ones((2, 4)))
    with pytest.raises(ValueError, match="labels containing nan"):
        losses.SparseCategoricalCrossentropy()(np.array([np.nan, 0.0]), np.ones((2, 4)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction=.mean_of_all."):
        losses.MeanSquaredError(reduction="mean_of_all")
    with pytest.raises(TypeError, match="from_logits='yes'"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(TypeError, match="y_true must hold real numbers.*<U1"):
        losses.MeanSquaredError()(np.array(["a"]), np.zeros(1))
    with pytest.raises(ValueError, match="y_true=None"):
        losses.MeanSquaredError()(None, np.zeros(1))
    with pytest.raises(ValueError, match="received scalars"):
        losses.MeanSquaredError()(1.0, 2.0)
