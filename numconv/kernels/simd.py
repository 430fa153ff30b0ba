"""Whole-register vector values for kernels that keep operands in registers.

LLVM vectorises Numba loops one innermost loop at a time, so a value that
several output pixels share (a kernel tap's weights) is loaded again for every
pixel: those loops are bound by loads, not multiplications.  The functions
here give a kernel one CPU vector register as a value it can hold in a local
variable, so it can load the weights once and reuse them across a row of
pixels:

* ``load(array, index)``: elements ``index, ..., index + lanes(array) - 1`` of
  a C-contiguous array, counted in C order (so a 2-D array needs no reshape,
  which costs a call in Numba), as one vector; no bounds check, like the
  kernels' other loads;
* ``store(array, index, vector)``: the reverse;
* ``splat(array, value)``: a vector of ``array``'s dtype, every lane ``value``;
* ``broadcast(array, index)``: every lane element ``index`` (C order) of a
  C-contiguous array;
* ``fma(a, b, c)``: ``a * b + c`` lane by lane, rounded once;
* ``add(a, b)``: ``a + b`` lane by lane;
* ``spread(vector, group, index)``: every run of ``group`` lanes filled with
  its lane ``index`` (``group`` and ``index`` literal ints): the input channel
  ``index`` of each group of ``group`` channels, for the filters of its group;
* ``lanes(array)``: lanes of a vector of ``array``'s dtype (16 float32 or 8
  float64 where the CPU has 512-bit registers, half that otherwise).

In ``@njit`` code each is one LLVM vector instruction (an intrinsic).  From
Python (``NUMBA_DISABLE_JIT=1``, or a kernel's ``py_func``) each is the same
operation on small NumPy arrays, so kernels stay testable without the JIT.
"""

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

# The widest vector registers of this CPU.  The kernel cache is kept per CPU,
# so compiled code never meets a CPU with narrower registers.
VECTOR_BITS = 512 if binding.get_host_cpu_features().get("avx512f", False) else 256


def lanes(array):
    """Lanes of one vector of ``array``'s dtype."""
    return VECTOR_BITS // (8 * array.dtype.itemsize)


def load(array, index):
    """Elements ``[index, index + lanes(array))`` of a C-contiguous array, as one vector."""
    return array.reshape(-1)[index:index + lanes(array)].copy()


def store(array, index, vector):
    """Write ``vector`` to elements ``[index, index + lanes(array))`` of a C-contiguous array."""
    array.reshape(-1)[index:index + lanes(array)] = vector


def splat(array, value):
    """A vector of ``array``'s dtype whose every lane is ``value``."""
    return np.full(lanes(array), value, dtype=array.dtype)


def broadcast(array, index):
    """A vector whose every lane is element ``index`` (C order) of a C-contiguous array."""
    return splat(array, array.reshape(-1)[index])


def fma(a, b, c):
    """``a * b + c`` lane by lane, rounded once."""
    wide = np.longdouble
    return (a.astype(wide) * b.astype(wide) + c.astype(wide)).astype(a.dtype)


def add(a, b):
    """``a + b`` lane by lane."""
    return a + b


def spread(vector, group, index):
    """Each run of ``group`` lanes filled with its lane ``index``."""
    return np.repeat(vector.reshape(-1, group)[:, index], group)


class Vector(types.Type):
    """Numba type of one vector register of ``dtype`` values."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.count = VECTOR_BITS // dtype.bitwidth
        super().__init__(name=f"Vector({dtype} x {self.count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _element_pointer(context, builder, array_type, array, index, value_type):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), ir.PointerType(value_type))


def _splat_value(builder, vector_type, scalar):
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar,
                                 ir.Constant(ir.IntType(32), 0))
    everywhere = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count),
                             [0] * vector_type.count)
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), everywhere)


@intrinsic
def _load(typingctx, array, index):
    if not (isinstance(array, types.Array) and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        value_type = context.get_value_type(signature.return_type)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1],
                                   value_type)
        return builder.load(pointer, align=signature.args[0].dtype.bitwidth // 8)

    return Vector(array.dtype)(array, index), codegen


@intrinsic
def _store(typingctx, array, index, vector):
    if not (isinstance(array, types.Array) and array.layout == "C" and isinstance(vector, Vector)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1],
                                   args[2].type)
        builder.store(args[2], pointer, align=signature.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(array, index, vector), codegen


@intrinsic
def _splat(typingctx, array, value):
    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(signature.return_type)
        scalar = context.cast(builder, args[1], signature.args[1], signature.args[0].dtype)
        return _splat_value(builder, vector_type, scalar)

    return Vector(array.dtype)(array, value), codegen


@intrinsic
def _broadcast(typingctx, array, index):
    if not (isinstance(array, types.Array) and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(signature.return_type)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1],
                                   vector_type.element)
        return _splat_value(builder, vector_type, builder.load(pointer))

    return Vector(array.dtype)(array, index), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    def codegen(context, builder, signature, args):
        vector_type = args[0].type
        name = f"llvm.fma.v{vector_type.count}f{signature.args[0].dtype.bitwidth}"
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector_type, [vector_type] * 3), name)
        return builder.call(function, args)

    if not (isinstance(a, Vector) and a == b == c):
        return None
    return a(a, b, c), codegen


@intrinsic
def _add(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])

    if not (isinstance(a, Vector) and a == b):
        return None
    return a(a, b), codegen


@intrinsic(prefer_literal=True)
def _spread(typingctx, vector, group, index):
    if not (isinstance(vector, Vector) and isinstance(group, types.IntegerLiteral)
            and isinstance(index, types.IntegerLiteral)):
        return None
    size, lane = group.literal_value, index.literal_value

    def codegen(context, builder, signature, args):
        vector_type = args[0].type
        mask = [(j // size) * size + lane for j in range(vector_type.count)]
        return builder.shuffle_vector(
            args[0], ir.Constant(vector_type, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), mask))

    return vector(vector, group, index), codegen


@overload(lanes)
def _lanes_jit(array):
    count = VECTOR_BITS // array.dtype.bitwidth
    return lambda array: count


@overload(load)
def _load_jit(array, index):
    return lambda array, index: _load(array, index)


@overload(store)
def _store_jit(array, index, vector):
    return lambda array, index, vector: _store(array, index, vector)


@overload(splat)
def _splat_jit(array, value):
    return lambda array, value: _splat(array, value)


@overload(broadcast)
def _broadcast_jit(array, index):
    return lambda array, index: _broadcast(array, index)


@overload(fma)
def _fma_jit(a, b, c):
    return lambda a, b, c: _fma(a, b, c)


@overload(add)
def _add_jit(a, b):
    return lambda a, b: _add(a, b)


@overload(spread, prefer_literal=True)
def _spread_jit(vector, group, index):
    return lambda vector, group, index: _spread(vector, group, index)
