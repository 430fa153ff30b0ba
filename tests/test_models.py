"""Sequential: structure, training, evaluation against NumPy computations, errors."""

import numpy as np
import pytest

from numconv import layers, losses, optimizers, regularizers
from numconv.models import History, Sequential


def blobs(n=40, seed=0):
    """Two linearly separable clusters in 2-D, labels 0/1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    centres = np.where(labels[:, None] == 1, 2.0, -2.0)
    return centres + rng.normal(scale=0.5, size=(n, 2)), labels


def mlp(seed=0, dtype="float64"):
    model = Sequential(
        [
            layers.Dense(
                4, activation="relu", input_shape=(2,), dtype=dtype, kernel_initializer=_init(seed)
            ),
            layers.Dense(2, dtype=dtype, kernel_initializer=_init(seed + 1)),
        ]
    )
    return model


def _init(seed):
    rng = np.random.default_rng(seed)
    return lambda shape, dtype=None: rng.normal(scale=0.5, size=shape).astype(dtype or "float64")


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# -- structure ---------------------------------------------------------------------------


def test_layers_weights_and_build_from_input_shape():
    model = mlp()
    assert model.built
    assert [layer.name for layer in model.layers] == [layer.name for layer in model._layers]
    assert [w.shape for w in model.weights] == [(2, 4), (4,), (4, 2), (2,)]
    assert model.trainable_weights == model.weights and model.non_trainable_weights == []
    model.layers[0].trainable = False
    assert [w.shape for w in model.trainable_weights] == [(4, 2), (2,)]
    assert [w.shape for w in model.non_trainable_weights] == [(2, 4), (4,)]


def test_build_explicit_and_lazy():
    model = Sequential()
    model.add(layers.Dense(3))
    assert not model.built
    model.build((None, 5))
    assert model.built and model.count_params() == 5 * 3 + 3
    lazy = Sequential([layers.Dense(2)])
    lazy.predict(np.zeros((4, 7)))
    assert lazy.built and lazy.weights[0].shape == (7, 2)


def test_get_and_set_weights_round_trip():
    model = mlp()
    replacement = [np.full(w.shape, float(i)) for i, w in enumerate(model.weights)]
    model.set_weights(replacement)
    for got, expected in zip(model.get_weights(), replacement):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(
        ValueError, match=r"expects 4 weight arrays.*received 1 arrays with shapes \[\(3,\)\]"
    ):
        model.set_weights([np.zeros(3)])


def test_predictions_equal_hand_chained_forward():
    model = mlp(seed=3)
    x = np.random.default_rng(5).normal(size=(11, 2))
    kernel1, bias1, kernel2, bias2 = model.get_weights()
    by_hand = np.maximum(x @ kernel1 + bias1, 0.0) @ kernel2 + bias2
    predictions = model.predict(x, batch_size=4)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (11, 2)
    np.testing.assert_allclose(predictions, by_hand, rtol=1e-12, atol=1e-12)
    first, second = model.layers
    chained = second(first(x)).numpy()
    np.testing.assert_allclose(predictions, chained, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model(x).numpy(), chained, rtol=1e-12)


def test_summary_parameter_counts_and_shapes():
    model = Sequential(
        [
            layers.Conv2D(4, 3, input_shape=(8, 8, 1), name="conv"),
            layers.MaxPooling2D(2, name="pool"),
            layers.Flatten(name="flat"),
            layers.Dense(10, name="logits"),
        ]
    )
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    conv_params = 3 * 3 * 1 * 4 + 4
    dense_params = (3 * 3 * 4) * 10 + 10
    lines = text.splitlines()
    row = {
        line.split()[0]: line
        for line in lines
        if line.split() and line.split()[0] in ("conv", "pool", "flat", "logits")
    }
    assert "(Conv2D)" in row["conv"] and "(None, 6, 6, 4)" in row["conv"]
    assert row["conv"].endswith(str(conv_params))
    assert "(None, 3, 3, 4)" in row["pool"] and row["pool"].endswith(" 0")
    assert "(None, 36)" in row["flat"]
    assert "(None, 10)" in row["logits"] and row["logits"].endswith(str(dense_params))
    total = conv_params + dense_params
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total:,}" in text
    assert "Non-trainable params: 0" in text
    model.get_layer("conv").trainable = False
    text = model.summary(print_fn=lambda _: None)
    assert f"Trainable params: {dense_params:,}" in text
    assert f"Non-trainable params: {conv_params:,}" in text


def test_summary_prints_by_default(capsys):
    mlp().summary()
    assert "Total params: 22" in capsys.readouterr().out


# -- training -----------------------------------------------------------------------------


def test_fit_separable_problem_reaches_full_accuracy():
    x, y = blobs()
    model = mlp()
    model.compile(
        optimizer=optimizers.Adam(0.05),
        loss=losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=8, epochs=30, verbose=0, seed=0)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x, y)
    assert accuracy == 1.0
    np.testing.assert_array_equal(np.argmax(model.predict(x), axis=1), y)


def test_fit_binary_from_logits():
    x, y = blobs(seed=1)
    model = Sequential([layers.Dense(1, input_shape=(2,), dtype="float64")])
    model.compile("sgd", losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(
        x, y.reshape(-1, 1).astype(float), epochs=20, batch_size=4, verbose=0, seed=1
    )
    assert history.history["accuracy"][-1] == 1.0


def test_history_contents():
    x, y = blobs(30)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x[:10], y[:10]))
    assert isinstance(history, History) and model.history is history
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert all(isinstance(value, float) for values in history.history.values() for value in values)
    no_validation = model.fit(x, y, epochs=2, verbose=0)
    assert set(no_validation.history) == {"loss", "accuracy"}


def test_epoch_loss_is_sample_weighted_mean_of_batch_losses():
    x, y = blobs(10)
    model = mlp()
    model.compile(optimizers.SGD(1e-12), losses.SparseCategoricalCrossentropy(from_logits=True))
    # With a negligible learning rate every batch sees the same weights, so the epoch
    # loss is the loss over all samples even with a ragged last batch.
    expected = -np.mean(log_softmax(model.predict(x))[np.arange(10), y])
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-9)


def test_evaluate_equals_loss_computed_by_hand():
    x, y = blobs(13, seed=4)
    model = mlp(seed=7)
    model.compile(
        "adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    logits = model.predict(x)
    loss = -np.mean(log_softmax(logits)[np.arange(13), y])
    accuracy = np.mean(np.argmax(logits, axis=1) == y)
    got_loss, got_accuracy = model.evaluate(x, y, batch_size=5)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    assert got_accuracy == pytest.approx(accuracy)
    assert model.evaluate(x, y, return_dict=True) == pytest.approx(
        {"loss": loss, "accuracy": accuracy}
    )
    mse_model = mlp(seed=7)
    mse_model.compile("sgd", "mse", metrics=[])  # no metrics: evaluate returns the loss alone
    onehot = np.eye(2)[y]
    assert mse_model.evaluate(x, onehot, batch_size=4) == pytest.approx(
        np.mean((logits - onehot) ** 2)
    )


def test_compile_reports_accuracy_unless_told_otherwise():
    x, y = blobs(12, seed=2)
    model = mlp(seed=3)
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    expected = np.mean(np.argmax(model.predict(x), axis=1) == y)
    assert model.evaluate(x, y)[1] == pytest.approx(expected)


def test_regularization_losses_included_in_training_loss_and_gradient():
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    y = np.array([[1.0], [0.0], [2.0]])
    kernel = np.array([[0.3], [-0.2]])
    model = Sequential(
        [
            layers.Dense(
                1,
                use_bias=False,
                input_shape=(2,),
                dtype="float64",
                kernel_regularizer=regularizers.L2(0.1),
            )
        ]
    )
    model.set_weights([kernel])
    model.compile(optimizers.SGD(0.5), "mse", metrics=[])
    residual = x @ kernel - y
    expected_loss = np.mean(residual**2) + 0.1 * np.sum(kernel**2)
    assert len(model.losses) == 1
    assert model.evaluate(x, y) == pytest.approx(expected_loss, rel=1e-12)
    reported = model.train_on_batch(x, y)
    assert reported == pytest.approx(expected_loss, rel=1e-12)
    gradient = 2 * x.T @ residual / 3 + 2 * 0.1 * kernel
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.5 * gradient, rtol=1e-12)


def test_validation_split_takes_last_fraction_before_shuffling():
    x, y = blobs(20)
    model = mlp()
    model.compile(
        "adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=0, seed=3)
    # val_* are measured after the last epoch's updates, so evaluating now reproduces them.
    val_loss, val_accuracy = model.evaluate(x[15:], y[15:])
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_accuracy)


def test_shuffle_seeded_is_reproducible():
    x, y = blobs(24)
    finals = []
    for seed in (11, 11, 12):
        model = mlp()
        model.compile(optimizers.SGD(0.1), losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=5, epochs=2, verbose=0, seed=seed)
        finals.append(np.concatenate([w.ravel() for w in model.get_weights()]))
    np.testing.assert_array_equal(finals[0], finals[1])
    assert not np.allclose(finals[0], finals[2])


def test_global_rng_drives_shuffle_without_seed():
    x, y = blobs(24)
    finals = []
    for _ in range(2):
        np.random.seed(5)
        model = mlp()
        model.compile(optimizers.SGD(0.1), losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=5, epochs=2, verbose=0)
        finals.append(model.get_weights()[0])
    np.testing.assert_array_equal(finals[0], finals[1])


def test_callbacks_and_initial_epoch():
    x, y = blobs(8)
    model = mlp()
    model.compile(
        "adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    events = []

    class Recorder:
        def set_model(self, received):
            events.append(("model", received is model))

        def on_train_begin(self, logs):
            events.append("begin")

        def on_epoch_begin(self, epoch, logs):
            events.append(("epoch_begin", epoch))

        def on_epoch_end(self, epoch, logs):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs):
            events.append("end")

    history = model.fit(x, y, epochs=3, initial_epoch=1, callbacks=[Recorder()], verbose=0)
    assert history.epoch == [1, 2] and len(history.history["loss"]) == 2
    assert events == [
        ("model", True),
        "begin",
        ("epoch_begin", 1),
        ("epoch_end", 1, ["accuracy", "loss"]),
        ("epoch_begin", 2),
        ("epoch_end", 2, ["accuracy", "loss"]),
        "end",
    ]
    with pytest.raises(TypeError, match="callbacks='timer'"):
        model.fit(x, y, callbacks="timer", verbose=0)


def test_train_on_batch_returns_loss_and_metrics():
    x, y = blobs(8)
    model = mlp()
    model.compile(
        optimizers.SGD(0.01),
        losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    logits = model.predict(x)
    expected_loss = -np.mean(log_softmax(logits)[np.arange(8), y])
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert accuracy == pytest.approx(np.mean(np.argmax(logits, axis=1) == y))


def test_accuracy_variant_follows_the_loss():
    # One output equal to the input: logits/probabilities are 0.3 and 0.7, labels 1 and 0.
    x = np.array([[0.3], [0.7]])
    y = np.array([[1.0], [0.0]])
    model = Sequential(
        [
            layers.Dense(
                1, use_bias=False, input_shape=(1,), dtype="float64", kernel_initializer="ones"
            )
        ]
    )
    model.compile("sgd", losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    assert model.evaluate(x, y)[1] == 0.5  # threshold 0: both predicted 1
    model.compile("sgd", losses.BinaryCrossentropy(), metrics=["accuracy"])
    assert model.evaluate(x, y)[1] == 0.0  # threshold 0.5: 0.3 -> 0 (label 1), 0.7 -> 1 (label 0)

    three = Sequential(
        [
            layers.Dense(
                3, use_bias=False, input_shape=(3,), dtype="float64", kernel_initializer="identity"
            )
        ]
    )
    scores = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    three.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    assert three.evaluate(scores, np.array([1, 2]), return_dict=True)["acc"] == 0.5
    three.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    assert three.evaluate(scores, np.eye(3)[[1, 0]])[1] == 1.0
    three.compile("sgd", "mse", metrics=["accuracy", "categorical_accuracy"])
    results = three.evaluate(scores, np.eye(3)[[1, 1]], return_dict=True)
    assert results["accuracy"] == results["categorical_accuracy"] == 0.5


def test_callable_loss_and_metric():
    x, y = blobs(6)

    def squared_logit_sum(y_true, y_pred):
        return y_pred * y_pred

    def always_one(y_true, y_pred):
        return np.ones(len(y_true))

    model = mlp()
    model.compile("sgd", squared_logit_sum, metrics=[always_one])
    logits = model.predict(x)
    assert model.evaluate(x, y, return_dict=True) == pytest.approx(
        {"loss": np.mean(logits**2), "always_one": 1.0}
    )


def test_frozen_model_is_not_updated():
    x, y = blobs(8)
    model = mlp()
    model.trainable = False
    before = model.get_weights()
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_nested_sequential():
    inner = Sequential([layers.Dense(3, input_shape=(2,), dtype="float64")], name="inner")
    outer = Sequential([inner, layers.Dense(1, dtype="float64")])
    assert outer.built and len(outer.weights) == 4
    x = np.ones((2, 2))
    np.testing.assert_allclose(outer.predict(x), outer.layers[1](inner(x)).numpy())


def test_save_and_load_weights(tmp_path):
    model = mlp(seed=1)
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    other = mlp(seed=2)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    wrong = Sequential([layers.Dense(5, input_shape=(2,))])
    with pytest.raises(
        ValueError, match=r"'0.kernel' has shape \(2, 4\) \(expected shape \(2, 5\)\)"
    ):
        wrong.load_weights(path)
    with pytest.raises(ValueError, match=r"filepath must end in .npz; received filepath='w.h5'"):
        model.save_weights("w.h5")


# -- output --------------------------------------------------------------------------------


def test_progress_bar_verbose_1_and_silent_0(capsys):
    x, y = blobs(8)
    model = mlp()
    model.compile(
        "adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(x, y, epochs=2, batch_size=4, verbose=1)
    captured = capsys.readouterr()
    assert "Epoch 1/2" in captured.err and "Epoch 2/2" in captured.err
    assert "loss=" in captured.err and "accuracy=" in captured.err
    model.fit(x, y, epochs=1, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    model.fit(x, y, epochs=1, verbose=2, validation_data=(x, y))
    line = capsys.readouterr().out.strip()
    assert line.startswith("Epoch 1/1") and "val_accuracy:" in line


# -- errors -------------------------------------------------------------------------------


def test_fit_before_compile():
    with pytest.raises(ValueError, match="must be compiled before fit"):
        mlp().fit(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="must be compiled before evaluate"):
        mlp().evaluate(np.zeros((2, 2)), np.zeros(2))


def test_fit_data_errors():
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x=None"):
        model.fit(None, np.zeros(2))
    with pytest.raises(ValueError, match="y=None"):
        model.fit(np.zeros((2, 2)), None)
    with pytest.raises(ValueError, match=r"x with 3 samples \(shape \(3, 2\)\), y with 2 samples"):
        model.fit(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"validation_split=1.5"):
        model.fit(np.zeros((3, 2)), np.zeros(3), validation_split=1.5)
    with pytest.raises(ValueError, match=r"validation_split=0.9 leaves no training"):
        model.fit(np.zeros((3, 2)), np.zeros(3), validation_split=0.9, verbose=0)
    with pytest.raises(
        ValueError, match=r"batch_size must be an integer >= 1; received batch_size=0"
    ):
        model.fit(np.zeros((3, 2)), np.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match=r"epochs=2.5"):
        model.fit(np.zeros((3, 2)), np.zeros(3), epochs=2.5)
    with pytest.raises(ValueError, match=r"verbose=3"):
        model.fit(np.zeros((3, 2)), np.zeros(3), verbose=3)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple"):
        model.fit(np.zeros((3, 2)), np.zeros(3), validation_data=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"x_val with 2 samples.*y_val with 3 samples"):
        model.fit(np.zeros((3, 2)), np.zeros(3), validation_data=(np.zeros((2, 2)), np.zeros(3)))
    with pytest.raises(TypeError, match=r"x must hold real numbers"):
        model.fit(np.array([["a", "b"]]), np.zeros(1))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\).*labels containing 5"):
        model.fit(np.zeros((2, 2)), np.array([0, 5]), verbose=0)


def test_compile_errors():
    model = mlp()
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        model.compile("adam", "crossentropy")
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        model.compile("adamax", "mse")
    with pytest.raises(ValueError, match="loss=None"):
        model.compile("adam")
    with pytest.raises(ValueError, match="unknown metric 'precision'"):
        model.compile("adam", "mse", metrics=["precision"])
    with pytest.raises(TypeError, match="metric=3"):
        model.compile("adam", "mse", metrics=[3])
    with pytest.raises(TypeError, match="optimizer=0.01"):
        model.compile(0.01, "mse")
    assert not model.compiled


def test_structure_errors():
    with pytest.raises(TypeError, match="layer='dense'"):
        Sequential(["dense"])
    with pytest.raises(ValueError, match="unique; received a second layer named 'same'"):
        Sequential([layers.Dense(2, name="same"), layers.Dense(2, name="same")])
    with pytest.raises(ValueError, match="not built yet"):
        Sequential([layers.Dense(2)]).summary()
    with pytest.raises(TypeError, match="input_shape=5"):
        Sequential([layers.Dense(2)]).build(5)
    with pytest.raises(ValueError, match="has no layers"):
        Sequential().predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="inputs=None"):
        mlp()(None)
