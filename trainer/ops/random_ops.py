"""Random numbers: ``tf.random.*`` and the seeded generator that initializers and dropout share.

Draws are made with NumPy's PCG64 generator on the CPU and then placed on the tensor's device, so a
seeded run gives the same numbers on NumPy and on CuPy.
"""

from __future__ import annotations

import numpy as np

from trainer import backend, dtypes
from trainer.ops.registry import Spec, execute, register
from trainer.shapes import TensorShape
from trainer.tensor import convert_to_tensor

_generator = np.random.default_rng()


def set_seed(seed: int) -> None:
    """``tf.random.set_seed``: makes every later random draw (initializers, dropout, shuffles) repeatable."""
    global _generator
    _generator = np.random.default_rng(int(seed))


def generator(seed=None) -> np.random.Generator:
    """The global generator, or a fresh one for an op-level ``seed``."""
    return _generator if seed is None else np.random.default_rng(int(seed))


def _place(array):
    xp = backend.default_module()
    return array if xp is np else xp.asarray(array)


def _random_infer(*like, shape=None, dtype, **_attrs):
    return Spec(tuple(shape) if like == () else like[0].shape, dtype)


@register("random_uniform", infer=_random_infer, differentiable=False, training_only=True, stateful=True)
def random_uniform_op(xp, *like, shape=None, minval, maxval, dtype, seed):
    """Uniform draws in [minval, maxval); with an input, shaped like it (for dropout masks)."""
    dims = like[0].shape if like else shape
    values = generator(seed).uniform(minval, maxval, size=dims).astype(dtype.as_numpy_dtype)
    return values if xp is np else xp.asarray(values)


@register("random_normal", infer=_random_infer, differentiable=False, training_only=True, stateful=True)
def random_normal_op(xp, *like, shape=None, mean, stddev, dtype, seed):
    dims = like[0].shape if like else shape
    values = generator(seed).normal(mean, stddev, size=dims).astype(dtype.as_numpy_dtype)
    return values if xp is np else xp.asarray(values)


def uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None, name=None):
    dtype = dtypes.as_dtype(dtype)
    if maxval is None:
        maxval = 1
    if dtype.is_integer:
        values = generator(seed).integers(minval, maxval, size=tuple(TensorShape(shape).as_list()))
        return convert_to_tensor(_place(values.astype(dtype.as_numpy_dtype)))
    attrs = {"shape": tuple(TensorShape(shape).as_list()), "minval": float(minval), "maxval": float(maxval), "dtype": dtype, "seed": seed}
    return execute(random_uniform_op, (), attrs)


def uniform_like(x, seed=None):
    """Uniform [0, 1) draws shaped like ``x`` (known at run time even when traced with ``None`` dims)."""
    attrs = {"minval": 0.0, "maxval": 1.0, "dtype": x.dtype, "seed": seed}
    return execute(random_uniform_op, (x,), attrs)


def normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    attrs = {"shape": tuple(TensorShape(shape).as_list()), "mean": float(mean), "stddev": float(stddev), "dtype": dtypes.as_dtype(dtype), "seed": seed}
    return execute(random_normal_op, (), attrs)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal draws re-drawn until they lie within two standard deviations of the mean."""
    dims = tuple(TensorShape(shape).as_list())
    rng = generator(seed)
    values = rng.standard_normal(size=dims)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2
    array = (values * stddev + mean).astype(dtypes.as_dtype(dtype).as_numpy_dtype)
    return convert_to_tensor(_place(array))


def shuffle(value, seed=None, name=None):
    x = convert_to_tensor(value)
    from trainer.ops.array_ops import gather  # noqa: PLC0415

    order = generator(seed).permutation(x.shape[0])
    return gather(x, order.astype(np.int32), axis=0)
