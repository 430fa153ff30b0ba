"""asv suites: one training step of the digits model, and a cold-process step.

The model is the README's digits example: Conv2D(16, 3, "same", relu) ->
Conv2D(32, 3, "same", relu) -> MaxPooling2D(2) -> Flatten -> Dense(10) on a
batch of 32 8x8x1 images, Adam(1e-3), SparseCategoricalCrossentropy
(from_logits=True), one GradientTape step + apply_gradients.
"""

import numba
import numpy as np

THREADS = 2
BATCH = 32
IMAGE_SHAPE = (8, 8, 1)
CLASSES = 10


def build_digits_step(seed=0):
    """(step, forward): closures running one training step / one forward pass."""
    import numconv
    from numconv import layers, losses, optimizers

    rng = np.random.default_rng(seed)
    images = rng.random((BATCH, *IMAGE_SHAPE), dtype=np.float32)
    labels = rng.integers(0, CLASSES, size=BATCH)
    model_layers = [
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(CLASSES),
    ]
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = optimizers.Adam(1e-3)

    def forward():
        outputs = images
        for layer in model_layers:
            outputs = layer(outputs)
        return outputs

    forward()  # builds the layers, so their weights exist below
    variables = [weight for layer in model_layers for weight in layer.trainable_weights]

    def step():
        with numconv.GradientTape() as tape:
            loss = loss_fn(labels, forward())
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step, forward


class DigitsTraining:
    """One optimisation step (forward, backward, Adam update) and inference."""

    number = 0
    repeat = (1, 10, 3.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 300

    def setup(self):
        numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
        self.step, self.forward = build_digits_step()
        self.step()  # compiles or loads every kernel the step needs

    def time_train_step(self):
        self.step()

    def time_predict(self):
        self.forward()

    def peakmem_train_step(self):
        self.step()


class DigitsFreshProcess:
    """A new interpreter: import numconv, build the model, run one step.

    With a warm Numba cache this is what a user's script pays before its first
    step; asv runs it in a fresh process each time.
    """

    repeat = (1, 3, 20.0)
    number = 1
    timeout = 600

    def setup(self):
        # A first run fills the on-disk cache, so the timing measures loading.
        step, _ = build_digits_step()
        step()

    def timeraw_import_and_step(self):
        return (
            "import sys\n"
            # Appended, not prepended: the repository root also holds a numconv
            # source tree, and the installed numconv under test must win.
            f"sys.path.append({_benchmarks_parent()!r})\n"
            "from benchmarks.bench_training import build_digits_step\n"
            "step, _ = build_digits_step()\n"
            "step()\n"
        )


def _benchmarks_parent():
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
