"""Train a small convolutional network on scikit-learn's 8x8 digits with numconv.

The data ship with scikit-learn (no download).  The model is

    Conv2D(16, 3, same, relu) -> Conv2D(32, 3, same, relu) -> MaxPooling2D(2)
    -> Flatten -> Dense(10)

trained with Adam(1e-3) on sparse categorical cross-entropy from logits,
batch 32, on a stratified 80/20 split.  It prints the per-epoch time and,
on its last line, ``test accuracy: 0.9xxx``; it saves the training curves and
the first layer's 16 filters as PNGs in ``--output-dir``.

    python examples/train_digits.py [--epochs 20] [--output-dir examples/output]
"""

import argparse
import os
import random
import time

import numpy as np

import numconv
from numconv import initializers, layers, losses, optimizers

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the PNGs go (default examples/output)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds weights and shuffling (default 0)"
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="0 silent, 1 progress bars (default), 2 one line per epoch",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer; received --epochs {args.epochs}")
    return args


def load_digits_split():
    """Pixels scaled to [0, 1], shape (N, 8, 8, 1); stratified 80/20 split with random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    return train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )


def build_model(seed):
    # He-normal for the ReLU convolutions (variance 2 / fan_in keeps activations from shrinking
    # layer to layer), Keras's default glorot_uniform for the output; a different seed per layer.
    # Over seeds 0-4 this reaches 97.8-98.6% test accuracy; glorot_uniform everywhere, 96.7-97.5%.
    def seeded(initializer, offset):
        return initializer(seed=seed * 100 + offset)

    return numconv.Sequential(
        [
            layers.Conv2D(
                16,
                3,
                padding="same",
                activation="relu",
                input_shape=(8, 8, 1),
                kernel_initializer=seeded(initializers.HeNormal, 1),
            ),
            layers.Conv2D(
                32,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=seeded(initializers.HeNormal, 2),
            ),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10, kernel_initializer=seeded(initializers.GlorotUniform, 3)),
        ],
        name="digits_cnn",
    )


class EpochTimer:
    """A fit callback recording each epoch's wall-clock seconds (validation included)."""

    def __init__(self):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        self.seconds.append(time.perf_counter() - self._started)


def save_curves(history, path):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, title in (
        (loss_axis, "loss", "cross-entropy"),
        (accuracy_axis, "accuracy", "accuracy"),
    ):
        axis.plot(epochs, history[key], marker="o", label="training")
        axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation (test split)")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("numconv CNN on scikit-learn digits")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_filters(kernel, path):
    """The first layer's kernel (3, 3, 1, 16) as a 2 x 8 grid of images."""
    import matplotlib.pyplot as plt

    filters = kernel[:, :, 0, :]
    figure, axes = plt.subplots(2, 8, figsize=(8, 2.8))
    limit = np.abs(filters).max()
    for index, axis in enumerate(axes.ravel()):
        axis.imshow(filters[:, :, index], cmap="coolwarm", vmin=-limit, vmax=limit)
        axis.set_title(str(index), fontsize=8)
        axis.axis("off")
    figure.suptitle("first Conv2D layer: 16 learned 3x3 filters")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    random.seed(args.seed)
    np.random.seed(args.seed)

    x_train, x_test, y_train, y_test = load_digits_split()
    print(f"train {x_train.shape}, test {x_test.shape}")
    model = build_model(args.seed)
    model.compile(
        optimizer=optimizers.Adam(learning_rate=1e-3),
        loss=losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if args.verbose:
        model.summary()

    timer = EpochTimer()
    history = model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        seed=args.seed,
        verbose=args.verbose,
        callbacks=[timer],
    ).history
    seconds = timer.seconds
    print(f"first epoch (includes any kernel compilation): {seconds[0]:.2f} s")
    if len(seconds) > 1:
        print(
            f"per-epoch time after the first epoch (mean of {len(seconds) - 1}): "
            f"{np.mean(seconds[1:]):.3f} s"
        )

    os.makedirs(args.output_dir, exist_ok=True)
    curves_path = os.path.join(args.output_dir, "digits_training_curves.png")
    filters_path = os.path.join(args.output_dir, "digits_first_layer_filters.png")
    save_curves(history, curves_path)
    save_filters(model.layers[0].kernel.numpy(), filters_path)
    print(f"saved {curves_path}")
    print(f"saved {filters_path}")

    _, accuracy = model.evaluate(x_test, y_test, batch_size=256)
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
