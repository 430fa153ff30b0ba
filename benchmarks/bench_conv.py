"""asv suites: numconv.nn.conv2d and conv2d_grads over the shape suite.

One class per pass (forward, input gradient, kernel gradient, forward + full
backward), each parameterised by shape x dtype, so that ``setup`` warms the
JIT for the one operation its class times.  Kernels run on 2 threads.
"""

import numba

from .shapes import DTYPES, SHAPE_NAMES, SHAPES, conv_options, make_arrays

THREADS = 2


def use_benchmark_threads():
    """Run parallel kernels on 2 threads (fewer if Numba was limited below that)."""
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


def _initialise_numba():
    """Load the serial kernels and Numba's compiler once, before asv forks.

    Under asv's "forkserver" launch method every (benchmark, parameter) process
    is forked from the one that imported this module, so work done here is
    paid once instead of once per case.  Tiny inputs keep every call on the
    serial kernels: no thread pool exists yet, so forking stays safe.  At
    commits where numconv.nn is missing or incomplete this does nothing.
    """
    import numpy as np

    try:
        from numconv import nn

        for dtype in DTYPES:
            x = np.ones((1, 4, 4, 2), dtype)
            kernel = np.ones((3, 3, 2, 2), dtype)
            output = nn.conv2d(x, kernel, np.zeros(2, dtype), padding="same")
            nn.conv2d_grads(x, kernel, output, padding="same")
    except Exception:  # noqa: BLE001  (setup() reports the real failure per case)
        pass


_initialise_numba()


class _ConvPass:
    """Shared machinery; subclasses name the pass and implement ``run``."""

    params = [list(SHAPE_NAMES), list(DTYPES)]
    param_names = ["shape", "dtype"]
    # Every (shape, dtype) runs in its own process: keep each one short so the
    # whole suite stays tractable on 2 shared cores.  setup() already warmed the
    # JIT, so no extra warm-up is needed; number=0 lets asv batch the tiny cases.
    number = 0
    repeat = (1, 5, 3.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 300

    def setup(self, shape, dtype):
        from numconv import nn

        use_benchmark_threads()
        self.nn = nn
        self.case = SHAPES[shape]
        self.options = conv_options(self.case)
        self.x, self.kernel, self.bias, self.grad_output = make_arrays(self.case, dtype)
        self.run()  # compiles or loads the kernels; NotImplementedError skips the case

    def run(self):
        raise NotImplementedError


class ConvForward(_ConvPass):
    """y = conv2d(x, kernel) + bias."""

    def run(self):
        return self.nn.conv2d(self.x, self.kernel, self.bias, **self.options)

    def time_conv2d(self, shape, dtype):
        self.run()

    def peakmem_conv2d(self, shape, dtype):
        self.run()


class ConvGradInput(_ConvPass):
    """Gradient with respect to the input only."""

    def run(self):
        return self.nn.conv2d_grads(
            self.x, self.kernel, self.grad_output, wrt=("input",), **self.options
        )

    def time_conv2d_grad_input(self, shape, dtype):
        self.run()


class ConvGradKernel(_ConvPass):
    """Gradient with respect to the kernel only."""

    def run(self):
        return self.nn.conv2d_grads(
            self.x, self.kernel, self.grad_output, wrt=("kernel",), **self.options
        )

    def time_conv2d_grad_kernel(self, shape, dtype):
        self.run()


class ConvForwardBackward(_ConvPass):
    """Forward pass, then the input, kernel and bias gradients."""

    def run(self):
        output = self.nn.conv2d(self.x, self.kernel, self.bias, **self.options)
        grads = self.nn.conv2d_grads(
            self.x, self.kernel, self.grad_output, wrt=("input", "kernel", "bias"), **self.options
        )
        return output, grads

    def time_conv2d_forward_backward(self, shape, dtype):
        self.run()

    def peakmem_conv2d_forward_backward(self, shape, dtype):
        self.run()
