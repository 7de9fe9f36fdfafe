"""conv2d, depthwise_conv2d and pooling against plain loop references, and the tf.nn signatures around them.

The references loop over every output pixel and read the window straight from the unpadded input,
skipping positions outside it: nothing is shared with the im2col kernels they check. Gradients are
checked against finite differences in ``test_op_gradients.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainer as tf
from trainer.ops import conv_ops, patch_ops
from trainer.ops.registry import OpError, execute
from trainer.tensor import Tensor

# -- loop references ------------------------------------------------------------------------------------


def reference_axis(size, kernel, stride, dilation, padding):
    """Output size and padding before the input along one axis, by TensorFlow's documented rule."""
    span = (kernel - 1) * dilation + 1
    if padding == "VALID":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def window_positions(x_shape, kernel, strides, dilations, padding):
    """For each output pixel (oh, ow): the list of ((i, j), (row, col)) taps that fall inside the input."""
    (out_h, top), (out_w, left) = (
        reference_axis(x_shape[1 + a], kernel[a], strides[a], dilations[a], padding) for a in range(2)
    )
    positions = {}
    for oh in range(out_h):
        for ow in range(out_w):
            taps = []
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    row, col = oh * strides[0] - top + i * dilations[0], ow * strides[1] - left + j * dilations[1]
                    if 0 <= row < x_shape[1] and 0 <= col < x_shape[2]:
                        taps.append(((i, j), (row, col)))
            positions[oh, ow] = taps
    return (out_h, out_w), positions


def reference_conv2d(x, filters, strides, padding, dilations, depthwise=False):
    (out_h, out_w), positions = window_positions(x.shape, filters.shape[:2], strides, dilations, padding)
    channels = filters.shape[2] * filters.shape[3] if depthwise else filters.shape[3]
    result = np.zeros((x.shape[0], out_h, out_w, channels))
    for (oh, ow), taps in positions.items():
        for (i, j), (row, col) in taps:
            if depthwise:  # input channel c, multiplier m -> output channel c * multiplier + m
                result[:, oh, ow, :] += (x[:, row, col, :, None] * filters[i, j]).reshape(x.shape[0], -1)
            else:
                result[:, oh, ow, :] += x[:, row, col, :] @ filters[i, j]
    return result


def reference_pool(x, ksize, strides, padding, reduce):
    (out_h, out_w), positions = window_positions(x.shape, ksize, strides, (1, 1), padding)
    dtype = np.float64 if reduce is np.mean else x.dtype
    result = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), dtype=dtype)
    for (oh, ow), taps in positions.items():
        window = np.stack([x[:, row, col, :] for _, (row, col) in taps])
        result[:, oh, ow, :] = reduce(window, axis=0)
    return result


def reference_max_pool_grad(x, grad, ksize, strides, padding):
    """Each window's gradient goes to its first maximum in row-major window order."""
    _, positions = window_positions(x.shape, ksize, strides, (1, 1), padding)
    result = np.zeros_like(x)
    for (oh, ow), taps in positions.items():
        for n in range(x.shape[0]):
            for c in range(x.shape[3]):
                values = [x[n, row, col, c] for _, (row, col) in taps]
                row, col = taps[int(np.argmax(values))][1]
                result[n, row, col, c] += grad[n, oh, ow, c]
    return result


# -- random windows -------------------------------------------------------------------------------------------


@st.composite
def windows(draw, dilate=True, max_channels=6):
    """An NHWC shape with a window, strides, dilations and padding; 'VALID' only where the window fits."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilate else (1, 1)
    shape = tuple(draw(st.integers(1, high)) for high in (2, 7, 7, max_channels))
    fits = all(shape[1 + a] >= (kernel[a] - 1) * dilations[a] + 1 for a in range(2))
    padding = draw(st.sampled_from(["SAME", "VALID"] if fits else ["SAME"]))
    seed = draw(st.integers(0, 2**16))
    return shape, kernel, strides, dilations, padding, np.random.default_rng(seed)


FAST = settings(max_examples=40, deadline=None)


@FAST
@given(windows(), st.integers(1, 4))
def test_conv2d_matches_loop_reference(window, out_channels):
    shape, kernel, strides, dilations, padding, rng = window
    x, filters = rng.standard_normal(shape), rng.standard_normal(kernel + (shape[3], out_channels))
    result = tf.nn.conv2d(x, filters, strides=list(strides), padding=padding, dilations=list(dilations))
    expected = reference_conv2d(x, filters, strides, padding, dilations)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-10)


@FAST
@given(windows())
def test_conv2d_patches_hold_each_tap_where_the_filter_reshape_expects_it(window):
    shape, kernel, strides, dilations, padding, rng = window
    x = rng.standard_normal(shape)
    attrs = {"ksize": kernel, "strides": strides, "padding": padding, "dilations": dilations}
    patches = execute(patch_ops.conv2d_patches_op, (tf.constant(x),), attrs).numpy()
    (out_h, out_w), positions = window_positions(shape, kernel, strides, dilations, padding)
    expected = np.zeros((shape[0], out_h, out_w, kernel[0], kernel[1], shape[3]))
    for (oh, ow), taps in positions.items():
        for (i, j), (row, col) in taps:
            expected[:, oh, ow, i, j, :] = x[:, row, col, :]
    np.testing.assert_array_equal(patches, expected.reshape(patches.shape))


@FAST
@given(windows(), st.integers(1, 3))
def test_depthwise_conv2d_matches_loop_reference(window, multiplier):
    shape, kernel, strides, dilations, padding, rng = window
    x, filters = rng.standard_normal(shape), rng.standard_normal(kernel + (shape[3], multiplier))
    result = tf.nn.depthwise_conv2d(x, filters, strides=[1, *strides, 1], padding=padding, dilations=list(dilations))
    expected = reference_conv2d(x, filters, strides, padding, dilations, depthwise=True)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-10)


@FAST
@given(windows(dilate=False))
def test_pooling_matches_loop_reference(window):
    shape, kernel, strides, _, padding, rng = window
    x = rng.standard_normal(shape).astype(np.float32)
    max_result = tf.nn.max_pool2d(x, ksize=list(kernel), strides=list(strides), padding=padding)
    avg_result = tf.nn.avg_pool2d(x, ksize=list(kernel), strides=list(strides), padding=padding)
    np.testing.assert_array_equal(max_result.numpy(), reference_pool(x, kernel, strides, padding, np.max))
    np.testing.assert_allclose(avg_result.numpy(), reference_pool(x, kernel, strides, padding, np.mean), rtol=1e-6)
    assert avg_result.dtype == tf.float32 and max_result.dtype == tf.float32


@FAST
@given(windows(dilate=False))
def test_max_pool_on_integers_pads_with_the_lowest_value(window):
    shape, kernel, strides, _, padding, rng = window
    x = rng.integers(-100, -50, size=shape).astype(np.int32)  # all negative: zero padding would win
    result = tf.nn.max_pool2d(x, kernel, strides, padding)
    np.testing.assert_array_equal(result.numpy(), reference_pool(x, kernel, strides, padding, np.max))


@FAST
@given(windows(dilate=False, max_channels=3))
def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(window):
    shape, kernel, strides, _, padding, rng = window
    x = rng.integers(0, 2, size=shape).astype(np.float64)  # many ties, as after a ReLU
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        y = tf.nn.max_pool2d(tensor, kernel, strides, padding)
    upstream = rng.standard_normal(y.shape.as_list())
    gradient = tape.gradient(y, tensor, output_gradients=tf.constant(upstream))
    np.testing.assert_allclose(gradient.numpy(), reference_max_pool_grad(x, upstream, kernel, strides, padding))


# -- shape rules with unknown dimensions ------------------------------------------------------------------------


def _symbolic_cases(rng):
    """(op, eager input arrays, attrs) for each forward op, on a shape where every window fits."""
    x = rng.standard_normal((2, 7, 6, 3))
    conv = {"strides": (2, 1), "padding": "SAME", "dilations": (1, 2)}
    pool = {"ksize": (3, 2), "strides": (2, 2), "padding": "VALID"}
    return [
        (conv_ops.conv2d_op, [x, rng.standard_normal((3, 2, 3, 4))], conv),
        (conv_ops.depthwise_conv2d_op, [x, rng.standard_normal((2, 3, 3, 2))], {**conv, "padding": "VALID"}),
        (conv_ops.max_pool2d_op, [x], pool),
        (conv_ops.avg_pool2d_op, [x], {**pool, "padding": "SAME"}),
    ]


@pytest.mark.parametrize("unknown", [(0,), (0, 1, 2), (1,)])
def test_shape_rules_with_unknown_dimensions_agree_with_eager_shapes(unknown):
    for op, arrays, attrs in _symbolic_cases(np.random.default_rng(0)):
        eager = execute(op, [tf.constant(a) for a in arrays], attrs).numpy().shape
        x_shape = tuple(None if axis in unknown else d for axis, d in enumerate(arrays[0].shape))
        inputs = [Tensor.symbolic(x_shape, tf.float64)] + [tf.constant(a) for a in arrays[1:]]
        symbolic = execute(op, inputs, attrs)
        expected = tuple(None if axis in unknown else d for axis, d in enumerate(eager))
        assert symbolic.is_symbolic and tuple(symbolic.shape.as_list()) == expected, (op.name, x_shape)


def test_backprop_ops_take_their_shape_from_a_symbolic_input():
    x = Tensor.symbolic((None, 9, 9, 2), tf.float32)
    grad = Tensor.symbolic((None, 4, 4, 5), tf.float32)
    filters = tf.zeros((3, 3, 2, 5))
    attrs = {"strides": (2, 2), "padding": "VALID", "dilations": (1, 1)}
    assert execute(conv_ops.conv2d_backprop_input_op, (x, filters, grad), attrs).shape.as_list() == [None, 9, 9, 2]
    assert execute(conv_ops.conv2d_backprop_filter_op, (x, filters, grad), attrs).shape.as_list() == [3, 3, 2, 5]


def test_gradients_traced_with_an_unknown_batch_match_eager_ones():
    """The backprop ops read the input's shape at run time, so one trace serves every batch size."""
    rng = np.random.default_rng(3)
    kernel = tf.Variable(rng.standard_normal((3, 3, 2, 4)))

    def gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "SAME")), 2, 2, "SAME")
            y = tf.nn.avg_pool2d(y, 2, 1, "SAME")
            z = tf.nn.depthwise_conv2d(y, tf.ones((2, 2, 4, 2), tf.float64), [1, 1, 1, 1], "SAME")
            loss = tf.reduce_sum(z * z)
        return tape.gradient(loss, [x, kernel])

    traced = tf.function(gradients, input_signature=[tf.TensorSpec([None, 9, 9, 2], tf.float64)])
    for batch in (1, 3):
        x = tf.constant(rng.standard_normal((batch, 9, 9, 2)))
        for computed, expected in zip(traced(x), gradients(x)):
            np.testing.assert_allclose(computed.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


# -- the tf.nn signatures ------------------------------------------------------------------------------------------


def test_every_form_of_strides_and_dilations_means_the_same():
    rng = np.random.default_rng(1)
    x, filters = rng.standard_normal((1, 8, 8, 2)), rng.standard_normal((3, 3, 2, 2))
    forms = [2, [2], [2, 2], [1, 2, 2, 1], (2, 2)]
    results = [tf.nn.conv2d(x, filters, strides=form, padding="SAME", dilations=form).numpy() for form in forms]
    expected = reference_conv2d(x, filters, (2, 2), "SAME", (2, 2))
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-10)


def test_lowercase_padding_and_aliases_work():
    x = np.random.default_rng(2).standard_normal((1, 5, 5, 1))
    np.testing.assert_array_equal(tf.nn.max_pool(x, 2, 2, "same").numpy(), tf.nn.max_pool2d(x, 2, 2, "SAME").numpy())
    np.testing.assert_array_equal(tf.nn.avg_pool(x, 3, 1, "valid").numpy(), tf.nn.avg_pool2d(x, 3, 1, "VALID").numpy())


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda x, f: tf.nn.conv2d(x, f, 1, "SAME", data_format="NCHW"), NotImplementedError, "NHWC"),
        (lambda x, f: tf.nn.conv2d(x, f, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]), NotImplementedError, "explicit padding"),
        (lambda x, f: tf.nn.conv2d(x, f, [2, 1, 1, 1], "SAME"), ValueError, "batch and channel"),
        (lambda x, f: tf.nn.conv2d(x, f, 1, "FULL"), ValueError, "'SAME' or 'VALID'"),
        (lambda x, f: tf.nn.conv2d(x, f, 0, "SAME"), ValueError, "positive"),
        (lambda x, f: tf.nn.conv2d(tf.cast(x, tf.float64), f, 1, "SAME"), TypeError, "tf.cast"),
        (lambda x, f: tf.nn.conv2d(x, tf.zeros((3, 3, 2, 4)), 1, "SAME"), OpError, "expects 2"),
        (lambda x, f: tf.nn.conv2d(x, tf.zeros((7, 7, 3, 4)), 1, "VALID"), OpError, "'VALID'"),
        (lambda x, f: tf.nn.max_pool(tf.zeros((1, 4, 3)), 2, 2, "VALID"), NotImplementedError, "4-D NHWC"),
    ],
)
def test_unsupported_or_wrong_arguments_say_what_to_do(call, error, words):
    x, filters = tf.zeros((1, 5, 5, 3)), tf.zeros((3, 3, 3, 4))
    with pytest.raises(error, match=words):
        call(x, filters)


def test_phase_and_fused_crossentropy_shape_rules_name_what_does_not_fit():
    from trainer import dtypes  # noqa: PLC0415
    from trainer.ops import nn_ops, phase_ops  # noqa: PLC0415
    from trainer.ops.registry import Spec  # noqa: PLC0415

    f32, i8, i64 = dtypes.float32, dtypes.int8, dtypes.int64
    with pytest.raises(OpError, match="known number of phases"):
        phase_ops.max_pool_phases_op.infer(Spec((None, 2, 3, 3, 4), f32))
    with pytest.raises(OpError, match=r"indices of shape \(2, 3, 3, 4\) do not fit a gradient of shape \(2, 3, 3, 5\)"):
        phase_ops.unpool_phases_op.infer(Spec((2, 3, 3, 4), i8), Spec((2, 3, 3, 5), f32), phases=4)
    loss, grad = nn_ops.sparse_softmax_cross_entropy_and_grad_op.infer(Spec((8, 10), f32), Spec((8,), i64), Spec((1,), f32))
    assert loss.shape == (8,) and grad.shape == (8, 10)
    for upstream in ((3,), (8, 1)):
        with pytest.raises(OpError, match="does not broadcast to the loss"):
            nn_ops.sparse_softmax_cross_entropy_and_grad_op.infer(Spec((8, 10), f32), Spec((8,), i64), Spec(upstream, f32))
