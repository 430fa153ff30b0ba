"""A convolutional denoising autoencoder on scikit-learn's digits, trained with a hand-written loop.

No ``fit``: each step draws a batch, adds fresh Gaussian noise, runs the
layers under a ``GradientTape`` and hands the gradients to an optimizer.

    encoder: Conv2D(16, 3, same, relu) -> Conv2D(16, 3, strides 2, same, relu)   8x8 -> 4x4
    decoder: nearest-neighbour upsampling x2 -> Conv2D(16, 3, same, relu)
             -> Conv2D(1, 3, same, sigmoid)                                       4x4 -> 8x8

It prints the loss as it falls and saves a PNG with rows noisy / denoised /
clean.

    python examples/custom_loop_autoencoder.py [--steps 600] [--output-dir examples/output]
"""

import argparse
import os
import time

import numpy as np

import numconv
from numconv import initializers, layers, losses, ops, optimizers

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument(
        "--noise", type=float, default=0.3, help="noise standard deviation (default 0.3)"
    )
    parser.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the PNG goes (default examples/output)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds weights, batches and noise (default 0)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error(
            "--steps and --batch-size must be positive; "
            f"received --steps {args.steps} and --batch-size {args.batch_size}"
        )
    if not args.noise >= 0:
        parser.error(f"--noise must be non-negative; received --noise {args.noise}")
    return args


def load_images():
    """Digits scaled to [0, 1], shape (N, 8, 8, 1), split 80/20 (stratified, random_state=0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    train, test = train_test_split(images, test_size=0.2, stratify=digits.target, random_state=0)
    return train, test


def add_noise(images, rng, stddev):
    noisy = images + rng.normal(0.0, stddev, images.shape).astype(images.dtype)
    return np.clip(noisy, 0.0, 1.0)


def upsample2x(x):
    """Nearest-neighbour upsampling of (N, H, W, C) to (N, 2H, 2W, C), differentiable.

    Each pixel is broadcast over a 2x2 block: reshape to (N, H, 1, W, 1, C),
    multiply by ones (N, H, 2, W, 2, C), reshape back.
    """
    n, height, width, channels = x.shape
    blocks = ops.reshape(x, (n, height, 1, width, 1, channels))
    ones = np.ones((1, 1, 2, 1, 2, 1), dtype=x.dtype)
    return ops.reshape(ops.multiply(blocks, ones), (n, 2 * height, 2 * width, channels))


class DenoisingAutoencoder:
    """The layers and the forward pass; weights come from seeded initializers."""

    def __init__(self, seed):
        def init(offset):
            return initializers.GlorotUniform(seed=seed * 100 + offset)

        self.encoder = [
            layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init(1)),
            layers.Conv2D(
                16, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(2)
            ),
        ]
        self.decoder = [
            layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init(3)),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid", kernel_initializer=init(4)),
        ]

    def __call__(self, images, training=False):
        x = images
        for layer in self.encoder:
            x = layer(x, training=training)
        x = upsample2x(x)
        for layer in self.decoder:
            x = layer(x, training=training)
        return x

    @property
    def trainable_weights(self):
        return [w for layer in self.encoder + self.decoder for w in layer.trainable_weights]


def denoise(model, images, batch_size=256):
    return np.concatenate(
        [
            model(images[start : start + batch_size]).numpy()
            for start in range(0, len(images), batch_size)
        ]
    )


def train(model, images, args, rng):
    loss_fn = losses.MeanSquaredError()
    optimizer = optimizers.Adam(learning_rate=3e-3)
    report_every = max(1, args.steps // 10)
    running, history = [], []
    for step in range(1, args.steps + 1):
        clean = images[rng.integers(0, len(images), args.batch_size)]
        noisy = add_noise(clean, rng, args.noise)
        with numconv.GradientTape() as tape:
            loss = loss_fn(clean, model(noisy, training=True))
        weights = model.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        running.append(float(loss))
        if step % report_every == 0 or step == args.steps:
            mean_loss = float(np.mean(running))
            history.append(mean_loss)
            print(f"step {step:5d}/{args.steps}  mean squared error {mean_loss:.5f}", flush=True)
            running = []
    return history


def save_examples(noisy, denoised, clean, path):
    import matplotlib.pyplot as plt

    columns = len(clean)
    figure, axes = plt.subplots(3, columns, figsize=(columns * 0.9, 3.0))
    for row, (title, images) in enumerate(
        (("noisy", noisy), ("denoised", denoised), ("clean", clean))
    ):
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(images[column, :, :, 0], cmap="gray_r", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(title, fontsize=9)
    figure.suptitle("numconv denoising autoencoder (test images)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(args.seed)
    train_images, test_images = load_images()
    model = DenoisingAutoencoder(args.seed)

    started = time.perf_counter()
    history = train(model, train_images, args, rng)
    print(f"training took {time.perf_counter() - started:.1f} s")

    noisy_test = add_noise(test_images, rng, args.noise)
    denoised = denoise(model, noisy_test)
    noisy_error = float(np.mean((noisy_test - test_images) ** 2))
    denoised_error = float(np.mean((denoised - test_images) ** 2))
    print(f"test mean squared error: noisy {noisy_error:.5f}, denoised {denoised_error:.5f}")

    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "autoencoder_denoising.png")
    save_examples(noisy_test[:10], denoised[:10], test_images[:10], path)
    print(f"saved {path}")
    print(f"loss: first {history[0]:.5f} -> last {history[-1]:.5f}")
    return history, noisy_error, denoised_error


if __name__ == "__main__":
    main()
