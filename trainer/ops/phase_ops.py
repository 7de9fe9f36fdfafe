"""Convolution followed by a tiling max pool, computed in phase-major order (training graphs only).

A ``ph x pw`` max pool with strides equal to its size reads each convolution output pixel once, at
window position ``(a, b) = (h % ph, w % pw)``: its *phase*. Laid out NHWC, the ``ph * pw`` members of a
window sit ``C`` floats apart, so every pooling kernel, forward and backward, walks strided views in
``C``-long runs (32 floats for a typical first layer), and NumPy pays its per-run overhead thousands of
times per op. Gathering the convolution's patches phase by phase instead makes the product come out
as ``ph * pw`` contiguous images, one per phase, and pooling them is plain element-wise work:

* ``conv2d_phase_patches(x)`` — im2col rows ordered ``(a, b, n, oh, ow)``: shape
  ``(ph * pw, N, OH // ph, OW // pw, kh * kw * C)``; output pixels no window reads (the last row or
  column of an odd size under "VALID" pooling) are not gathered at all;
* ``max_pool_phases(y, [bias])`` — the maximum over the phase axis (plus the bias, through the
  activation) and the index of its first occurrence
  (TensorFlow's ``MaxPoolGrad`` sends a window's gradient to the first of equal maxima, row-major);
* ``unpool_phases(argmax, grad)`` — each window's gradient back on the phase that won, zeros elsewhere;
* ``pick_phases(argmax, y)`` — the element of the winning phase (``unpool_phases``'s adjoint);
* ``interleave_phases(stacked)`` / ``deinterleave_phases(image)`` — between the phase-major stack and
  the NHWC image (each the other's adjoint);
* ``conv2d_backprop_input_from_phases(x, filters, stacked)`` — a convolution's input gradient from a
  phase-major output gradient, over the covered output pixels only.

The graph optimizer (``trainer/graph/passes/phase_pooling.py``) rewrites a training step's
convolution + max pool, and their gradients, into these ops.
"""

from __future__ import annotations

import math

import numpy as np

from trainer import dtypes
from trainer.ops import array_ops, conv_ops, fused_ops, math_ops, patch_ops
from trainer.ops.math_ops import unbroadcast
from trainer.ops.registry import OpError, Spec, execute, register, require_floating


def _phase_count(op_name: str, pool) -> int:
    if len(pool) != 2 or min(pool) < 1:
        raise OpError(f"op '{op_name}': pool must be two positive sizes, got {pool!r}")
    return pool[0] * pool[1]


def _index_dtype(phases: int):
    return dtypes.int8 if phases < 128 else dtypes.int32


# -- conv2d_phase_patches -----------------------------------------------------------------------------


def _phase_patches_infer(x: Spec, *, ksize, strides, padding, dilations, pool) -> Spec:
    require_floating("conv2d_phase_patches", x)
    phases = _phase_count("conv2d_phase_patches", pool)
    geometry = conv_ops._geometry(x.shape, ksize, strides, dilations, padding)
    rows, cols = geometry.rows.size, geometry.cols.size
    channels = x.shape[3]
    depth = None if channels is None else ksize[0] * ksize[1] * channels
    return Spec(
        (phases, x.shape[0], None if rows is None else rows // pool[0], None if cols is None else cols // pool[1], depth),
        x.dtype,
    )


@register("conv2d_phase_patches", infer=_phase_patches_infer, training_only=True)
def conv2d_phase_patches_op(xp, x, *, ksize, strides, padding, dilations, pool):
    """``conv2d_patches(x)`` of the output pixels a ``pool``-sized tiling window reads, phase-major:
    ``[a * pw + b, n, oh, ow]`` is the patch row of output pixel ``(oh * ph + a, ow * pw + b)``."""
    geometry = conv_ops._geometry(x.shape, ksize, strides, dilations, padding)
    padded = geometry.pad(xp, x)
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = ksize, strides, dilations, pool
    rows, cols = geometry.rows.size // ph, geometry.cols.size // pw
    channels = x.shape[3]
    patches = xp.empty((ph, pw, x.shape[0], rows, cols, kh, kw, channels), dtype=x.dtype)
    if xp is np and channels >= 4:
        # One copy from an overlapping strided view (C-long runs), as conv_ops._patches does.
        s_n, s_h, s_w, s_c = padded.strides
        strides_ = (sh * s_h, sw * s_w, s_n, ph * sh * s_h, pw * sw * s_w, dh * s_h, dw * s_w, s_c)
        np.copyto(patches, np.lib.stride_tricks.as_strided(padded, patches.shape, strides_, writeable=False))
    else:
        for a in range(ph):
            for b in range(pw):
                for i in range(kh):
                    for j in range(kw):
                        top, left = a * sh + i * dh, b * sw + j * dw
                        patches[a, b, :, :, :, i, j, :] = padded[
                            :, top : top + (rows - 1) * ph * sh + 1 : ph * sh, left : left + (cols - 1) * pw * sw + 1 : pw * sw, :
                        ]
    return patches.reshape(ph * pw, x.shape[0], rows, cols, kh * kw * channels)


@conv2d_phase_patches_op.def_gradient
def _(node, grad):
    # Interleave the phases back into conv2d_patches' layout (zeros on the pixels no window reads),
    # then scatter each row back onto the pixels it came from, as conv2d_patches' gradient does.
    x, attrs = node.inputs[0], node.attrs
    geometry = conv_ops._geometry(x.shape, attrs["ksize"], attrs["strides"], attrs["dilations"], attrs["padding"])
    size = (geometry.rows.size, geometry.cols.size)
    image = execute(interleave_phases_op, (grad,), {"pool": attrs["pool"], "size": size})
    return patch_ops.scatter_patches(x, image, attrs, "conv2d_phase_patches")


# -- max_pool_phases, unpool_phases, pick_phases ----------------------------------------------------------


def _max_pool_phases_infer(y: Spec, *bias: Spec, activation="none") -> tuple:
    require_floating("max_pool_phases", y)
    fused_ops._check_activation("max_pool_phases", activation)
    if len(y.shape) < 2:
        raise OpError(f"op 'max_pool_phases' needs the phases on a leading axis, got shape {tuple(y.shape)}")
    if y.shape[0] is None:
        raise OpError("op 'max_pool_phases' needs a known number of phases (the leading axis): it sets the index dtype")
    pooled = Spec(y.shape[1:], y.dtype)
    fused_ops._check_bias("max_pool_phases", pooled, bias)
    return pooled, Spec(y.shape[1:], _index_dtype(y.shape[0]))


@register("max_pool_phases", infer=_max_pool_phases_infer, num_outputs=2, training_only=True)
def max_pool_phases_op(xp, y, *bias, activation="none"):
    """``activation(m + bias)`` for ``m``, the maximum of ``y`` over its first (phase) axis, and the
    first phase holding ``m``. (A bias and a monotonic activation commute with the maximum, so the
    rewrite of a convolution + pool applies them here, to a quarter of the pixels.)"""
    best, argmax = _max_and_argmax(xp, y)
    return fused_ops._bias_and_activation(xp, best, bias, activation), argmax


def _max_and_argmax(xp, y):
    """The maximum over the first axis and the first index holding it, as ``max_pool_phases`` returns them."""
    if y.shape[0] == 4:  # 2x2 pools, the common case: a tree of pairs, half the index arithmetic
        return _max_of_four(xp, y)
    index_type = _index_dtype(y.shape[0]).as_numpy_dtype
    best = y[0].copy()
    argmax = xp.zeros(best.shape, dtype=index_type)
    for phase in range(1, y.shape[0]):
        better = (y[phase] > best).astype(index_type)
        # argmax = where(better, phase, argmax) written branch-free: NumPy's masked copies run far
        # slower on random masks (see conv_ops._window_argmax).
        argmax += better * (index_type(phase) - argmax)
        xp.maximum(best, y[phase], out=best)
    return best, argmax


def _max_of_four(xp, y):
    """``max_pool_phases`` of four phases: the maximum of each pair, then of the two pairs; ties go to
    the first of a pair and to the first pair, so the index is the first maximum's."""
    first = xp.maximum(y[0], y[1])
    second_of_first = (y[1] > y[0]).view(xp.int8)
    second = xp.maximum(y[2], y[3])
    argmax = (y[3] > y[2]).view(xp.int8) + xp.int8(2)  # index within the second pair, plus 2
    second_wins = (second > first).view(xp.int8)
    xp.maximum(first, second, out=first)
    argmax -= second_of_first  # argmax = second_of_first + second_wins * (argmax - second_of_first)
    argmax *= second_wins
    argmax += second_of_first
    return first, argmax


@max_pool_phases_op.def_gradient
def _(node, grad, _argmax_grad=None):
    y, *bias = node.inputs
    grad = fused_ops.FUSED_ACTIVATIONS[node.attrs.get("activation", "none")].gradient(grad, node.outputs[0])
    y_grad = execute(unpool_phases_op, (node.outputs[1], grad), {"phases": y.shape[0]})
    return (y_grad, unbroadcast(grad, bias[0])) if bias else y_grad


def _unpool_infer(argmax: Spec, grad: Spec, *, phases) -> Spec:
    require_floating("unpool_phases", grad)
    if not argmax.dtype.is_integer:
        raise OpError(f"op 'unpool_phases' needs integer phase indices, got {argmax.dtype.name}")
    if len(argmax.shape) != len(grad.shape) or not all(a is None or b is None or a == b for a, b in zip(argmax.shape, grad.shape)):
        raise OpError(f"op 'unpool_phases': indices of shape {tuple(argmax.shape)} do not fit a gradient of shape {tuple(grad.shape)}")
    return Spec((phases, *grad.shape), grad.dtype)


@register("unpool_phases", infer=_unpool_infer, training_only=True)
def unpool_phases_op(xp, argmax, grad, *, phases):
    """``grad`` on the phase ``argmax`` names, zero on the others: shape ``(phases, *grad.shape)``."""
    result = xp.empty((phases, *grad.shape), dtype=grad.dtype)
    for phase in range(phases):
        xp.multiply(grad, argmax == phase, out=result[phase])
    return result


@unpool_phases_op.def_gradient
def _(node, upstream):
    return None, execute(pick_phases_op, (node.inputs[0], upstream), {})


def _pick_infer(argmax: Spec, y: Spec) -> Spec:
    require_floating("pick_phases", y)
    if tuple(argmax.shape) != tuple(y.shape[1:]):
        raise OpError(f"op 'pick_phases': indices of shape {tuple(argmax.shape)} do not fit phases of shape {tuple(y.shape)}")
    return Spec(y.shape[1:], y.dtype)


@register("pick_phases", infer=_pick_infer, training_only=True)
def pick_phases_op(xp, argmax, y):
    """``y[argmax[i], i]`` for every position ``i``: the element of the phase that won."""
    result = y[0] * (argmax == 0)
    for phase in range(1, y.shape[0]):
        result += y[phase] * (argmax == phase)
    return result


@pick_phases_op.def_gradient
def _(node, upstream):
    argmax, y = node.inputs
    return None, execute(unpool_phases_op, (argmax, upstream), {"phases": y.shape[0]})


# -- interleave_phases, deinterleave_phases -----------------------------------------------------------------


def _interleave_infer(stacked: Spec, *, pool, size) -> Spec:
    phases = _phase_count("interleave_phases", pool)
    if len(stacked.shape) != 5 or stacked.shape[0] not in (None, phases):
        raise OpError(f"op 'interleave_phases' needs a ({phases}, N, H, W, C) stack, got shape {tuple(stacked.shape)}")
    rows, cols = stacked.shape[2:4]
    if None not in (rows, cols) and (rows * pool[0] > size[0] or cols * pool[1] > size[1]):
        raise OpError(f"op 'interleave_phases': {rows}x{cols} windows of {pool} do not fit an image of {tuple(size)}")
    return Spec((stacked.shape[1], *size, stacked.shape[4]), stacked.dtype)


@register("interleave_phases", infer=_interleave_infer, training_only=True)
def interleave_phases_op(xp, stacked, *, pool, size):
    """The NHWC image of ``size`` whose pixel ``(oh * ph + a, ow * pw + b)`` is ``stacked[a * pw + b, n, oh, ow]``;
    pixels past the last whole window are zero."""
    (ph, pw), (_, batch, rows, cols, channels) = pool, stacked.shape
    covered = (rows * ph, cols * pw)
    image = (xp.empty if covered == tuple(size) else xp.zeros)((batch, *size, channels), dtype=stacked.dtype)
    # The whole windows of the image as (n, oh, a, ow, b, c), built as a view whatever the module
    # (a reshape of a sliced array may copy, and the copy would take the writes).
    s_n, s_h, s_w, s_c = image.strides
    windows = xp.lib.stride_tricks.as_strided(
        image, (batch, rows, ph, cols, pw, channels), (s_n, ph * s_h, s_h, pw * s_w, s_w, s_c)
    )
    xp.copyto(windows, stacked.reshape(ph, pw, batch, rows, cols, channels).transpose(2, 3, 0, 4, 1, 5))
    return image


@interleave_phases_op.def_gradient
def _(node, upstream):
    return execute(deinterleave_phases_op, (upstream,), {"pool": node.attrs["pool"], "rows": node.inputs[0].shape[2], "cols": node.inputs[0].shape[3]})


def _deinterleave_infer(image: Spec, *, pool, rows, cols) -> Spec:
    if len(image.shape) != 4:
        raise OpError(f"op 'deinterleave_phases' needs an NHWC image, got shape {tuple(image.shape)}")
    height, width = image.shape[1:3]
    if None not in (height, width) and (rows * pool[0] > height or cols * pool[1] > width):
        raise OpError(f"op 'deinterleave_phases': {rows}x{cols} windows of {pool} do not fit an image of {height}x{width}")
    return Spec((_phase_count("deinterleave_phases", pool), image.shape[0], rows, cols, image.shape[3]), image.dtype)


@register("deinterleave_phases", infer=_deinterleave_infer, training_only=True)
def deinterleave_phases_op(xp, image, *, pool, rows, cols):
    """``interleave_phases``' adjoint: the phase-major stack of the ``rows x cols`` whole windows of ``image``."""
    (ph, pw), (batch, _, _, channels) = pool, image.shape
    windows = image[:, : rows * ph, : cols * pw].reshape(batch, rows, ph, cols, pw, channels)
    return xp.ascontiguousarray(windows.transpose(2, 4, 0, 1, 3, 5)).reshape(ph * pw, batch, rows, cols, channels)


@deinterleave_phases_op.def_gradient
def _(node, upstream):
    return execute(interleave_phases_op, (upstream,), {"pool": node.attrs["pool"], "size": tuple(node.inputs[0].shape[1:3])})


# -- conv2d_backprop_input_from_phases ---------------------------------------------------------------------


def _backprop_from_phases_infer(x: Spec, filters: Spec, stacked: Spec, *, pool, strides, padding, dilations) -> Spec:
    output = conv_ops._conv_infer("conv2d_backprop_input_from_phases")(x, filters, strides=strides, padding=padding, dilations=dilations)
    _interleave_infer(stacked, pool=pool, size=output.shape[1:3] if None not in output.shape[1:3] else stacked.shape[2:4])
    return Spec(x.shape, stacked.dtype)


@register("conv2d_backprop_input_from_phases", infer=_backprop_from_phases_infer, training_only=True)
def conv2d_backprop_input_from_phases_op(xp, x, filters, stacked, *, pool, strides, padding, dilations):
    """``conv2d_backprop_input(x, filters, interleave_phases(stacked))`` without the output pixels no
    window covers (their gradient is zero): the products run over the covered pixels only."""
    geometry = conv_ops._filter_geometry(x.shape, filters.shape, strides, padding, dilations)
    (ph, pw), (_, _, rows, cols, _) = pool, stacked.shape
    covered = interleave_phases_op.forward(xp, stacked, pool=pool, size=(rows * ph, cols * pw))
    return conv_ops._scatter_input_gradient(xp, x.shape, filters, covered, geometry)


@conv2d_backprop_input_from_phases_op.def_gradient
def _(node, upstream):
    # Linear in (filters, stacked) jointly, as conv2d_backprop_input is; through the full-size image.
    x, filters, stacked = node.inputs
    _, need_filters, need_stacked = node.needs_gradient
    window = {key: node.attrs[key] for key in ("strides", "padding", "dilations")}
    geometry = conv_ops._filter_geometry(x.shape, filters.shape, window["strides"], window["padding"], window["dilations"])
    size = (geometry.rows.size, geometry.cols.size)
    pool = node.attrs["pool"]
    filters_grad = stacked_grad = None
    if need_filters:
        image = execute(interleave_phases_op, (stacked,), {"pool": pool, "size": size})
        filters_grad = execute(conv_ops.conv2d_backprop_filter_op, (upstream, filters, image), window)
    if need_stacked:
        image_grad = execute(conv_ops.conv2d_op, (upstream, filters), window)
        stacked_grad = execute(deinterleave_phases_op, (image_grad,), {"pool": pool, "rows": stacked.shape[2], "cols": stacked.shape[3]})
    return None, filters_grad, stacked_grad


# -- unpooled_filter_gradient --------------------------------------------------------------------------------

# Rows of the unpooled gradient made at a time: 256 KiB of them per phase, so that the masked rows are
# still in cache when the product reads them.
_FILTER_GRADIENT_BLOCK_BYTES = 256 * 1024


def _unpooled_filter_gradient_infer(patches: Spec, argmax: Spec, grad: Spec) -> Spec:
    require_floating("unpooled_filter_gradient", grad)
    if len(patches.shape) != 2 or not argmax.dtype.is_integer or tuple(argmax.shape) != tuple(grad.shape):
        raise OpError(
            "op 'unpooled_filter_gradient' needs a patch matrix, and integer phase indices shaped like the "
            f"gradient; got {tuple(patches.shape)}, {tuple(argmax.shape)} {argmax.dtype.name}, {tuple(grad.shape)}"
        )
    return Spec((patches.shape[1], grad.shape[-1]), grad.dtype)


@register("unpooled_filter_gradient", infer=_unpooled_filter_gradient_infer, training_only=True)
def unpooled_filter_gradient_op(xp, patches, argmax, grad):
    """``matmul(patches, reshape(unpool_phases(argmax, grad), (-1, C)), transpose_a=True)``, the filter
    gradient of a phase-pooled convolution, without making the unpooled array (four times the pooled
    gradient, and only read once): block by block, each phase's masked gradient is multiplied while it
    is still in cache."""
    channels = grad.shape[-1]
    rows = grad.size // channels if channels else 0
    if rows == 0:  # an empty batch: nothing to sum
        return xp.zeros((patches.shape[1], channels), dtype=grad.dtype)
    phases = patches.shape[0] // rows
    stacked = patches.reshape(phases, rows, patches.shape[1])
    grad, argmax = grad.reshape(rows, channels), argmax.reshape(rows, channels)
    block = max(1, _FILTER_GRADIENT_BLOCK_BYTES // (channels * grad.itemsize))
    masked = xp.empty((min(block, rows), channels), dtype=grad.dtype)
    result = None
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        part = masked[: stop - start]
        for phase in range(phases):
            xp.multiply(grad[start:stop], argmax[start:stop] == phase, out=part)
            product = stacked[phase, start:stop].T @ part
            result = product if result is None else xp.add(result, product, out=result)
    return result


@unpooled_filter_gradient_op.def_gradient
def _(node, upstream):
    # Bilinear in (patches, grad) with u = unpool_phases(argmax, grad) as a (rows, C) matrix:
    # d patches = u @ upstream^T, and d grad = pick_phases(argmax, patches @ upstream).
    patches, argmax, grad = node.inputs
    _, _, need_grad = node.needs_gradient
    phases = patches.shape[0] * grad.shape[-1] // math.prod(grad.shape)
    unpooled = array_ops.reshape(execute(unpool_phases_op, (argmax, grad), {"phases": phases}), (-1, grad.shape[-1]))
    patches_grad = execute(math_ops.matmul_op, (unpooled, upstream), {"transpose_a": False, "transpose_b": True})
    grad_grad = None
    if need_grad:
        products = execute(math_ops.matmul_op, (patches, upstream), {"transpose_a": False, "transpose_b": False})
        products = array_ops.reshape(products, (phases, *grad.shape))
        grad_grad = execute(pick_phases_op, (argmax, products), {})
    return patches_grad, None, grad_grad
