"""One small, valid, randomly shaped example per registered op, shared by the registry and gradient tests.

Every op in ``trainer.ops.registry.REGISTRY`` needs a builder in ``CASES``: the tests fail for an op
without one, so a new op arrives with its example. A builder takes a NumPy generator and returns an
``OpCase``: input arrays in the op's valid domain (floating inputs are float64, so that finite
differences are accurate) and its attributes. Inputs of differentiable ops stay away from kinks (0 for
``abs`` and ``relu``, ties for ``maximum``) by a margin much larger than the finite-difference step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import trainer.ops  # noqa: F401 - registers every op
from trainer import dtypes


@dataclass
class OpCase:
    """Inputs and attributes for one op application, and how its gradient is expected to behave."""

    inputs: list
    attrs: dict = field(default_factory=dict)
    gradient_unsupported: str | None = None  # why its gradient raises GradientNotSupportedError
    epsilon: float = 1e-6  # finite-difference step
    tolerance: float = 1e-6  # relative and absolute tolerance against finite differences
    # Inputs held fixed by the gradient tests: ones that must stay consistent with another input (a
    # pooled maximum and the image it came from), where moving one alone leaves the op's domain.
    fixed: tuple = ()


CASES: dict[str, Callable[[np.random.Generator], OpCase]] = {}


def case(*names):
    """Registers a case builder for the ops ``names``; the builder gets the op name and a generator."""

    def decorate(builder):
        for name in names:
            if name in CASES:
                raise ValueError(f"op '{name}' has two cases")
            CASES[name] = lambda rng, name=name: builder(name, rng)
        return builder

    return decorate


# -- value and shape helpers ----------------------------------------------------------------------------


def shape(rng, rank=None, low=1, high=4) -> tuple:
    rank = int(rng.integers(0, 4)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(low, high + 1, size=rank))


def normal(rng, dims):
    return rng.standard_normal(dims)


def positive(rng, dims):
    return rng.uniform(0.5, 2.0, size=dims)


def away_from(rng, dims, kinks=(0.0,), low=-2.0, high=2.0, margin=0.1):
    """Uniform values in [low, high] at least ``margin`` away from every kink (where a derivative jumps)."""
    values = rng.uniform(low, high, size=dims)
    for kink in kinks:
        close = np.abs(values - kink) < margin
        values = np.where(close, kink + np.where(values >= kink, margin, -margin) * 2, values)
    return values


def broadcast_pair(rng) -> tuple:
    """Two shapes that broadcast together: the second drops leading axes and sets some to 1."""
    full = shape(rng, int(rng.integers(0, 4)))
    other = list(full[int(rng.integers(0, len(full) + 1)) :])
    other = [1 if rng.random() < 0.3 else d for d in other]
    return (full, tuple(other)) if rng.random() < 0.5 else (tuple(other), full)


def distinct(rng, dims):
    """Values whose pairwise gaps are at least 0.05, so maxima and ties are stable under a small step."""
    count = math.prod(dims)
    return (rng.permutation(count) * 0.05 + rng.uniform(-1, 1)).reshape(dims)


def random_axis(rng, rank):
    """An ``axis`` attribute for a reduction: None, one axis, or a tuple of axes."""
    if rank == 0 or rng.random() < 0.25:
        return None
    if rng.random() < 0.5:
        return int(rng.integers(-rank, rank))
    return tuple(sorted({int(a) for a in rng.integers(0, rank, size=2)}))


# -- elementwise -------------------------------------------------------------------------------------------


@case("add", "subtract", "multiply")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([normal(rng, x_shape), normal(rng, y_shape)])


@case("divide")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([normal(rng, x_shape), away_from(rng, y_shape, margin=0.5)])


@case("maximum", "minimum")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    values = distinct(rng, (math.prod(x_shape) + math.prod(y_shape),)).ravel()
    return OpCase([values[: math.prod(x_shape)].reshape(x_shape), values[math.prod(x_shape) :].reshape(y_shape)])


@case("pow")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([positive(rng, x_shape), rng.uniform(-2, 2, size=y_shape)])


@case("floordiv", "floormod")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([normal(rng, x_shape) * 5, positive(rng, y_shape)])


@case("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([rng.integers(0, 3, size=dims).astype(np.int32) for dims in (x_shape, y_shape)])


@case("logical_and", "logical_or")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    return OpCase([rng.random(x_shape) < 0.5, rng.random(y_shape) < 0.5])


@case("negative", "exp", "square", "tanh", "sin", "cos", "sigmoid", "erf", "identity", "floor", "ceil", "round", "sign")
def _(name, rng):
    return OpCase([normal(rng, shape(rng)) * 2])


@case("abs", "reciprocal")
def _(name, rng):
    return OpCase([away_from(rng, shape(rng), margin=0.3)])


@case("log", "log1p", "sqrt", "rsqrt")
def _(name, rng):
    return OpCase([positive(rng, shape(rng))])


@case("logical_not")
def _(name, rng):
    return OpCase([rng.random(shape(rng)) < 0.5])


@case("zeros_like", "ones_like", "stop_gradient")
def _(name, rng):
    return OpCase([normal(rng, shape(rng))])


@case("relu", "relu_grad")
def _(name, rng):
    dims = shape(rng)
    if name == "relu":
        return OpCase([away_from(rng, dims)])
    return OpCase([normal(rng, dims), away_from(rng, dims)])  # (grad, relu output): the mask must not flip


@case("relu6")
def _(name, rng):
    return OpCase([away_from(rng, shape(rng), kinks=(0.0, 6.0), low=-2, high=8)])


@case("leaky_relu")
def _(name, rng):
    return OpCase([away_from(rng, shape(rng))], {"alpha": float(rng.uniform(0.01, 0.5))})


@case("softmax", "log_softmax")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    return OpCase([normal(rng, dims)], {"axis": int(rng.integers(0, len(dims)))})


@case("sparse_softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_grad")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    logits = normal(rng, dims) * 3
    labels = rng.integers(0, dims[-1], size=dims[:-1]).astype(rng.choice([np.int32, np.int64]))
    if name == "sparse_softmax_cross_entropy_with_logits":
        return OpCase([logits, labels])
    unsupported = "the fused crossentropy gradient has no gradient of its own, as TensorFlow's"
    return OpCase([logits, labels, normal(rng, dims[:-1])], gradient_unsupported=unsupported)


@case("sparse_softmax_cross_entropy_and_grad")
def _(name, rng):
    case = CASES["sparse_softmax_cross_entropy_grad"](rng)
    case.gradient_unsupported = "it appears only in optimized training steps, after the gradients are taken"
    if rng.integers(0, 2):  # an upstream gradient that the kernel broadcasts
        case.inputs[2] = normal(rng, (1,) * min(1, case.inputs[2].ndim))
    return case


@case("cast")
def _(name, rng):
    # float64 -> float32 loses precision, so a larger step keeps the finite differences accurate.
    return OpCase([normal(rng, shape(rng))], {"dtype": dtypes.float32}, epsilon=1e-2, tolerance=1e-4)


@case("sum_to_like", "broadcast_like")
def _(name, rng):
    full, small = sorted(broadcast_pair(rng), key=len, reverse=True)
    full = tuple(max(a, b) for a, b in zip(full, (1,) * (len(full) - len(small)) + small))
    if name == "sum_to_like":
        return OpCase([normal(rng, full), normal(rng, small)])
    return OpCase([normal(rng, small), normal(rng, full)])


# -- reductions and matmul ------------------------------------------------------------------------------------


@case("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod")
def _(name, rng):
    dims = shape(rng, int(rng.integers(0, 4)))
    values = away_from(rng, dims, margin=0.3) if name == "reduce_prod" else distinct(rng, dims)
    return OpCase([values], {"axis": random_axis(rng, len(dims)), "keepdims": bool(rng.random() < 0.5)})


@case("argmax", "argmin")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    return OpCase([normal(rng, dims)], {"axis": int(rng.integers(-len(dims), len(dims))), "output_type": dtypes.int64})


@case("matmul")
def _(name, rng):
    m, k, n = (int(d) for d in rng.integers(1, 5, size=3))
    transpose_a, transpose_b = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    batch_a, batch_b = broadcast_pair(rng)
    batch_a, batch_b = batch_a[-2:], batch_b[-2:]  # keep the products small
    a = normal(rng, batch_a + ((k, m) if transpose_a else (m, k)))
    b = normal(rng, batch_b + ((n, k) if transpose_b else (k, n)))
    return OpCase([a, b], {"transpose_a": transpose_a, "transpose_b": transpose_b})


# -- shapes and layout ------------------------------------------------------------------------------------------


@case("reshape")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    size = math.prod(dims)
    target = (-1,) if rng.random() < 0.5 else (dims[0], -1, 1)
    return OpCase([normal(rng, dims)], {"shape": target if size else (0,)})


@case("reshape_like")
def _(name, rng):
    dims = shape(rng, 3)
    return OpCase([normal(rng, (math.prod(dims),)), normal(rng, dims)])


@case("transpose")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    return OpCase([normal(rng, dims)], {"perm": tuple(int(p) for p in rng.permutation(len(dims)))})


@case("concat", "concat_piece")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)))
    axis = int(rng.integers(0, len(dims)))
    sizes = rng.integers(1, 4, size=int(rng.integers(2, 4)))
    pieces = [normal(rng, dims[:axis] + (int(size),) + dims[axis + 1 :]) for size in sizes]
    if name == "concat":
        return OpCase(pieces, {"axis": axis})
    grad = normal(rng, dims[:axis] + (sum(p.shape[axis] for p in pieces),) + dims[axis + 1 :])
    return OpCase(
        [grad, *pieces],
        {"axis": axis, "index": int(rng.integers(0, len(pieces)))},
        gradient_unsupported="concat_piece declares second derivatives through concat unsupported",
    )


@case("squeeze")
def _(name, rng):
    dims = list(shape(rng, 3))
    axis = int(rng.integers(0, 3))
    dims[axis] = 1
    return OpCase([normal(rng, tuple(dims))], {"axis": axis if rng.random() < 0.5 else None})


@case("expand_dims")
def _(name, rng):
    dims = shape(rng)
    return OpCase([normal(rng, dims)], {"axis": int(rng.integers(-len(dims) - 1, len(dims) + 1))})


@case("broadcast_to")
def _(name, rng):
    full, small = sorted(broadcast_pair(rng), key=len, reverse=True)
    full = tuple(max(a, b) for a, b in zip(full, (1,) * (len(full) - len(small)) + small))
    return OpCase([normal(rng, small)], {"shape": full})


@case("gather", "gather_grad")
def _(name, rng):
    params_shape = shape(rng, int(rng.integers(1, 4)))
    axis = int(rng.integers(0, len(params_shape)))
    indices = rng.integers(0, params_shape[axis], size=shape(rng, int(rng.integers(0, 3)))).astype(np.int32)
    if name == "gather":
        return OpCase([normal(rng, params_shape), indices], {"axis": axis})
    grad_shape = params_shape[:axis] + indices.shape + params_shape[axis + 1 :]
    return OpCase([normal(rng, grad_shape), indices, normal(rng, params_shape)], {"axis": axis})


@case("pad")
def _(name, rng):
    dims = shape(rng)
    paddings = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, size=(len(dims), 2)))
    return OpCase([normal(rng, dims), normal(rng, ())], {"paddings": paddings})


def _slice_spec(rng, dims) -> tuple:
    """A random basic-indexing spec over ``dims``: slices (steps 1, 2, -1), integer indices and a newaxis."""
    spec = [("newaxis",)] if rng.random() < 0.3 else []
    for size in dims:
        if rng.random() < 0.25:
            spec.append(("index", int(rng.integers(-size, size))))
        else:
            step = int(rng.choice([1, 2, -1]))
            start = int(rng.integers(-size, size)) if rng.random() < 0.7 else None
            spec.append(("slice", start, None, step))
    return tuple(spec)


@case("strided_slice", "strided_slice_grad")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 4)), low=2, high=5)
    spec = _slice_spec(rng, dims)
    x = normal(rng, dims)
    if name == "strided_slice":
        return OpCase([x], {"spec": spec})
    grad = normal(rng, x[tuple(_python_index(item) for item in spec)].shape)
    return OpCase([grad, x], {"spec": spec})


def _python_index(item):
    if item[0] == "newaxis":
        return None
    if item[0] == "index":
        return item[1]
    return slice(*item[1:])


@case("where")
def _(name, rng):
    x_shape, y_shape = broadcast_pair(rng)
    condition_shape = tuple(1 if rng.random() < 0.3 else d for d in np.broadcast_shapes(x_shape, y_shape)[-2:])
    return OpCase([rng.random(condition_shape) < 0.5, normal(rng, x_shape), normal(rng, y_shape)])


@case("check_index_range")
def _(name, rng):
    indices = rng.integers(0, 4, size=shape(rng, int(rng.integers(0, 3)))).astype(np.int64)
    return OpCase([indices], {"depth": 4, "ignore": None, "context": "labels"})


@case("one_hot")
def _(name, rng):
    indices = rng.integers(-1, 4, size=shape(rng, int(rng.integers(0, 3)))).astype(np.int32)
    axis = int(rng.integers(-1, indices.ndim + 1))
    attrs = {"depth": 4, "on_value": 2.0, "off_value": -1.0, "axis": axis, "dtype": dtypes.float32}
    return OpCase([indices], attrs)


@case("fill")
def _(name, rng):
    return OpCase([], {"shape": shape(rng), "value": 1.5, "dtype": dtypes.float64})


@case("shape", "size")
def _(name, rng):
    return OpCase([normal(rng, shape(rng))], {"out_type": dtypes.int32})


@case("range")
def _(name, rng):
    start, delta = int(rng.integers(-3, 3)), int(rng.integers(1, 3))
    return OpCase([], {"start": start, "limit": start + int(rng.integers(0, 7)), "delta": delta, "dtype": dtypes.int32})


# -- state and randomness ----------------------------------------------------------------------------------


@case("random_uniform", "random_normal")
def _(name, rng):
    attrs = {"minval": 0.0, "maxval": 1.0} if name == "random_uniform" else {"mean": 0.0, "stddev": 1.0}
    attrs.update(dtype=dtypes.float32, seed=int(rng.integers(0, 100)))
    if rng.random() < 0.5:
        return OpCase([], {**attrs, "shape": shape(rng)})
    return OpCase([normal(rng, shape(rng))], attrs)  # shaped like an input, as dropout masks are


@case("assign_variable")
def _(name, rng):
    dims = shape(rng)
    return OpCase([normal(rng, dims), normal(rng, dims)], {"mode": str(rng.choice(["set", "add", "subtract"]))})


@case("apply_gradient_descent", "apply_momentum", "apply_adam", "apply_adam_amsgrad", "apply_weight_decay")
def _(name, rng):
    dims = shape(rng)
    variable, gradient, rate = normal(rng, dims), normal(rng, dims), positive(rng, ()) * 0.01
    adam = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    if name == "apply_gradient_descent":
        return OpCase([variable, gradient, rate])
    if name == "apply_momentum":
        attrs = {"momentum": 0.9, "nesterov": bool(rng.random() < 0.5)}
        return OpCase([variable, normal(rng, dims), gradient, rate], attrs)
    if name == "apply_adam":
        return OpCase([variable, normal(rng, dims), positive(rng, dims), gradient, rate], adam)
    if name == "apply_adam_amsgrad":
        return OpCase([variable, normal(rng, dims), positive(rng, dims), positive(rng, dims), gradient, rate], adam)
    return OpCase([variable, rate], {"weight_decay": 0.004})


@case("adam_step_size")
def _(name, rng):
    iterations = np.asarray(rng.integers(0, 10_000), dtype=np.int64)
    return OpCase([iterations, positive(rng, ()) * 0.01], {"beta_1": 0.9, "beta_2": 0.999, "dtype": dtypes.float32})


@case("apply_rmsprop")
def _(name, rng):
    dims = shape(rng)
    centered, momentum = bool(rng.random() < 0.5), float(rng.choice([0.0, 0.9]))
    # velocity well above average_gradient**2, so the centered denominator stays positive
    slots = [normal(rng, dims) * 0.1] * centered + [normal(rng, dims)] * (momentum > 0)
    inputs = [normal(rng, dims), rng.uniform(2, 3, size=dims), normal(rng, dims), positive(rng, ()) * 0.01, *slots]
    return OpCase(inputs, {"rho": 0.9, "momentum": momentum, "epsilon": 1e-7, "centered": centered})


# -- convolution and pooling ----------------------------------------------------------------------------------


def output_size(size, kernel, stride, dilation, padding) -> int:
    """TensorFlow's output size of a sliding window along one axis."""
    span = (kernel - 1) * dilation + 1
    return -(-size // stride) if padding == "SAME" else (size - span) // stride + 1


def _window_case(rng, dilate=True):
    """A random image shape, window, strides, dilations and padding for which 'VALID' still fits.

    Up to 5 channels, so both of conv2d's im2col paths (slab copies below 4 channels, one strided copy
    from 4 up) are differentiated.
    """
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 3, size=2))
    dilations = tuple(int(d) for d in rng.integers(1, 3, size=2)) if dilate else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    height, width = (span + int(rng.integers(0, 3)) for span in spans)
    image = (int(rng.integers(1, 3)), height, width, int(rng.integers(1, 6)))
    out = tuple(output_size(image[1 + a], kernel[a], strides[a], dilations[a], padding) for a in range(2))
    return image, kernel, strides, dilations, padding, out


@case(
    "conv2d",
    "conv2d_backprop_input",
    "conv2d_backprop_filter",
    "depthwise_conv2d",
    "depthwise_conv2d_backprop_input",
    "depthwise_conv2d_backprop_filter",
)
def _(name, rng):
    image, kernel, strides, dilations, padding, out = _window_case(rng)
    out_channels = int(rng.integers(1, 4))
    filters = normal(rng, kernel + (image[3], out_channels))
    attrs = {"strides": strides, "padding": padding, "dilations": dilations}
    x = normal(rng, image)
    if name in ("conv2d", "depthwise_conv2d"):
        return OpCase([x, filters], attrs)
    channels = image[3] * out_channels if name.startswith("depthwise") else out_channels
    return OpCase([x, filters, normal(rng, (image[0], *out, channels))], attrs)


@case("conv2d_patches")
def _(name, rng):
    image, kernel, strides, dilations, padding, _ = _window_case(rng)
    return OpCase([normal(rng, image)], {"ksize": kernel, "strides": strides, "padding": padding, "dilations": dilations})


@case("max_pool2d", "avg_pool2d", "max_pool2d_grad", "avg_pool2d_grad", "max_pool2d_grad_grad")
def _(name, rng):
    image, kernel, strides, _, padding, out = _window_case(rng, dilate=False)
    attrs = {"ksize": kernel, "strides": strides, "padding": padding}
    x = distinct(rng, image)  # distinct values: each window's maximum is unique and stays put under a step
    if name in ("max_pool2d", "avg_pool2d"):
        return OpCase([x], attrs)
    if name == "max_pool2d_grad_grad":
        return OpCase([x, normal(rng, image)], attrs)
    return OpCase([x, normal(rng, (image[0], *out, image[3]))], attrs)


@case("max_pool2d_grad_from_output")
def _(name, rng):
    image, kernel, strides, _, padding, out = _window_case(rng, dilate=False)
    attrs = {"ksize": kernel, "strides": strides, "padding": padding}
    x = distinct(rng, image)
    pooled = trainer.ops.conv_ops.max_pool2d_op.forward(np, x, **attrs)
    return OpCase([x, pooled, normal(rng, pooled.shape)], attrs, fixed=(0, 1))


@case("conv2d_phase_patches")
def _(name, rng):
    image, kernel, strides, dilations, padding, out = _window_case(rng)
    # A pool no larger than the output along each axis, so that every phase has a pixel.
    pool = tuple(int(rng.integers(1, min(size, 2) + 1)) for size in out)
    attrs = {"ksize": kernel, "strides": strides, "padding": padding, "dilations": dilations, "pool": pool}
    return OpCase([normal(rng, image)], attrs)


def _phases_case(rng):
    """A phase-major stack (phases, N, H, W, C) with distinct values, so that each maximum is unique."""
    phases = int(rng.integers(1, 5))
    shape = (phases, int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    return distinct(rng, shape)


@case("max_pool_phases")
def _(name, rng):
    stacked = _phases_case(rng)
    activation = str(rng.choice(["none", "relu", "tanh"]))
    bias = [normal(rng, stacked.shape[-1:])] if rng.integers(0, 2) else []
    return OpCase([stacked, *bias], {"activation": activation})


@case("unpool_phases", "pick_phases")
def _(name, rng):
    stacked = _phases_case(rng)
    argmax = stacked.argmax(axis=0).astype(np.int8)
    if name == "pick_phases":
        return OpCase([argmax, stacked], fixed=(0,))
    return OpCase([argmax, normal(rng, stacked.shape[1:])], {"phases": stacked.shape[0]}, fixed=(0,))


@case("interleave_phases", "deinterleave_phases")
def _(name, rng):
    pool = tuple(int(p) for p in rng.integers(1, 3, size=2))
    rows, cols = (int(n) for n in rng.integers(1, 4, size=2))
    size = (rows * pool[0] + int(rng.integers(0, 2)), cols * pool[1] + int(rng.integers(0, 2)))
    batch, channels = (int(n) for n in rng.integers(1, 3, size=2))
    if name == "interleave_phases":
        return OpCase([normal(rng, (pool[0] * pool[1], batch, rows, cols, channels))], {"pool": pool, "size": size})
    return OpCase([normal(rng, (batch, *size, channels))], {"pool": pool, "rows": rows, "cols": cols})


@case("conv2d_backprop_input_from_phases")
def _(name, rng):
    image, kernel, strides, dilations, padding, out = _window_case(rng)
    pool = tuple(int(rng.integers(1, min(size, 2) + 1)) for size in out)
    out_channels = int(rng.integers(1, 4))
    filters = normal(rng, kernel + (image[3], out_channels))
    stacked = normal(rng, (pool[0] * pool[1], image[0], out[0] // pool[0], out[1] // pool[1], out_channels))
    attrs = {"pool": pool, "strides": strides, "padding": padding, "dilations": dilations}
    return OpCase([normal(rng, image), filters, stacked], attrs, fixed=(0,))


@case("unpooled_filter_gradient")
def _(name, rng):
    stacked = _phases_case(rng)
    phases, rows = stacked.shape[0], math.prod(stacked.shape[1:-1])
    argmax = stacked.argmax(axis=0).astype(np.int8)
    patches = normal(rng, (phases * rows, int(rng.integers(1, 5))))
    return OpCase([patches, argmax, normal(rng, stacked.shape[1:])], fixed=(1,))


# -- control flow: the subgraphs come from tracing tf.cond / tf.while_loop on the case's inputs ----------


def _control_flow_node(function, *arrays):
    """The one control-flow node of ``function`` traced on ``arrays`` (without autograph)."""
    import trainer as tf  # noqa: PLC0415 - the cases module must not import the top-level package first

    graph = tf.function(function, autograph=False).get_concrete_function(*[tf.constant(a) for a in arrays]).graph
    return next(node for node in graph.nodes if node.op.name in ("cond", "while"))


@case("cond")
def _(name, rng):
    import trainer as tf  # noqa: PLC0415

    pred, x = np.array(rng.random() < 0.5), normal(rng, shape(rng))
    node = _control_flow_node(lambda p, v: tf.cond(p, lambda: tf.sin(v) * v, lambda: tf.exp(v)), pred, x)
    return OpCase([pred, x], dict(node.attrs))


@case("while")
def _(name, rng):
    import trainer as tf  # noqa: PLC0415

    x = normal(rng, shape(rng))
    node = _control_flow_node(lambda v: tf.while_loop(lambda v: tf.reduce_sum(v * v) < 100.0, lambda v: v * 2.0, [v]), x)
    return OpCase([x], dict(node.attrs), gradient_unsupported="a traced while loop has no gradient")


# -- fused ops (trainer/ops/fused_ops.py) ----------------------------------------------------------------------
# Smooth activations only: a relu kink within the finite-difference step would spoil the comparison. The
# fused relu and relu6 are checked against the unfused ops in tests/trainer/graph/test_passes.py.
_SMOOTH_ACTIVATIONS = ("none", "tanh", "sigmoid")


def _optional_bias(rng, channels) -> list:
    return [normal(rng, (channels,))] if rng.random() < 0.7 else []


@case("fused_matmul")
def _(name, rng):
    batch, inner, units = shape(rng, 3)
    transpose_b = bool(rng.random() < 0.5)
    weights = normal(rng, (units, inner) if transpose_b else (inner, units))
    attrs = {"activation": str(rng.choice(_SMOOTH_ACTIVATIONS)), "transpose_b": transpose_b}
    return OpCase([normal(rng, (batch, inner)), weights, *_optional_bias(rng, units)], attrs)


@case("fused_conv2d", "fused_depthwise_conv2d")
def _(name, rng):
    image, kernel, strides, dilations, padding, _ = _window_case(rng)
    last = int(rng.integers(1, 4))  # output channels, or the depthwise channel multiplier
    channels = image[3] * last if name == "fused_depthwise_conv2d" else last
    attrs = {"activation": str(rng.choice(_SMOOTH_ACTIVATIONS)), "strides": strides, "padding": padding, "dilations": dilations}
    return OpCase([normal(rng, image), normal(rng, kernel + (image[3], last)), *_optional_bias(rng, channels)], attrs)


@case("batch_norm_inference")
def _(name, rng):
    dims = shape(rng, int(rng.integers(1, 5)))
    channels = dims[-1:]
    statistics = [normal(rng, channels), positive(rng, channels), normal(rng, channels), normal(rng, channels)]
    return OpCase([normal(rng, dims), *statistics], {"epsilon": 1e-3})
