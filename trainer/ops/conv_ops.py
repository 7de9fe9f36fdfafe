"""Convolutions and pooling over NHWC images (``tf.nn.conv2d``, ``tf.nn.max_pool2d``, ...) with gradients.

Layouts follow TensorFlow: images are NHWC, conv filters HWIO ``[kh, kw, in, out]``, depthwise filters
``[kh, kw, in, multiplier]`` (output channel ``c * multiplier + m``). Every kernel loops over the
``kh * kw`` window offsets only, never over pixels or images: a convolution gathers the offsets into one
patch matrix (im2col) and does one BLAS matmul; its backprops multiply by the transposed matrices and
scatter back offset by offset (col2im); pooling combines the ``kh * kw`` strided views elementwise.

The backprop ops take the forward input as an input even where they only need its shape, so the gradient
of a function traced with unknown dimensions still knows that shape at run time. They are differentiable
too (a convolution's backprops are linear, and their adjoints are convolutions again), so nested tapes
give second derivatives through every op in this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trainer.ops import array_ops, parallel
from trainer.ops.registry import Spec, as_tensors, execute, register, require_floating, require_same_dtype
from trainer.tensor import convert_to_tensor

# -- window geometry, shared by the shape rules and the kernels ------------------------------------------


class _Axis(NamedTuple):
    """Where a sliding window goes along one spatial axis: the output size and the padding around it."""

    size: int | None
    before: int
    after: int


def _axis_window(size, kernel, stride, dilation, padding) -> _Axis:
    """TensorFlow's output size and padding for one axis; an unknown ``size`` gives an unknown output."""
    if size is None or kernel is None:
        return _Axis(None, 0, 0)
    span = (kernel - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return _Axis(out, total // 2, total - total // 2)  # the smaller half goes before, as TensorFlow
    if size < span:
        raise ValueError(
            f"with padding 'VALID' the window spans {span} pixels (size {kernel}, dilation {dilation}) but the "
            f"input has only {size}"
        )
    return _Axis((size - span) // stride + 1, 0, 0)


def conv_output_size(size, kernel, stride=1, dilation=1, padding="VALID"):
    """The output length of a sliding window along one axis, as TensorFlow computes it (``None`` if ``size`` is).

    Keras layers use it for ``compute_output_shape``, so the rule is written once, here.
    """
    return _axis_window(size, kernel, stride, dilation, padding.upper()).size


@dataclass(frozen=True)
class _Geometry:
    """How a ``kernel``-sized window slides over an NHWC input: strides, dilations, output and padding."""

    kernel: tuple
    strides: tuple
    dilations: tuple
    rows: _Axis
    cols: _Axis

    def offsets(self):
        """The window offsets ``(i, j)`` in row-major order; kernels loop over these and nothing else."""
        return [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]

    def pad(self, xp, x, value=0):
        """``x`` with this window's padding around its spatial axes (``x`` itself when there is none)."""
        rows, cols = self.rows, self.cols
        if not (rows.before or rows.after or cols.before or cols.after):
            return x
        widths = ((0, 0), (rows.before, rows.after), (cols.before, cols.after), (0, 0))
        return xp.pad(x, widths, mode="constant", constant_values=value)

    def padded_shape(self, shape) -> tuple:
        rows, cols = self.rows, self.cols
        return (shape[0], shape[1] + rows.before + rows.after, shape[2] + cols.before + cols.after, shape[3])

    def crop(self, xp, padded, shape):
        """Undoes ``pad``: the part of a padded-shape array that lies over the real input."""
        if padded.shape == tuple(shape):
            return padded
        top, left = self.rows.before, self.cols.before
        return xp.ascontiguousarray(padded[:, top : top + shape[1], left : left + shape[2], :])

    def view(self, padded, i, j):
        """The strided view of ``padded`` that window offset ``(i, j)`` reads, one pixel per output pixel."""
        top, left = i * self.dilations[0], j * self.dilations[1]
        stride_h, stride_w = self.strides
        return padded[
            :,
            top : top + (self.rows.size - 1) * stride_h + 1 : stride_h,
            left : left + (self.cols.size - 1) * stride_w + 1 : stride_w,
            :,
        ]

    def output_shape(self, batch, channels) -> tuple:
        return (batch, self.rows.size, self.cols.size, channels)


def _geometry(input_shape, kernel, strides, dilations, padding) -> _Geometry:
    if len(input_shape) != 4:
        raise ValueError(f"expected a 4-D NHWC input, got shape {tuple(input_shape)}")
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    rows = _axis_window(input_shape[1], kernel[0], strides[0], dilations[0], padding)
    cols = _axis_window(input_shape[2], kernel[1], strides[1], dilations[1], padding)
    return _Geometry(tuple(kernel), tuple(strides), tuple(dilations), rows, cols)


def _filter_geometry(input_shape, filter_shape, strides, padding, dilations) -> _Geometry:
    """The geometry of a convolution, after checking that the filter fits the input's channels."""
    if len(filter_shape) != 4:
        raise ValueError(f"expected a 4-D filter [kh, kw, in, out], got shape {tuple(filter_shape)}")
    channels, filter_channels = input_shape[-1], filter_shape[2]
    if channels is not None and filter_channels is not None and channels != filter_channels:
        raise ValueError(
            f"the input has {channels} channels but the filter of shape {tuple(filter_shape)} expects {filter_channels}"
        )
    return _geometry(input_shape, filter_shape[:2], strides, dilations, padding)


# -- im2col -------------------------------------------------------------------------------------


def _patches(xp, x, geometry: _Geometry):
    """im2col: every window's input pixels as a contiguous (N, OH, OW, kh, kw, C) array, ready for a matmul."""
    padded = geometry.pad(xp, x)
    (kh, kw), (stride_h, stride_w), (dilation_h, dilation_w) = geometry.kernel, geometry.strides, geometry.dilations
    shape = geometry.output_shape(x.shape[0], None)[:3] + (kh, kw, x.shape[3])
    if xp is np and x.shape[3] >= 4:
        # One copy out of an overlapping strided view moves C-long contiguous runs; with few channels
        # those runs are too short and the kh*kw slab copies below are faster (measured 3x at C=1).
        s_n, s_h, s_w, s_c = padded.strides
        strides = (s_n, s_h * stride_h, s_w * stride_w, s_h * dilation_h, s_w * dilation_w, s_c)
        windows = np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)
        patches = np.empty(shape, dtype=x.dtype)

        def gather(start, stop):  # images [start, stop) of the batch
            np.copyto(patches[start:stop], windows[start:stop])

        parallel.split(xp, gather, shape[0], patches.nbytes + padded.nbytes)
        return patches
    patches = xp.empty(shape, dtype=x.dtype)
    for i, j in geometry.offsets():
        patches[:, :, :, i, j, :] = geometry.view(padded, i, j)
    return patches


# -- conv2d ----------------------------------------------------------------------------------------------


def _conv_infer(name, depthwise=False):
    """The shape rule of ``conv2d`` (output channels = out) or ``depthwise_conv2d`` (in * multiplier)."""

    def infer(x: Spec, filters: Spec, *, strides, padding, dilations) -> Spec:
        dtype = require_same_dtype(name, x, filters)
        require_floating(name, x)
        geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
        if depthwise:
            channels = None if None in filters.shape[2:] else filters.shape[2] * filters.shape[3]
        else:
            channels = filters.shape[3]
        return Spec(geometry.output_shape(x.shape[0], channels), dtype)

    return infer


def _like_infer(index):
    """The shape rule of a backprop op: the shape of input ``index``, in the dtype of the incoming gradient."""
    return lambda *specs, **attrs: Spec(specs[index].shape, specs[-1].dtype)


@register("conv2d", infer=_conv_infer("conv2d"))
def conv2d_op(xp, x, filters, *, strides, padding, dilations):
    """2-D cross-correlation (TensorFlow's convolution) of NHWC ``x`` with HWIO ``filters``: one matmul."""
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    out_channels = filters.shape[3]
    patches = _patches(xp, x, geometry)
    result = patches.reshape(-1, filters[..., 0].size) @ filters.reshape(-1, out_channels)
    return result.reshape(geometry.output_shape(x.shape[0], out_channels))


@register("conv2d_backprop_input", infer=_like_infer(0), training_only=True)
def conv2d_backprop_input_op(xp, x, filters, grad, *, strides, padding, dilations):
    """The gradient of ``conv2d`` with respect to its input ``x`` (whose values are not used, only its shape).

    col2im fused with the matmul: for each window offset, one (pixels, out) @ (out, in) product is added
    onto the input pixels that offset read. Per-offset products land contiguous, which made this 10-25%
    faster than one big matmul followed by strided scatters of its (..., kh, kw, in) columns.
    """
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    return _scatter_input_gradient(xp, x.shape, filters, grad, geometry)


def _scatter_input_gradient(xp, x_shape, filters, grad, geometry: _Geometry):
    """col2im fused with the products, for an NHWC ``grad`` covering the first ``grad.shape[1:3]``
    output pixels of ``geometry`` (all of them, or fewer when the rest are known zeros)."""
    _, height, width, _ = grad.shape
    rows = grad.reshape(-1, filters.shape[3])
    padded = xp.zeros(geometry.padded_shape(x_shape), dtype=grad.dtype)
    product = xp.empty((rows.shape[0], filters.shape[2]), dtype=grad.dtype)  # one buffer for every offset
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.strides, geometry.dilations
    for i, j in geometry.offsets():
        top, left = i * dilation_h, j * dilation_w
        view = padded[:, top : top + (height - 1) * stride_h + 1 : stride_h, left : left + (width - 1) * stride_w + 1 : stride_w, :]
        xp.matmul(rows, filters[i, j].T, out=product)
        view += product.reshape(view.shape)
    return geometry.crop(xp, padded, x_shape)


@register("conv2d_backprop_filter", infer=_like_infer(1), training_only=True)
def conv2d_backprop_filter_op(xp, x, filters, grad, *, strides, padding, dilations):
    """The gradient of ``conv2d`` with respect to ``filters`` (whose values are not used, only its shape)."""
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    out_channels = filters.shape[3]
    patches = _patches(xp, x, geometry).reshape(-1, filters[..., 0].size)
    return (patches.T @ grad.reshape(-1, out_channels)).reshape(filters.shape)


@conv2d_op.def_gradient
def _(node, grad):
    x, filters = node.inputs
    need_x, need_filters = node.needs_gradient
    return (
        execute(conv2d_backprop_input_op, (x, filters, grad), node.attrs) if need_x else None,
        execute(conv2d_backprop_filter_op, (x, filters, grad), node.attrs) if need_filters else None,
    )


@conv2d_backprop_input_op.def_gradient
def _(node, upstream):
    # dx = B(filters, grad) is bilinear, and <upstream, B(f, g)> = <conv2d(upstream, f), g>.
    _, filters, grad = node.inputs
    _, need_filters, need_grad = node.needs_gradient
    return (
        None,  # x only lends its shape
        execute(conv2d_backprop_filter_op, (upstream, filters, grad), node.attrs) if need_filters else None,
        execute(conv2d_op, (upstream, filters), node.attrs) if need_grad else None,
    )


@conv2d_backprop_filter_op.def_gradient
def _(node, upstream):
    # dfilters = B(x, grad) is bilinear, and <upstream, B(x, g)> = <conv2d(x, upstream), g>.
    x, _, grad = node.inputs
    need_x, _, need_grad = node.needs_gradient
    return (
        execute(conv2d_backprop_input_op, (x, upstream, grad), node.attrs) if need_x else None,
        None,  # filters only lend their shape
        execute(conv2d_op, (x, upstream), node.attrs) if need_grad else None,
    )


# -- depthwise_conv2d ---------------------------------------------------------------------------------------


@register("depthwise_conv2d", infer=_conv_infer("depthwise_conv2d", depthwise=True))
def depthwise_conv2d_op(xp, x, filters, *, strides, padding, dilations):
    """Convolves each input channel with its own ``multiplier`` filters; output channel ``c * multiplier + m``."""
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    channels, multiplier = filters.shape[2:]
    padded = geometry.pad(xp, x)
    result = xp.zeros(geometry.output_shape(x.shape[0], channels) + (multiplier,), dtype=x.dtype)
    for i, j in geometry.offsets():
        result += geometry.view(padded, i, j)[..., None] * filters[i, j]
    return result.reshape(geometry.output_shape(x.shape[0], channels * multiplier))


@register("depthwise_conv2d_backprop_input", infer=_like_infer(0), training_only=True)
def depthwise_conv2d_backprop_input_op(xp, x, filters, grad, *, strides, padding, dilations):
    """The gradient of ``depthwise_conv2d`` with respect to its input (only the shape of ``x`` is used)."""
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    channels, multiplier = filters.shape[2:]
    grad = grad.reshape(geometry.output_shape(x.shape[0], channels) + (multiplier,))
    padded = xp.zeros(geometry.padded_shape(x.shape), dtype=grad.dtype)
    for i, j in geometry.offsets():
        view = geometry.view(padded, i, j)
        view += (grad * filters[i, j]).sum(axis=-1)
    return geometry.crop(xp, padded, x.shape)


@register("depthwise_conv2d_backprop_filter", infer=_like_infer(1), training_only=True)
def depthwise_conv2d_backprop_filter_op(xp, x, filters, grad, *, strides, padding, dilations):
    """The gradient of ``depthwise_conv2d`` with respect to its filters (only their shape is used)."""
    geometry = _filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    channels, multiplier = filters.shape[2:]
    grad = grad.reshape(geometry.output_shape(x.shape[0], channels) + (multiplier,))
    padded = geometry.pad(xp, x)
    result = xp.empty(filters.shape, dtype=grad.dtype)
    for i, j in geometry.offsets():
        result[i, j] = xp.einsum("nhwc,nhwcm->cm", geometry.view(padded, i, j), grad)
    return result


@depthwise_conv2d_op.def_gradient
def _(node, grad):
    x, filters = node.inputs
    need_x, need_filters = node.needs_gradient
    return (
        execute(depthwise_conv2d_backprop_input_op, (x, filters, grad), node.attrs) if need_x else None,
        execute(depthwise_conv2d_backprop_filter_op, (x, filters, grad), node.attrs) if need_filters else None,
    )


@depthwise_conv2d_backprop_input_op.def_gradient
def _(node, upstream):
    _, filters, grad = node.inputs
    _, need_filters, need_grad = node.needs_gradient
    return (
        None,  # x only lends its shape
        execute(depthwise_conv2d_backprop_filter_op, (upstream, filters, grad), node.attrs) if need_filters else None,
        execute(depthwise_conv2d_op, (upstream, filters), node.attrs) if need_grad else None,
    )


@depthwise_conv2d_backprop_filter_op.def_gradient
def _(node, upstream):
    x, _, grad = node.inputs
    need_x, _, need_grad = node.needs_gradient
    return (
        execute(depthwise_conv2d_backprop_input_op, (x, upstream, grad), node.attrs) if need_x else None,
        None,  # filters only lend their shape
        execute(depthwise_conv2d_op, (x, upstream), node.attrs) if need_grad else None,
    )


# -- pooling ------------------------------------------------------------------------------------------------
# Pooling combines the kh*kw strided views with elementwise maximum/add. For the common stride == ksize
# case this beats reshaping to (N, OH, k, OW, k, C) and reducing over the two window axes by 4-7x on
# NumPy, because NumPy's multi-axis reductions over non-innermost axes are slow.


def _pool_geometry(shape, ksize, strides, padding) -> _Geometry:
    return _geometry(shape, ksize, strides, (1, 1), padding)


def _pool_infer(name, floating=False):
    """The shape rule of a pooling op; a second input (``max_pool2d_grad_grad``'s gradient) sets the dtype."""

    def infer(x: Spec, *gradient: Spec, ksize, strides, padding) -> Spec:
        if floating:
            require_floating(name, x)
        geometry = _pool_geometry(x.shape, ksize, strides, padding)
        return Spec(geometry.output_shape(x.shape[0], x.shape[3]), (gradient or (x,))[0].dtype)

    return infer


def _lowest(dtype):
    """The padding value that never wins a maximum."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


@register("max_pool2d", infer=_pool_infer("max_pool2d"))
def max_pool2d_op(xp, x, *, ksize, strides, padding):
    """The maximum of each window (padding never wins)."""
    geometry = _pool_geometry(x.shape, ksize, strides, padding)
    padded = geometry.pad(xp, x, _lowest(x.dtype))
    offsets = geometry.offsets()
    result = xp.empty(geometry.output_shape(x.shape[0], x.shape[3]), dtype=x.dtype)

    def pool(start, stop):  # images [start, stop) of the batch
        out = result[start:stop]
        xp.copyto(out, geometry.view(padded[start:stop], *offsets[0]))
        for i, j in offsets[1:]:
            xp.maximum(out, geometry.view(padded[start:stop], i, j), out=out)

    parallel.split(xp, pool, x.shape[0], 2 * padded.nbytes)
    return result


def _window_argmax(xp, x, geometry: _Geometry):
    """For each window, the index into ``geometry.offsets()`` of its first maximum in row-major order.

    Only that one element receives the window's gradient, as in TensorFlow's CPU MaxPoolGrad (which also
    keeps the first of equal values); sharing it among ties (as ``reduce_max`` does) would spread the
    gradient of all-zero windows after a ReLU.
    """
    padded = geometry.pad(xp, x, _lowest(x.dtype))
    offsets = geometry.offsets()
    best = geometry.view(padded, *offsets[0]).copy()
    index_type = xp.int8 if len(offsets) < 127 else xp.int32
    argmax = xp.zeros(best.shape, dtype=index_type)
    for index, (i, j) in enumerate(offsets[1:], start=1):
        view = geometry.view(padded, i, j)
        better = (view > best).view(xp.int8) if index_type is xp.int8 else (view > best).astype(index_type)
        # argmax = where(better, index, argmax), written branch-free: after a ReLU the masks are random,
        # and NumPy's masked copies then run ~50x slower than this arithmetic (branch mispredictions).
        argmax += better * (index_type(index) - argmax)
        xp.maximum(best, view, out=best)
    return argmax


@register("max_pool2d_grad", infer=_like_infer(0), training_only=True)
def max_pool2d_grad_op(xp, x, grad, *, ksize, strides, padding):
    """The gradient of ``max_pool2d``: each window's gradient goes to the input element that was its maximum."""
    geometry = _pool_geometry(x.shape, ksize, strides, padding)
    padded_shape = geometry.padded_shape(x.shape)
    disjoint = all(s >= k for s, k in zip(geometry.strides, geometry.kernel))
    # Windows that tile the padded input exactly (2x2 stride 2 over an even size) write every element
    # once below, so the buffer needs no zeroing pass first.
    (kh, kw), rows, cols = geometry.kernel, geometry.rows.size, geometry.cols.size
    tiles = geometry.kernel == geometry.strides and (rows * kh, cols * kw) == padded_shape[1:3]
    padded = (xp.empty if tiles else xp.zeros)(padded_shape, dtype=grad.dtype)

    def unpool(start, stop):  # images [start, stop) of the batch: their windows touch only their rows
        argmax = _window_argmax(xp, x[start:stop], geometry)
        target, window_grad = padded[start:stop], grad[start:stop]
        for index, (i, j) in enumerate(geometry.offsets()):
            view = geometry.view(target, i, j)
            if disjoint:  # windows do not overlap: each input element is written once, no accumulation
                xp.multiply(window_grad, argmax == index, out=view)
            else:
                view += window_grad * (argmax == index)

    parallel.split(xp, unpool, x.shape[0], 4 * padded.nbytes)
    return geometry.crop(xp, padded, x.shape)


@register("max_pool2d_grad_grad", infer=_pool_infer("max_pool2d_grad_grad"), training_only=True)
def max_pool2d_grad_grad_op(xp, x, grad, *, ksize, strides, padding):
    """The adjoint of ``max_pool2d_grad``: picks, per window, ``grad`` (shaped like ``x``) at the maximum of ``x``."""
    geometry = _pool_geometry(x.shape, ksize, strides, padding)
    argmax = _window_argmax(xp, x, geometry)
    padded = geometry.pad(xp, grad)
    result = xp.zeros(argmax.shape, dtype=grad.dtype)
    for index, (i, j) in enumerate(geometry.offsets()):
        result += geometry.view(padded, i, j) * (argmax == index)
    return result


@max_pool2d_op.def_gradient
def _(node, grad):
    return execute(max_pool2d_grad_op, (node.inputs[0], grad), node.attrs)


@max_pool2d_grad_op.def_gradient
def _(node, upstream):
    # Where each gradient goes changes only when the maximum changes places: zero derivative in x.
    x = node.inputs[0]
    return array_ops.zeros_like(x), execute(max_pool2d_grad_grad_op, (x, upstream), node.attrs)


@max_pool2d_grad_grad_op.def_gradient
def _(node, upstream):
    x = node.inputs[0]
    return array_ops.zeros_like(x), execute(max_pool2d_grad_op, (x, upstream), node.attrs)


def _valid_counts(xp, shape, geometry: _Geometry, dtype):
    """How many real (not padding) input pixels each output window covers, shaped (OH, OW, 1)."""

    def along(size, kernel, stride, axis: _Axis):
        starts = xp.arange(axis.size) * stride - axis.before
        return xp.minimum(starts + kernel, size) - xp.maximum(starts, 0)

    rows = along(shape[1], geometry.kernel[0], geometry.strides[0], geometry.rows)
    cols = along(shape[2], geometry.kernel[1], geometry.strides[1], geometry.cols)
    return (rows[:, None, None] * cols[None, :, None]).astype(dtype)


@register("avg_pool2d", infer=_pool_infer("avg_pool2d", floating=True))
def avg_pool2d_op(xp, x, *, ksize, strides, padding):
    """The mean of each window over its real pixels: padding is not counted, as in TensorFlow."""
    geometry = _pool_geometry(x.shape, ksize, strides, padding)
    padded = geometry.pad(xp, x)
    offsets = geometry.offsets()
    total = geometry.view(padded, *offsets[0]).copy()
    for i, j in offsets[1:]:
        total += geometry.view(padded, i, j)
    return total / _valid_counts(xp, x.shape, geometry, x.dtype)


@register("avg_pool2d_grad", infer=_like_infer(0), training_only=True)
def avg_pool2d_grad_op(xp, x, grad, *, ksize, strides, padding):
    """The gradient of ``avg_pool2d``: each window's gradient is shared evenly by its real pixels."""
    geometry = _pool_geometry(x.shape, ksize, strides, padding)
    share = grad / _valid_counts(xp, x.shape, geometry, grad.dtype)
    padded = xp.zeros(geometry.padded_shape(x.shape), dtype=grad.dtype)
    for i, j in geometry.offsets():
        view = geometry.view(padded, i, j)
        view += share
    return geometry.crop(xp, padded, x.shape)


@avg_pool2d_op.def_gradient
def _(node, grad):
    return execute(avg_pool2d_grad_op, (node.inputs[0], grad), node.attrs)


@avg_pool2d_grad_op.def_gradient
def _(node, upstream):
    # avg_pool2d_grad is linear in the gradient, and its adjoint is avg_pool2d itself.
    return None, execute(avg_pool2d_op, (upstream,), node.attrs)  # x only lends its shape


# -- the public functions (tf.nn.conv2d, ...) -----------------------------------------------------------------


def _spatial_pair(value, what: str, function: str) -> tuple:
    """TensorFlow's forms of strides, dilations and ksize — n, [n], [h, w] or [1, h, w, 1] — as (h, w)."""
    values = [int(value)] if isinstance(value, (int, np.integer)) else [int(v) for v in value]
    if len(values) == 4:
        if values[0] != 1 or values[3] != 1:
            raise ValueError(f"tf.nn.{function}: {what} over the batch and channel dimensions must be 1, got {values}")
        values = values[1:3]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"tf.nn.{function}: {what} must be positive and have 1, 2 or 4 entries, got {value!r}")
    return tuple(values)


def _padding(padding, function: str) -> str:
    if not isinstance(padding, str):
        raise NotImplementedError(
            f"tf.nn.{function}: explicit padding {padding!r} is not supported by emberflow; use 'SAME' or "
            "'VALID' (or tf.pad followed by 'VALID')"
        )
    if padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"tf.nn.{function}: padding must be 'SAME' or 'VALID', got {padding!r}")
    return padding.upper()


def _image_input(value, data_format, function: str):
    """``value`` as a 4-D NHWC tensor; other layouts and ranks are refused with what to do instead."""
    if data_format not in (None, "NHWC"):
        raise NotImplementedError(
            f"tf.nn.{function}: data_format={data_format!r} is not supported by emberflow; use NHWC (channels last)"
        )
    x = convert_to_tensor(value)
    if x.ndim != 4:
        raise NotImplementedError(
            f"tf.nn.{function}: emberflow supports 4-D NHWC inputs only (2-D images), got rank {x.ndim} ({x.shape})"
        )
    return x


def _conv(op, function, input, filters, strides, padding, data_format, dilations):  # noqa: A002
    x = _image_input(input, data_format, function)
    (filters,) = as_tensors(filters, dtype_hint=x.dtype)
    if filters.dtype is not x.dtype:
        raise TypeError(f"tf.nn.{function}: input is {x.dtype.name} but filters are {filters.dtype.name}; use tf.cast")
    attrs = {
        "strides": _spatial_pair(strides, "strides", function),
        "padding": _padding(padding, function),
        "dilations": _spatial_pair(1 if dilations is None else dilations, "dilations", function),
    }
    return execute(op, (x, filters), attrs)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None, name=None):  # noqa: A002
    """``tf.nn.conv2d``: 2-D convolution of an NHWC image batch with filters shaped [kh, kw, in, out].

    Args:
        input: a 4-D float tensor [batch, height, width, in_channels].
        filters: a 4-D tensor [kh, kw, in_channels, out_channels] of the same dtype.
        strides: an int or a list of 1, 2 or 4 ints (the batch and channel entries must be 1).
        padding: "SAME" (output size ceil(in / stride)) or "VALID" (no padding).
        dilations: like ``strides``; spacing between the filter taps (default 1).

    Example:
        >>> y = tf.nn.conv2d(tf.ones([1, 5, 5, 1]), tf.ones([3, 3, 1, 2]), strides=1, padding="VALID")
        >>> y.shape
        TensorShape([1, 3, 3, 2])
    """
    return _conv(conv2d_op, "conv2d", input, filters, strides, padding, data_format, dilations)


def depthwise_conv2d(input, filter, strides, padding, data_format=None, dilations=None, name=None):  # noqa: A002
    """``tf.nn.depthwise_conv2d``: convolves each input channel with its own filters [kh, kw, in, multiplier].

    The output has ``in * multiplier`` channels; channel ``c * multiplier + m`` comes from input channel
    ``c`` and filter ``filter[:, :, c, m]``, as in TensorFlow. ``strides`` is a list of 4 (or 1 or 2) ints.
    """
    return _conv(depthwise_conv2d_op, "depthwise_conv2d", input, filter, strides, padding, data_format, dilations)


def _pool(op, function, input, ksize, strides, padding, data_format):  # noqa: A002
    x = _image_input(input, data_format, function)
    attrs = {
        "ksize": _spatial_pair(ksize, "ksize", function),
        "strides": _spatial_pair(strides, "strides", function),
        "padding": _padding(padding, function),
    }
    return execute(op, (x,), attrs)


def max_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):  # noqa: A002
    """``tf.nn.max_pool2d``: the maximum over each ``ksize`` window of an NHWC image batch."""
    return _pool(max_pool2d_op, "max_pool2d", input, ksize, strides, padding, data_format)


def avg_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):  # noqa: A002
    """``tf.nn.avg_pool2d``: the mean over each ``ksize`` window; with "SAME", padding is not counted."""
    return _pool(avg_pool2d_op, "avg_pool2d", input, ksize, strides, padding, data_format)


def max_pool(input, ksize, strides, padding, data_format=None, name=None):  # noqa: A002
    """``tf.nn.max_pool`` for 4-D NHWC inputs (the only rank emberflow pools over)."""
    return _pool(max_pool2d_op, "max_pool", input, ksize, strides, padding, data_format)


def avg_pool(input, ksize, strides, padding, data_format=None, name=None):  # noqa: A002
    """``tf.nn.avg_pool`` for 4-D NHWC inputs (the only rank emberflow pools over)."""
    return _pool(avg_pool2d_op, "avg_pool", input, ksize, strides, padding, data_format)
