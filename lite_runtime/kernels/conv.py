"""CONV_2D (im2col into scratch, then one matrix product) and DEPTHWISE_CONV_2D (one multiply-add per tap)."""

from __future__ import annotations

import functools

import numpy as np

from lite_runtime.kernels.base import FLOAT32, Kernel, Node, activation, bound_eval, window
from lite_runtime.schema import BuiltinOperator as Op


def spatial(node: Node, x, kernel_h: int, kernel_w: int):
    """Output size and padding ((top, bottom), (left, right)) of a filter window over NHWC ``x``, as TFLite's."""
    node.check(len(x.shape) == 4, f"input must be NHWC, got {list(x.shape)}")
    _batch, height, width, _channels = x.shape
    dilation_h, dilation_w = node.option("dilation_h_factor"), node.option("dilation_w_factor")
    out_h, top, bottom = window(node, height, kernel_h, node.option("stride_h"), dilation_h, node.option("padding"))
    out_w, left, right = window(node, width, kernel_w, node.option("stride_w"), dilation_w, node.option("padding"))
    return out_h, out_w, (top, bottom), (left, right)


def geometry(node: Node, x, kernel_h: int, kernel_w: int, dtype=np.float32, fill=0):
    """Output size, a padded input scratch (and its interior view) and one strided view per filter tap."""
    out_h, out_w, (top, bottom), (left, right) = spatial(node, x, kernel_h, kernel_w)
    batch, height, width, channels = x.shape
    stride_h, stride_w = node.option("stride_h"), node.option("stride_w")
    dilation_h, dilation_w = node.option("dilation_h_factor"), node.option("dilation_w_factor")
    padded = node.scratch((batch, height + top + bottom, width + left + right, channels), dtype, fill)
    interior = padded[:, top : top + height, left : left + width, :]
    taps = [
        padded[:, i * dilation_h : i * dilation_h + (out_h - 1) * stride_h + 1 : stride_h,
               j * dilation_w : j * dilation_w + (out_w - 1) * stride_w + 1 : stride_w, :]
        for i in range(kernel_h) for j in range(kernel_w)
    ]  # fmt: skip
    return (batch, out_h, out_w), padded, interior, taps


def window_view(padded, out_h: int, out_w: int, kernel_h: int, kernel_w: int, strides, dilations):
    """A read-only view (batch, out_h, out_w, channels, kernel_h, kernel_w) of every filter window of ``padded``."""
    span = ((kernel_h - 1) * dilations[0] + 1, (kernel_w - 1) * dilations[1] + 1)
    views = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(1, 2))
    return views[:, :: strides[0], :: strides[1], :, :: dilations[0], :: dilations[1]][:, :out_h, :out_w]


def _strides_and_dilations(node: Node):
    return ((node.option("stride_h"), node.option("stride_w")),
            (node.option("dilation_h_factor"), node.option("dilation_w_factor")))  # fmt: skip


def filter_windows(node: Node, padded, out_h: int, out_w: int, kernel_h: int, kernel_w: int):
    """``window_view`` with the node's strides and dilations."""
    return window_view(padded, out_h, out_w, kernel_h, kernel_w, *_strides_and_dilations(node))


def _bias(node: Node, channels: int):
    bias = node.input(2)
    if bias is not None:
        node.check(bias.dtype == FLOAT32 and bias.shape == (channels,), f"bias {list(bias.shape)}, expected [{channels}]")
    return bias is not None


def patches(node: Node, x, kernel_h: int, kernel_w: int, dtype=np.float32, fill=0, ones_column: bool = False):
    """im2col scratch: ``(interior, gather, columns, (batch, out_h, out_w))``.

    ``eval`` copies the input into ``interior`` (a view of a scratch padded with ``fill``), then
    ``np.copyto(*gather)`` writes every filter window as one row of ``columns`` (rows, kh·kw·channels), in
    one copy of a window view (3x faster than a copy per tap at 32 channels); ``gather`` is None when there
    are no rows. With ``ones_column`` the columns have one more, holding 1, for a bias row in the matrix."""
    (batch, out_h, out_w), padded, interior, _taps = geometry(node, x, kernel_h, kernel_w, dtype, fill)
    channels = x.shape[3]
    rows, depth = batch * out_h * out_w, kernel_h * kernel_w * channels
    columns = node.scratch((rows, depth + ones_column), dtype, fill=1)
    gather = None
    if rows:
        windows = columns[:, :depth].reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
        node.check(np.may_share_memory(windows, columns), "im2col columns must be a view")
        gather = (windows.transpose(0, 1, 2, 5, 3, 4), filter_windows(node, padded, out_h, out_w, kernel_h, kernel_w))
        node.check(gather[0].shape == gather[1].shape, f"windows {gather[1].shape} do not fill {gather[0].shape}")
    return interior, gather, columns, (batch, out_h, out_w)


# A window row (kernel_w · channels_in floats) shorter than this is gathered by index (np.take, ~1 ns a float)
# rather than by one strided copy, whose cost is per contiguous run (~10 ns) at that size: 2x at one channel.
_GATHER_BY_INDEX_BELOW = 8


def _prepare_conv(node: Node):
    node.arity(2, 3)
    x, filters = node.float_input(0), node.float_input(1)
    node.check(len(filters.shape) == 4, f"filters must be [out, kh, kw, in], got {list(filters.shape)}")
    channels_out, kernel_h, kernel_w, channels_in = filters.shape
    node.check(len(x.shape) == 4 and x.shape[3] == channels_in and channels_in > 0,
               f"input {list(x.shape)} does not have {channels_in} channels")  # fmt: skip
    has_bias = _bias(node, channels_out)
    bias = node.input(2)
    if filters.value is None or (has_bias and bias.value is None):
        return _prepare_conv_computed_filters(node, x, filters, has_bias)
    # Constant filters and bias: the bias is the matrix's last row, against a column of ones in the patches,
    # so that the product adds it (one BLAS call instead of a product and a pass over the output).
    out_h, out_w, _rows_padding, _columns_padding = spatial(node, x, kernel_h, kernel_w)
    batch = x.shape[0]
    rows, depth = batch * out_h * out_w, kernel_h * kernel_w * channels_in
    weights = filters.value.reshape(channels_out, depth).T
    matrix = np.ascontiguousarray(np.concatenate([weights, bias.value.reshape(1, channels_out)]) if has_bias else weights, np.float32)
    shape = (batch, out_h, out_w, channels_out)
    act = activation(node, node.option("fused_activation_function"), (rows, channels_out))
    columns, gather = im2col(node, x, kernel_h, kernel_w, ones_column=has_bias)
    return [(shape, FLOAT32)], ("im2col", (columns, gather, matrix, act, rows))


def im2col(node: Node, x, kernel_h: int, kernel_w: int, dtype=np.float32, fill=0, ones_column: bool = False):
    """``(columns, gather)``: the im2col scratch (rows, kh·kw·channels, and a column of ones with ``ones_column``)
    and how ``im2col_call`` fills it from the input, picked by the window row's length: by index (np.take over a
    flat copy of the input followed by ``fill`` for padding and 1 for the ones column) or by copying windows."""
    out_h, out_w, (top, bottom), (left, right) = spatial(node, x, kernel_h, kernel_w)
    channels_in = x.shape[3]
    if kernel_w * channels_in < _GATHER_BY_INDEX_BELOW:
        rows, depth = x.shape[0] * out_h * out_w, kernel_h * kernel_w * channels_in
        size = int(np.prod(x.shape))
        positions = np.pad(np.arange(size).reshape(x.shape), ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=size)
        windows = window_view(positions, out_h, out_w, kernel_h, kernel_w, *_strides_and_dilations(node))
        index = node.scratch((rows, depth + ones_column), np.intp, fill=size + 1)
        index[:, :depth] = windows.transpose(0, 1, 2, 4, 5, 3).reshape(rows, depth)
        source = node.scratch((size + 2,), dtype)
        source[size], source[size + 1] = fill, 1
        return node.scratch((rows, depth + ones_column), dtype), ("index", (source, index))
    interior, gather, columns, _ = patches(node, x, kernel_h, kernel_w, dtype, fill, ones_column)
    direct = top == bottom == left == right == 0  # the windows are views of the input itself: no padded copy
    geometry_args = (out_h, out_w, kernel_h, kernel_w, *_strides_and_dilations(node))
    return columns, ("copy", (interior, gather, direct, geometry_args))


def im2col_call(gather, columns, x):
    """The zero-argument call that fills ``columns`` from the planned input ``x`` (None when there are no rows)."""
    kind, plan = gather
    if kind == "index":
        source, index = plan
        body, take = source[: x.size].reshape(x.shape), np.take

        def by_index():
            body[...] = x  # item assignment: np.copyto's copy without its dispatch (0.15 us a call)
            take(source, index, 0, columns, "clip")  # "clip" skips the bounds check's buffered copy

        return by_index
    interior, gather_views, direct, geometry_args = plan
    if gather_views is None:
        return None
    if direct and x.flags.c_contiguous:
        target, source = gather_views[0], window_view(x, *geometry_args)

        def by_view():
            target[...] = source

        return by_view
    target, source = gather_views

    def by_padded_view():
        interior[...] = x
        target[...] = source

    return by_padded_view


def _bind_conv(state, inputs, outputs):
    kind, plan = state
    if kind == "computed":
        return functools.partial(_eval_conv_computed_filters, plan, inputs, outputs)
    dot = np.dot
    columns, gather, matrix, act, rows = plan
    out = outputs[0].reshape(rows, matrix.shape[1])
    gather = im2col_call(gather, columns, inputs[0])
    if gather is None:  # no output pixels
        return lambda: None
    if act is None:

        def run():
            gather()
            dot(columns, matrix, out)

        return run

    def run_activated():
        gather()
        dot(columns, matrix, out)
        act(out)

    return run_activated


def _prepare_conv_computed_filters(node: Node, x, filters, has_bias: bool):
    channels_out, kernel_h, kernel_w, _channels_in = filters.shape
    interior, gather, columns, (batch, out_h, out_w) = patches(node, x, kernel_h, kernel_w)
    rows, depth = columns.shape
    plan = (interior, gather, columns, rows, depth, channels_out, has_bias,
            activation(node, node.option("fused_activation_function")))  # fmt: skip
    return [((batch, out_h, out_w, channels_out), FLOAT32)], ("computed", plan)


def _eval_conv_computed_filters(state, inputs, outputs):
    interior, gather, columns, rows, depth, channels_out, has_bias, act = state
    np.copyto(interior, inputs[0])
    if gather is not None:
        np.copyto(*gather)
    out = outputs[0].reshape(rows, channels_out)
    np.matmul(columns, inputs[1].reshape(channels_out, depth).T, out=out)
    if has_bias:
        np.add(out, inputs[2], out=out)
    if act is not None:
        act(out)


def depthwise_shapes(node: Node, x, filters) -> tuple[int, int, int, int, int]:
    """Checks a DEPTHWISE_CONV_2D's input [n, h, w, in] against its filters [1, kh, kw, out] and option;
    returns (kernel_h, kernel_w, channels_in, multiplier, channels_out)."""
    node.check(len(filters.shape) == 4 and filters.shape[0] == 1, f"filters must be [1, kh, kw, out], got {list(filters.shape)}")
    _one, kernel_h, kernel_w, channels_out = filters.shape
    node.check(len(x.shape) == 4 and x.shape[3] > 0 and channels_out % x.shape[3] == 0,
               f"input {list(x.shape)} channels do not divide the {channels_out} output channels")  # fmt: skip
    channels_in = x.shape[3]
    multiplier = channels_out // channels_in
    node.check(node.option("depth_multiplier") in (0, multiplier),
               f"depth_multiplier {node.option('depth_multiplier')}, filters imply {multiplier}")  # fmt: skip
    return kernel_h, kernel_w, channels_in, multiplier, channels_out


def _prepare_depthwise(node: Node):
    node.arity(2, 3)
    x, filters = node.float_input(0), node.float_input(1)
    kernel_h, kernel_w, channels_in, multiplier, channels_out = depthwise_shapes(node, x, filters)
    (batch, out_h, out_w), _padded, interior, taps = geometry(node, x, kernel_h, kernel_w)
    product = node.scratch((batch, out_h, out_w, channels_in, multiplier))
    shape = (batch, out_h, out_w, channels_in, multiplier)
    state = (interior, taps, product, shape, kernel_h * kernel_w, _bias(node, channels_out),
             activation(node, node.option("fused_activation_function")))  # fmt: skip
    return [((batch, out_h, out_w, channels_out), FLOAT32)], state


def _eval_depthwise(state, inputs, outputs):
    interior, taps, product, shape, tap_count, has_bias, act = state
    np.copyto(interior, inputs[0])
    weights = inputs[1].reshape(tap_count, shape[3], shape[4])
    out = outputs[0].reshape(shape)
    np.multiply(taps[0][..., None], weights[0], out=out)
    for k in range(1, tap_count):
        np.multiply(taps[k][..., None], weights[k], out=product)
        np.add(out, product, out=out)
    out = outputs[0]
    if has_bias:
        np.add(out, inputs[2], out=out)
    if act is not None:
        act(out)


KERNELS = {
    Op.CONV_2D: Kernel(_prepare_conv, bound_eval(_bind_conv), bind=_bind_conv),
    Op.DEPTHWISE_CONV_2D: Kernel(_prepare_depthwise, _eval_depthwise),
}
