"""emberflow's trainer: a TensorFlow-2-like API in Python. ``import trainer as tf``.

Eager tensors and variables on NumPy (CPU) or CuPy (GPU), a gradient tape, one registry of ops, and
Keras-style models under ``trainer.keras``.
"""

from trainer import config, math, nn, random  # noqa: F401
from trainer.backend import device
from trainer.graph import function
from trainer.graph.control_flow import cond, while_loop
from trainer.dtypes import (  # noqa: F401
    DType,
    as_dtype,
    bool_ as bool,  # noqa: A004 - tf.bool
    double,
    float16,
    float32,
    float64,
    half,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from trainer.ops.array_ops import (  # noqa: F401
    broadcast_to,
    clip_by_value,
    concat,
    expand_dims,
    fill,
    gather,
    identity,
    one_hot,
    ones,
    ones_like,
    pad,
    range,
    rank,
    reshape,
    shape,
    size,
    slice,
    squeeze,
    stack,
    stop_gradient,
    transpose,
    unstack,
    where,
    zeros,
    zeros_like,
)
from trainer.ops.math_ops import (  # noqa: F401
    abs,
    add,
    add_n,
    argmax,
    argmin,
    cast,
    ceil,
    cos,
    divide,
    equal,
    exp,
    floor,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    pow,
    reduce_all,
    reduce_any,
    reduce_logsumexp,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    truediv,
)
from trainer.shapes import TensorShape, TensorSpec
from trainer.tape import GradientTape, UnconnectedGradients
from trainer.tensor import Tensor, constant, convert_to_tensor
from trainer.variables import Variable, name_scope

newaxis = None
__version__ = "0.1.0"


def __getattr__(name):
    # keras and data import the whole layer stack; load them on first use so `import trainer` stays quick.
    if name in ("keras", "data", "summary", "train", "estimator", "feature_column"):
        import importlib  # noqa: PLC0415

        module = importlib.import_module(f"trainer.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'trainer' has no attribute '{name}' (not supported by emberflow)")
