"""Array-level operations: NumPy arrays in, NumPy arrays out.

Each function checks and normalises its arguments, prepares the layout and
dtype its Numba kernel expects, and dispatches to that kernel.
"""

from .conv import conv2d, conv2d_grads
from .pooling import avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad
