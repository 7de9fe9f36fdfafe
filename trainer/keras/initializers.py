"""``tf.keras.initializers``: how layers fill their weights when they are built.

Draws come from the seeded generator in ``trainer.ops.random_ops`` (``tf.random.set_seed`` /
``tf.keras.utils.set_random_seed``) and are made on the CPU in float64, then cast and placed: the same
seed gives the same weights on NumPy and CuPy.
"""

from __future__ import annotations

import math

import numpy as np

from trainer import backend, dtypes
from trainer.keras.saving.registration import deserialize as _deserialize
from trainer.keras.saving.registration import keras_serializable
from trainer.keras.saving.registration import serialize as _serialize
from trainer.ops import random_ops
from trainer.tensor import Tensor


class Initializer:
    """Base class: ``initializer(shape, dtype)`` returns a new tensor."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @staticmethod
    def _tensor(array: np.ndarray, dtype) -> Tensor:
        dtype = dtypes.as_dtype(dtype or "float32")
        array = array.astype(dtype.as_numpy_dtype)
        xp = backend.default_module()
        return Tensor(array if xp is np else xp.asarray(array))


@keras_serializable("initializers", "zeros")
class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return self._tensor(np.zeros(tuple(shape)), dtype)


@keras_serializable("initializers", "ones")
class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return self._tensor(np.ones(tuple(shape)), dtype)


@keras_serializable("initializers", "constant")
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return self._tensor(np.full(tuple(shape), self.value, dtype=np.float64), dtype)

    def get_config(self):
        return {"value": self.value}


class _Seeded(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _generator(self):
        return random_ops.generator(self.seed)

    def get_config(self):
        return {"seed": self.seed}


@keras_serializable("initializers", "random_normal")
class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return self._tensor(self._generator().normal(self.mean, self.stddev, size=tuple(shape)), dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@keras_serializable("initializers", "random_uniform")
class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self._tensor(self._generator().uniform(self.minval, self.maxval, size=tuple(shape)), dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(generator, shape, stddev):
    values = generator.standard_normal(size=shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = generator.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2
    return values * stddev


@keras_serializable("initializers", "truncated_normal")
class TruncatedNormal(RandomNormal):
    def __call__(self, shape, dtype=None):
        return self._tensor(self.mean + _truncated_normal(self._generator(), tuple(shape), self.stddev), dtype)


def compute_fans(shape) -> tuple[float, float]:
    """Keras's fan-in/fan-out: for conv kernels [kh, kw, in, out] the receptive field multiplies both."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


@keras_serializable("initializers", "variance_scaling")
class VarianceScaling(_Seeded):
    """Draws with variance ``scale / n``, n being fan_in, fan_out or their average (Keras's rule)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling scale must be positive, got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform", "normal"):
            raise ValueError(f"unknown VarianceScaling distribution {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        generator, shape = self._generator(), tuple(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            values = generator.uniform(-limit, limit, size=shape)
        elif self.distribution == "truncated_normal":
            # 0.8796... is the stddev of a unit normal truncated to two standard deviations.
            values = _truncated_normal(generator, shape, math.sqrt(variance) / 0.87962566103423978)
        else:
            values = generator.normal(0.0, math.sqrt(variance), size=shape)
        return self._tensor(values, dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _named_variance_scaling(class_name, alias, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale=scale, mode=mode, distribution=distribution, seed=seed)

    def get_config(self):
        return {"seed": self.seed}

    cls = type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": f"VarianceScaling({scale}, {mode}, {distribution})."})
    cls.__module__ = __name__
    return keras_serializable("initializers", alias)(cls)


GlorotUniform = _named_variance_scaling("GlorotUniform", "glorot_uniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _named_variance_scaling("GlorotNormal", "glorot_normal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _named_variance_scaling("HeNormal", "he_normal", 2.0, "fan_in", "truncated_normal")
HeUniform = _named_variance_scaling("HeUniform", "he_uniform", 2.0, "fan_in", "uniform")
LecunNormal = _named_variance_scaling("LecunNormal", "lecun_normal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _named_variance_scaling("LecunUniform", "lecun_uniform", 1.0, "fan_in", "uniform")


@keras_serializable("initializers", "orthogonal")
class Orthogonal(_Seeded):
    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        rows, cols = math.prod(shape[:-1]), shape[-1]
        flat = self._generator().normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self._tensor(self.gain * q[:rows, :cols].reshape(shape), dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@keras_serializable("initializers", "identity")
class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D shape, got {tuple(shape)}")
        return self._tensor(self.gain * np.eye(*shape), dtype)

    def get_config(self):
        return {"gain": self.gain}


def get(identifier):
    """An initializer from a name ("glorot_uniform"), a config dict, an instance or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return _deserialize("initializers", identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret initializer {identifier!r}")


def serialize(initializer):
    return _serialize(initializer)


deserialize = get
