"""The graph optimizer: each pass on traced graphs, run before and after on random inputs.

Every test traces a small function or Keras model, runs the graph before and after the pass with the
graph evaluator, and checks both that the outputs agree and that the pass changed what it claims
(node counts, op names, the report's lines); ``graph.check()`` verifies the result's structure.
"""

from __future__ import annotations

import numpy as np
import pytest

import trainer as tf
from trainer.graph.evaluator import Executable
from trainer.graph.ir import GraphError
from trainer.graph.passes import (
    PassReport,
    copy_graph,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
    fold_batch_norms,
    fold_constants,
    fuse,
    mask_before_unpooling,
    merge_crossentropy_gradients,
    optimize,
    peak_live_bytes,
    pool_by_phases,
    schedule_for_memory,
    share_patches,
    simplify,
)
from trainer.ops import fused_ops, nn_ops
from trainer.ops.math_ops import broadcast_like_op, cast_op
from trainer.ops.registry import execute

RNG = np.random.default_rng(0)


def trace(function, *shapes):
    specs = [tf.TensorSpec(shape) for shape in shapes]
    return tf.function(function).get_concrete_function(*specs).graph


def random_inputs(graph, batch=5):
    return [RNG.standard_normal([batch if d is None else d for d in v.shape]).astype(np.float32) for v in graph.inputs]


def assert_same_outputs(before, after, inputs=None, rtol=1e-5, atol=1e-6):
    inputs = random_inputs(before) if inputs is None else inputs
    expected, actual = Executable(before).run(*inputs), Executable(after).run(*inputs)
    assert len(expected) == len(actual)
    for index, (e, a) in enumerate(zip(expected, actual)):
        message = f"output {index} differs\nbefore:\n{before}\nafter:\n{after}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=message)


def op_names(graph) -> list[str]:
    return [node.op.name for node in graph.nodes]


def count(graph, name) -> int:
    return op_names(graph).count(name)


def mlp():
    return tf.keras.Sequential([
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip


def cnn():
    """Conv2D + BN + ReLU, a depthwise conv + BN + relu6, and a Dense + BN + tanh, with random BN statistics."""
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Conv2D(8, 3, input_shape=(10, 10, 3)),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu6"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(16),
        layers.BatchNormalization(),
        layers.Activation("tanh"),
        layers.Dense(10),
    ])  # fmt: skip
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            size = layer.gamma.shape[0]
            layer.moving_mean.assign(RNG.standard_normal(size).astype(np.float32))
            layer.moving_variance.assign(RNG.uniform(0.5, 2.0, size).astype(np.float32))
            layer.gamma.assign(RNG.uniform(0.5, 1.5, size).astype(np.float32))
            layer.beta.assign(RNG.standard_normal(size).astype(np.float32))
    return model


# -- dead nodes ------------------------------------------------------------------------------------------------


def test_dead_node_elimination_keeps_outputs_and_stateful_nodes():
    total = tf.Variable(np.zeros(3, np.float32))

    def function(x):
        tf.exp(x)  # dead
        tf.cast(x, tf.int32) + 1  # dead, and its constant with it
        total.assign_add(tf.reduce_sum(x, axis=0))  # stateful: kept with the reduce_sum it reads
        return x * 2.0

    before = trace(function, [None, 3])
    after, report = eliminate_dead_nodes(before)
    after.check()
    assert op_names(after) == ["reduce_sum", "assign_variable", "multiply"]
    assert report.changes[0].startswith("removed 3 dead nodes: ") and "exp" in report.changes[0]
    assert len(after.constants) == len(before.constants) - 1
    assert count(before, "exp") == 1, "the pass must leave its input graph as it was"

    inputs = random_inputs(before)
    expected = Executable(before).run(*inputs)[0], total.numpy()
    total.assign(np.zeros(3, np.float32))
    actual = Executable(after).run(*inputs)[0], total.numpy()
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-6)


def test_dead_node_elimination_reports_nothing_on_a_clean_graph():
    graph = trace(mlp(), [None, 28, 28])
    after, report = eliminate_dead_nodes(graph)
    assert not report.changed and op_names(after) == op_names(graph)


# -- common subexpressions -------------------------------------------------------------------------------------


def test_cse_merges_repeated_expressions_but_not_different_attributes():
    def function(x):
        first = tf.exp(x) * 3.0
        second = tf.exp(x) * 3.0
        return first + second, tf.reduce_sum(x, axis=0), tf.reduce_sum(x, axis=1)

    before = trace(function, [4, 3])
    after, report = eliminate_common_subexpressions(before)
    after.check()
    assert count(before, "exp") == 2 and count(after, "exp") == 1
    assert count(after, "multiply") == 1
    assert count(after, "reduce_sum") == 2, "reductions over different axes are different expressions"
    assert any(line.startswith("merged 2 repeated nodes") for line in report.changes)
    assert "merged 1 duplicate constant" in report.changes  # the two 3.0 constants
    assert_same_outputs(before, after)


def test_cse_never_merges_random_draws():
    graph = trace(lambda x: tf.nn.dropout(x, 0.5) + tf.nn.dropout(x, 0.5), [None, 3])
    after, _ = eliminate_common_subexpressions(graph)
    assert count(graph, "random_uniform") == count(after, "random_uniform") == 2


def test_cse_keeps_reads_on_both_sides_of_a_variable_write():
    variable = tf.Variable(np.ones(3, np.float32))

    def function(x):
        old = variable * 2.0
        variable.assign(x)
        return old + variable * 2.0

    before = trace(function, [3])
    after, _ = eliminate_common_subexpressions(before)
    assert count(after, "multiply") == 2
    inputs = random_inputs(before)
    expected = Executable(before).run(*inputs)[0]
    variable.assign(np.ones(3, np.float32))
    np.testing.assert_allclose(Executable(after).run(*inputs)[0], expected)


# -- constant folding -------------------------------------------------------------------------------------------


def test_constant_folding_evaluates_constant_subtrees_fills_ranges_and_known_shapes():
    def function(x):
        scale = tf.exp(tf.constant([1.0, 2.0, 3.0])) * 2.0
        offsets = tf.cast(tf.range(3), tf.float32) + tf.fill([3], 0.5)
        width = tf.cast(tf.shape(x[0]), tf.float32)  # x[0] has a known shape: (3,)
        batch = tf.cast(tf.shape(x)[0], tf.float32)  # the batch is unknown until the graph runs
        return x * scale + offsets + width + batch

    before = trace(function, [None, 3])
    after, report = fold_constants(before)
    after.check()
    for name in ("exp", "range", "fill"):
        assert count(before, name) == 1 and count(after, name) == 0, name
    assert count(before, "shape") == 2 and count(after, "shape") == 1
    assert report.changes[0].startswith("folded ")
    assert_same_outputs(before, after)


def test_constant_folding_leaves_results_over_the_size_cap():
    before = trace(lambda x: x + tf.exp(tf.constant([1.0, 2.0, 3.0])), [None, 3])
    after, report = fold_constants(before, max_bytes=8)  # the exp of three floats takes 12
    assert count(after, "exp") == 1
    assert "over 8 bytes" in report.changes[0]
    huge = trace(lambda x: x + tf.reduce_sum(tf.zeros([1024, 1024, 5])), [3])  # 20 MB of zeros
    assert count(fold_constants(huge)[0], "fill") == 1


def test_constant_folding_skips_stateful_nodes():
    graph = trace(lambda x: x + tf.random.uniform([3]), [3])
    after, report = fold_constants(graph)
    assert count(after, "random_uniform") == 1 and not report.changed


# -- algebraic simplification -----------------------------------------------------------------------------------


def test_simplify_removes_neutral_arithmetic_only_when_shapes_prove_it():
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)

    def function(x):
        y = tf.constant(ones) * (x * 1.0)
        y = (tf.constant(zeros) + y + 0.0 - tf.constant(zeros)) / 1.0
        y = tf.identity(execute(cast_op, (y,), {"dtype": tf.float32}))
        broadcast = x * tf.constant(np.ones((2, 4), np.float32))  # (?, 4) * (2, 4) is (2, 4): kept
        return y * 2.0, broadcast

    before = trace(function, [None, 4])
    after, report = simplify(before)
    after.check()
    assert op_names(after) == ["multiply", "multiply"]
    labels = " ".join(report.changes)
    claims = ("multiplications by one", "additions of zero", "subtractions of zero", "divisions by one")
    for claim in claims + ("casts to the same dtype", "identities"):
        assert claim in labels, claim
    assert_same_outputs(before, after, [RNG.standard_normal((1, 4)).astype(np.float32)])


def test_simplify_composes_transposes_and_reshapes():
    def function(x):  # x: (?, 2, 3)
        cancelled = tf.transpose(tf.transpose(x, [0, 2, 1]), [0, 2, 1])
        rotated = tf.transpose(tf.transpose(x, [1, 2, 0]), [1, 2, 0])
        flat = tf.reshape(tf.reshape(cancelled, [-1, 6]), [-1, 3, 2])
        same = tf.reshape(x, [-1, 2, 3])
        return rotated, flat, same + cancelled

    before = trace(function, [None, 2, 3])
    after, report = simplify(before)
    after.check()
    assert count(before, "transpose") == 4 and count(after, "transpose") == 1
    assert [node.attrs["perm"] for node in after.nodes if node.op.name == "transpose"] == [(2, 0, 1)]
    assert count(before, "reshape") == 3 and count(after, "reshape") == 1
    assert any("composed transposes" in line for line in report.changes)
    assert any("merged reshapes" in line for line in report.changes)
    assert_same_outputs(before, after)


def test_simplify_drops_broadcasts_the_elementwise_op_does_itself():
    def function(column, row, matrix):  # (4, 1), (1, 3), (4, 3)
        spread = execute(broadcast_like_op, (column, matrix), {})
        unary = tf.negative(execute(broadcast_like_op, (column, matrix), {}))  # needs the (4, 3) shape: kept
        wider = execute(broadcast_like_op, (row, matrix), {}) + row  # (1, 3) + (1, 3) is not (4, 3): kept
        same = execute(broadcast_like_op, (matrix, matrix), {})
        return spread * matrix, unary, wider, same - matrix

    before = trace(function, [4, 1], [1, 3], [4, 3])
    after, report = simplify(before)
    after.check()
    assert count(before, "broadcast_like") == 4 and count(after, "broadcast_like") == 2
    assert any("broadcasts that the elementwise op does itself" in line for line in report.changes)
    assert any("broadcasts to the shape the input has" in line for line in report.changes)
    assert_same_outputs(before, after)


def test_simplify_drops_reductions_of_scalars_and_folding_runs_again_after_it():
    def function(x):  # x: (3,)
        total = tf.reduce_sum(x)
        constant = execute(broadcast_like_op, (tf.constant([1.0, 2.0, 3.0]), x), {})  # a view simplify drops
        return tf.reduce_sum(total), tf.reduce_max(total * 2.0), tf.reduce_sum(constant) + total

    before = trace(function, [3])
    after, report = simplify(before)
    after.check()
    assert count(before, "reduce_sum") + count(before, "reduce_max") == 4
    assert count(after, "reduce_sum") == 2 and count(after, "reduce_max") == 0  # the sum of x and of the constant
    assert any("reductions of scalars" in line for line in report.changes)
    assert_same_outputs(before, after)
    optimized, reports = optimize(before)
    folded = [r for r in reports if r.name == "constant-folding"]
    assert len(folded) == 2 and count(optimized, "reduce_sum") == 1, "the constant's sum folds once simplified"
    assert_same_outputs(before, optimized)


def test_simplify_takes_an_argmax_of_a_softmax_from_the_logits():
    def function(x):
        probabilities = tf.nn.softmax(x + 1.0)
        return tf.argmax(probabilities, axis=-1), tf.argmax(probabilities, axis=0)

    before = trace(function, [6, 5])
    after, report = simplify(before)
    assert count(after, "softmax") == 1  # the argmax over the batch axis still reads the probabilities
    assert [n.inputs[0].producer.op.name if n.inputs[0].kind == "node" else "input" for n in after.nodes if n.op.name == "argmax"] == ["add", "softmax"]
    assert any("argmaxes of softmaxes" in line for line in report.changes)
    assert_same_outputs(before, after)


def test_a_training_step_computes_its_accuracy_from_the_logits():
    # The logits depend on the weights the update writes: the argmax may read them because they are
    # a fresh array (the dense layer's output), computed before the update.
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = RNG.random((8, 28, 28)).astype(np.float32), RNG.integers(0, 10, 8)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    concrete = next(iter(model.make_train_function().function._cache.values()))
    assert count(concrete.graph, "softmax") == 1 and count(concrete.optimized_graph, "softmax") == 0


def test_simplify_drops_broadcasts_in_training_graphs():
    model = tf.keras.Sequential([tf.keras.Input(shape=(5,)), tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = RNG.standard_normal((8, 5)).astype(np.float32), RNG.integers(0, 3, 8)
    model.train_on_batch(x, y)
    concrete = next(iter(model.make_train_function().function._cache.values()))
    before, after = concrete.graph, concrete.optimized_graph
    assert count(after, "broadcast_like") < count(before, "broadcast_like")


# -- masking before unpooling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ksize, strides, padding", [(2, 2, "VALID"), (2, 2, "SAME"), (3, 2, "VALID"), (3, 1, "SAME")])
def test_relu_masks_move_before_unpooling_with_equal_results(ksize, strides, padding):
    def function(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            pooled = tf.nn.max_pool2d(tf.nn.relu(x), ksize, strides, padding)
            loss = tf.reduce_sum(pooled * pooled)
        return tape.gradient(loss, x)

    before = trace(function, [2, 7, 7, 3])
    after, report = mask_before_unpooling(before)
    after.check()
    shapes = lambda graph: [node.outputs[0].shape for node in graph.nodes if node.op.name == "relu_grad"]  # noqa: E731
    assert shapes(before) == [(2, 7, 7, 3)] and shapes(after) == [before.nodes[1].outputs[0].shape]
    assert any("before unpooling" in line for line in report.changes)
    x = RNG.standard_normal((2, 7, 7, 3)).astype(np.float32)
    x[:, :4] = np.minimum(x[:, :4], 0)  # all-negative windows: the ReLU ties them at zero
    np.testing.assert_array_equal(Executable(after).run(x)[0], Executable(before).run(x)[0])


def test_unpooling_mask_moves_only_when_nothing_else_reads_the_unmasked_gradient():
    def function(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.relu(x)
            loss = tf.reduce_sum(tf.nn.max_pool2d(y, 2, 2, "VALID"))
        unpooled = tape.gradient(loss, y)
        return execute(nn_ops.relu_grad_op, (unpooled, y), {}), unpooled  # the unmasked gradient is read too

    before, _ = eliminate_dead_nodes(trace(function, [1, 4, 4, 2]))
    after, report = mask_before_unpooling(before)
    relu_shapes = lambda graph: [n.outputs[0].shape for n in graph.nodes if n.op.name == "relu_grad"]  # noqa: E731
    assert relu_shapes(after) == relu_shapes(before) == [(1, 4, 4, 2)]
    assert not any("before unpooling" in line for line in report.changes)


@pytest.mark.parametrize("ksize, strides, padding", [(2, 2, "VALID"), (3, 2, "SAME"), (2, 1, "VALID"), (2, 2, "SAME")])
def test_pooling_gradients_reuse_the_forward_maximum_with_equal_results(ksize, strides, padding):
    def function(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            pooled = tf.nn.max_pool2d(x, ksize, strides, padding)
            loss = tf.reduce_sum(pooled * pooled)
        return tape.gradient(loss, x)

    def traced(shape):
        before = trace(function, shape)
        after, report = mask_before_unpooling(before)
        after.check()
        assert "max_pool2d_grad" not in op_names(after) and "max_pool2d_grad_from_output" in op_names(after)
        assert any("forward maximum" in line for line in report.changes)
        return before, after

    before, after = traced([3, 7, 6, 2])
    x = RNG.standard_normal((3, 7, 6, 2)).astype(np.float32)
    x[:, :3] = np.round(x[:, :3])  # ties inside windows: the first maximum takes the gradient
    x[0] = 0
    np.testing.assert_array_equal(Executable(after).run(x)[0], Executable(before).run(x)[0])


# -- phase pooling -------------------------------------------------------------------------------------------------


def _conv_pool_step(image, pool, activation="relu", extra_output=False, strides=None):
    """A traced training step of Conv2D -> MaxPool -> Conv2D -> MaxPool -> Dense, optimized up to (not
    including) phase pooling; returns it and its variables."""
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input(shape=image),
        layers.Conv2D(4, 3, activation=activation),
        layers.MaxPooling2D(pool, strides),
        layers.Conv2D(5, 2, activation=activation),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3),
    ])  # fmt: skip

    def step(x):
        with tf.GradientTape() as tape:
            convolved = y = model.layers[0](x)
            for layer in model.layers[1:]:
                y = layer(y)
            loss = tf.reduce_sum(tf.square(y))
        gradients = tape.gradient(loss, model.trainable_variables)
        return (loss, *gradients, convolved) if extra_output else (loss, *gradients)

    graph = trace(step, [3, *image])  # a known batch, as fit traces it: the bias gradients simplify away
    passes = [p for p in optimize.__defaults__[0] if p.__name__ not in ("pool_by_phases", "schedule_for_memory")]
    before, _ = optimize(graph, passes, for_inference=False)
    return before


@pytest.mark.parametrize("image, pool", [((12, 12, 2), 2), ((11, 9, 1), 2), ((14, 13, 3), 3)])
def test_convolutions_pool_by_phases_with_the_same_step(image, pool):
    before = _conv_pool_step(image, pool)
    assert count(before, "max_pool2d_grad_from_output") == 2
    after, report = pool_by_phases(before)
    after.check()
    assert count(after, "max_pool2d") == count(after, "max_pool2d_grad_from_output") == 0
    assert count(after, "max_pool_phases") == 2 and count(after, "conv2d_phase_patches") == 2
    assert count(after, "conv2d_backprop_input_from_phases") == 1  # only the second convolution's input needs one
    assert count(after, "unpooled_filter_gradient") == 1  # the first one's filter gradient unpools block by block
    assert report.changes == [f"pooled 2 convolutions by phases: {', '.join(f'{v} max_pool2d' for v in _pool_refs(before))}"]
    x = RNG.standard_normal((3, *image)).astype(np.float32)
    x[:, : image[0] // 2] = 0  # flat regions: every member of their windows ties
    assert_same_outputs(before, after, [x], rtol=1e-5, atol=1e-5)


def test_a_prediction_pools_its_convolutions_by_phases_but_an_export_does_not():
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(11, 12, 2)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(3, 2, activation="tanh"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
    ])  # fmt: skip
    graph = trace(lambda x: model(x, training=False), [None, 11, 12, 2])
    before, _ = optimize(graph, [p for p in optimize.__defaults__[0] if p.__name__ != "pool_by_phases"], for_inference=False)
    after, reports = optimize(graph, for_inference=False)
    assert count(after, "max_pool2d") == 0 and count(after, "max_pool_phases") == 2
    assert any("2 convolutions without gradients" in str(report) for report in reports)
    x = RNG.standard_normal((3, 11, 12, 2)).astype(np.float32)
    x[:, :4] = 0  # ties in flat regions
    assert_same_outputs(before, after, [x], rtol=1e-5, atol=1e-5)
    exported, _ = optimize(graph, for_inference=True)
    assert count(exported, "max_pool_phases") == 0 and count(exported, "max_pool2d") == 2


def _pool_refs(graph):
    return [node.outputs[0].ref for node in graph.nodes if node.op.name == "max_pool2d"]


def test_phase_pooling_needs_a_tiling_pool_a_relu_and_an_image_read_by_the_pool_alone():
    for kwargs in ({"extra_output": True}, {"activation": "tanh"}):
        before = _conv_pool_step((8, 8, 1), 2, **kwargs)
        after, report = pool_by_phases(before)
        # The first convolution's image is returned, or its activation's gradient needs the whole image.
        assert count(after, "max_pool_phases") == (1 if kwargs.get("extra_output") else 0)
    overlapping = _conv_pool_step((12, 12, 1), 3, strides=2)  # the first pool's windows overlap
    after, _ = pool_by_phases(overlapping)
    assert count(after, "max_pool_phases") == 1


# -- crossentropy ----------------------------------------------------------------------------------------------------


def test_a_crossentropy_and_its_gradient_come_from_one_softmax_with_the_same_bits():
    def step(logits, labels):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        return loss, tape.gradient(loss, logits)

    specs = [tf.TensorSpec([6, 5]), tf.TensorSpec([6], tf.int64)]
    graph = tf.function(step).get_concrete_function(*specs).graph
    passes = [p for p in optimize.__defaults__[0] if p.__name__ not in ("merge_crossentropy_gradients", "schedule_for_memory")]
    before, _ = optimize(graph, passes, for_inference=False)
    after, report = merge_crossentropy_gradients(before)
    after.check()
    assert count(before, "sparse_softmax_cross_entropy_grad") == 1 and count(after, "sparse_softmax_cross_entropy_and_grad") == 1
    assert count(after, "sparse_softmax_cross_entropy_with_logits") == count(after, "sparse_softmax_cross_entropy_grad") == 0
    assert report.changes and "together" in report.changes[0]
    inputs = [RNG.standard_normal((6, 5)).astype(np.float32) * 4, RNG.integers(0, 5, 6)]
    for expected, actual in zip(Executable(before).run(*inputs), Executable(after).run(*inputs)):
        np.testing.assert_array_equal(actual, expected)

    def mean_step(logits, labels):  # the upstream gradient is scaled after the loss: the merged node cannot run early
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        return loss, tape.gradient(loss, logits)

    scaled, _ = optimize(tf.function(mean_step).get_concrete_function(*specs).graph, passes, for_inference=False)
    assert not merge_crossentropy_gradients(scaled)[1].changed


# -- shared patches ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strides, padding, dilations", [(1, "VALID", 1), (2, "SAME", 1), (1, "SAME", 2)])
def test_a_convolution_shares_its_patches_with_its_filter_gradient(strides, padding, dilations):
    filters = tf.Variable(RNG.standard_normal((3, 3, 2, 4)).astype(np.float32))
    bias = tf.Variable(RNG.standard_normal(4).astype(np.float32))

    def function(x):
        with tf.GradientTape() as tape:
            y = tf.nn.relu(tf.nn.conv2d(x, filters, strides, padding, dilations=dilations) + bias)
            loss = tf.reduce_sum(y * y)
        return (y, *tape.gradient(loss, [filters, bias]))

    before, _ = fuse(trace(function, [None, 9, 8, 2]))
    after, report = share_patches(before)
    after.check()
    assert count(before, "conv2d_backprop_filter") == 1 and count(after, "conv2d_backprop_filter") == 0
    assert count(after, "conv2d_patches") == 1 and count(after, "fused_conv2d") == 0
    assert any("shared the patches of 1 convolution" in line for line in report.changes)
    inputs = [RNG.standard_normal((3, 9, 8, 2)).astype(np.float32)]
    for expected, actual in zip(Executable(before).run(*inputs), Executable(after).run(*inputs)):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_patches_are_not_shared_without_a_filter_gradient_or_with_unknown_image_sizes():
    filters = tf.Variable(RNG.standard_normal((3, 3, 2, 4)).astype(np.float32))

    def gradient_of(target):
        def function(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.nn.conv2d(x, filters, 1, "SAME"))
            return tape.gradient(loss, x if target == "input" else filters)

        return function

    inference = trace(lambda x: tf.nn.conv2d(x, filters, 1, "SAME"), [None, 6, 6, 2])
    input_gradient = trace(gradient_of("input"), [None, 6, 6, 2])
    unknown_sizes = trace(gradient_of("filters"), [None, None, None, 2])
    assert count(unknown_sizes, "conv2d_backprop_filter") == 1
    for graph in (inference, input_gradient, unknown_sizes):
        after, report = share_patches(eliminate_dead_nodes(graph)[0])
        assert count(after, "conv2d_patches") == 0 and not report.changed


# -- fusion --------------------------------------------------------------------------------------------------------


FUSABLE_LAYERS = {  # fused op -> (a layer with a given activation, its input shape)
    "fused_matmul": (lambda activation: tf.keras.layers.Dense(6, activation=activation), [None, 5]),
    "fused_conv2d": (
        lambda activation: tf.keras.layers.Conv2D(4, 3, padding="same", activation=activation),
        [None, 6, 6, 2],
    ),
    "fused_depthwise_conv2d": (
        lambda activation: tf.keras.layers.DepthwiseConv2D(3, activation=activation),
        [None, 6, 6, 2],
    ),
}


@pytest.mark.parametrize("activation", ["relu", "relu6", "tanh", "sigmoid"])
@pytest.mark.parametrize("fused_name", sorted(FUSABLE_LAYERS))
def test_fusion_of_a_layer_with_bias_and_activation(fused_name, activation):
    make_layer, shape = FUSABLE_LAYERS[fused_name]
    before = trace(tf.keras.Sequential([tf.keras.Input(shape[1:]), make_layer(activation)]), shape)
    after, report = fuse(before)
    after.check()
    assert op_names(after) == [fused_name], str(after)
    assert after.nodes[0].attrs["activation"] == activation
    assert len(after.nodes[0].inputs) == 3  # with the bias
    assert report.changes[0].startswith("fused 1 chain: ")
    assert_same_outputs(before, after)


def test_fusion_needs_intermediates_without_other_readers():
    weights, bias = tf.Variable(RNG.standard_normal((4, 3)).astype(np.float32)), tf.Variable(np.ones(3, np.float32))

    def function(x):
        hidden = tf.matmul(x, weights) + bias
        return tf.nn.relu(hidden), hidden, tf.nn.leaky_relu(tf.matmul(x, weights) + bias)

    before = trace(function, [None, 4])
    after, _ = fuse(before)
    after.check()
    # relu cannot absorb `hidden` (also an output); leaky_relu has no fused form.
    assert op_names(after) == ["fused_matmul", "relu", "fused_matmul", "leaky_relu"]
    assert {node.attrs["activation"] for node in after.nodes if node.op.name == "fused_matmul"} == {"none"}
    assert_same_outputs(before, after)


# -- batch-norm folding --------------------------------------------------------------------------------------------


def test_batch_norm_folds_into_conv_depthwise_and_dense():
    model = cnn()
    before = trace(model, [None, 10, 10, 3])
    assert count(before, "batch_norm_inference") == 3
    after, report = fold_batch_norms(before)
    after.check()
    assert count(after, "batch_norm_inference") == 0
    fused = [name for name in op_names(after) if name.startswith("fused")]
    assert fused == ["fused_conv2d", "fused_depthwise_conv2d", "fused_matmul"]
    assert not any("batch_normalization" in v.name for v in after.variables), "the folded statistics must be constants"
    assert report.changes[0].startswith("folded 3 batch norms: ")
    assert_same_outputs(before, after, atol=1e-5)
    x = random_inputs(before)[0]
    np.testing.assert_allclose(Executable(after).run(x)[0], model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_batch_norm_folding_is_skipped_when_training():
    graph = trace(cnn(), [None, 10, 10, 3])
    after, reports = optimize(graph, for_inference=False)
    assert count(after, "batch_norm_inference") == 3
    assert "batch-norm-folding" not in [report.name for report in reports]
    assert_same_outputs(graph, after)


# -- memory schedule -----------------------------------------------------------------------------------------------


def test_schedule_lowers_the_peak_of_live_intermediates():
    def function(x):
        doubled, tripled = x * 2.0, x * 3.0  # two large values alive together in the traced order
        return tf.reduce_sum(doubled, axis=1) + tf.reduce_sum(tripled, axis=1)

    before = trace(function, [None, 256])
    after, report = schedule_for_memory(before)
    after.check()
    assert peak_live_bytes(after, after.nodes) < peak_live_bytes(before, before.nodes)
    assert op_names(after) != op_names(before) and sorted(op_names(after)) == sorted(op_names(before))
    assert "peak live intermediate bytes" in report.changes[0]
    assert_same_outputs(before, after)


def test_schedule_keeps_variable_reads_on_their_side_of_writes():
    variable = tf.Variable(np.ones((32, 32), np.float32))

    def function(x):  # x: (?, 32, 32)
        big = x * 2.0
        old = variable * 3.0  # must run before the write
        variable.assign(tf.reduce_sum(big, axis=0))
        new = variable + 1.0  # must run after it
        return tf.reduce_sum(old) + tf.reduce_sum(new)

    def position(graph, name):  # of the `name` node reading the variable
        return next(i for i, n in enumerate(graph.nodes) if n.op.name == name and n.inputs[0].kind == "variable")

    before = trace(function, [None, 32, 32])
    after, report = schedule_for_memory(before)
    # The order changes (`old` no longer lives beside `big`), but left free the greedy order would
    # also run the write, which frees its input, before `old`, which only allocates.
    assert report.changed
    assert position(after, "multiply") < position(after, "assign_variable") < position(after, "add")
    inputs = random_inputs(before)
    expected = Executable(before).run(*inputs)[0]
    variable.assign(np.ones((32, 32), np.float32))
    np.testing.assert_allclose(Executable(after).run(*inputs)[0], expected, rtol=1e-6)


def test_schedule_never_raises_the_peak():
    for model, shape in ((mlp(), [None, 28, 28]), (cnn(), [None, 10, 10, 3])):
        graph = trace(model, shape)
        after, report = schedule_for_memory(graph)
        assert peak_live_bytes(after, after.nodes) <= peak_live_bytes(graph, graph.nodes)
        assert report.changed == (op_names(after) != op_names(graph))


# -- the pipeline -----------------------------------------------------------------------------------------------------


def test_pipeline_turns_the_mlp_into_fused_dense_layers():
    graph = trace(mlp(), [None, 28, 28])
    text = str(graph)
    after, reports = optimize(graph)
    after.check()
    assert op_names(after) == ["reshape", "fused_matmul", "fused_matmul", "softmax"]
    assert [node.attrs.get("activation") for node in after.nodes[1:3]] == ["relu", "none"]
    names = ["dead-nodes", "constant-folding", "simplify", "constant-folding", "cse", "batch-norm-folding", "fusion"]
    assert [r.name for r in reports] == names + ["dead-nodes", "memory-schedule"]  # no training-only passes
    _, training_reports = optimize(graph, for_inference=False)
    assert [r.name for r in training_reports] == [
        name for name in names if name != "batch-norm-folding"
    ] + ["crossentropy", "shared-patches", "pooling-gradients", "phase-pooling", "dead-nodes", "memory-schedule"]
    assert str(graph) == text, "optimize must not edit the graph it is given"
    assert_same_outputs(graph, after)


def test_pipeline_turns_the_cnn_into_fused_ops_without_batch_norms():
    graph = trace(cnn(), [None, 10, 10, 3])
    after, reports = optimize(graph)
    after.check()
    assert op_names(after) == ["fused_conv2d", "fused_depthwise_conv2d", "reduce_mean", "fused_matmul", "fused_matmul"]
    assert [node.attrs.get("activation") for node in after.nodes] == ["relu", "relu6", None, "tanh", "none"]
    assert all(str(report).startswith(report.name + ": ") for report in reports)
    assert_same_outputs(graph, after, atol=1e-5)


def test_optimizer_options_switch_passes_off_for_functions_traced_afterwards():
    def step(x):
        return tf.nn.relu(tf.matmul(x, tf.ones([3, 2])) + tf.ones([2]))

    try:
        tf.config.optimizer.set_experimental_options({"remapping": False, "constant_folding": False})
        assert tf.config.optimizer.get_experimental_options() == {"constant_folding": False, "remapping": False}
        unfused = tf.function(step).get_concrete_function(tf.TensorSpec([4, 3]))
        assert count(unfused.optimized_graph, "fused_matmul") == 0
        names = [report.name for report in unfused.pass_reports]
        assert "fusion" not in names and "constant-folding" not in names and "simplify" in names
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": True, "constant_folding": True})
    assert tf.config.optimizer.get_experimental_options() == {}
    assert count(optimize(trace(step, [4, 3]))[0], "fused_matmul") == 1
    with pytest.raises(ValueError, match="unknown graph optimizer option.*'remaping'.*'remapping'"):
        tf.config.optimizer.set_experimental_options({"remaping": False})
    with pytest.raises(TypeError, match="must be True or False"):
        tf.config.optimizer.set_experimental_options({"remapping": 0})


def test_pipeline_names_a_pass_that_breaks_the_graph():
    def breaking_pass(graph):
        graph = copy_graph(graph)
        graph.nodes.reverse()  # uses values before they are defined
        return graph, PassReport("reverse")

    with pytest.raises(GraphError, match="'reverse' pass left an invalid graph"):
        optimize(trace(mlp(), [None, 28, 28]), passes=(breaking_pass,))


# -- the fused ops against the ops they replace ---------------------------------------------------------------------

UNFUSED_ACTIVATIONS = {
    "none": lambda v: v,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
}


def assert_same_values_and_gradients(fused, unfused, arrays):
    """``fused`` and ``unfused`` agree in value and in the gradients of a random projection of it."""
    tensors = [tf.constant(array) for array in arrays]
    results = []
    for function in (fused, unfused):
        with tf.GradientTape() as tape:
            for tensor in tensors:
                tape.watch(tensor)
            output = function(*tensors)
        cotangent = tf.constant(np.random.default_rng(1).standard_normal(output.shape.as_list()))
        gradients = tape.gradient(output, tensors, output_gradients=cotangent)
        results.append([output.numpy()] + [gradient.numpy() for gradient in gradients])
    for index, (a, b) in enumerate(zip(*results)):
        what = "value" if index == 0 else f"gradient of input {index - 1}"
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("activation", sorted(fused_ops.FUSED_ACTIVATIONS))
def test_fused_matmul_matches_matmul_add_activation(activation):
    arrays = [RNG.standard_normal(shape) * 3 for shape in ((5, 4), (3, 4), (3,))]  # *3: relu6 saturates too
    attrs = {"activation": activation, "transpose_b": True}
    fused = lambda x, w, b: execute(fused_ops.fused_matmul_op, (x, w, b), attrs)
    unfused = lambda x, w, b: UNFUSED_ACTIVATIONS[activation](tf.matmul(x, w, transpose_b=True) + b)
    assert_same_values_and_gradients(fused, unfused, arrays)


@pytest.mark.parametrize("activation", sorted(fused_ops.FUSED_ACTIVATIONS))
@pytest.mark.parametrize("depthwise", [False, True])
def test_fused_convolutions_match_conv_add_activation(activation, depthwise):
    conv = tf.nn.depthwise_conv2d if depthwise else tf.nn.conv2d
    op = fused_ops.fused_depthwise_conv2d_op if depthwise else fused_ops.fused_conv2d_op
    attrs = {"strides": (2, 1), "padding": "SAME", "dilations": (1, 1)}
    channels = 3 * 2 if depthwise else 2  # 3 input channels, 2 filters each (depthwise) or in all
    arrays = [RNG.standard_normal(shape) * 3 for shape in ((2, 5, 6, 3), (3, 2, 3, 2), (channels,))]
    fused = lambda x, f, b: execute(op, (x, f, b), {"activation": activation, **attrs})
    unfused = lambda x, f, b: UNFUSED_ACTIVATIONS[activation](conv(x, f, strides=[1, 2, 1, 1], padding="SAME") + b)
    assert_same_values_and_gradients(fused, unfused, arrays)


def test_batch_norm_inference_matches_its_composition():
    mean, gamma, beta = RNG.standard_normal((3, 5))
    arrays = [RNG.standard_normal((4, 3, 5)), mean, RNG.uniform(0.5, 2, 5), gamma, beta]
    fused = lambda x, m, v, g, b: fused_ops.batch_normalization(x, m, v, b, g, 1e-3)
    unfused = lambda x, m, v, g, b: (x - m) * (tf.math.rsqrt(v + 1e-3) * g) + b
    assert_same_values_and_gradients(fused, unfused, arrays)


def test_fusion_applies_in_training_graphs_but_never_across_a_variable_write():
    from trainer.graph.passes import optimize  # noqa: PLC0415

    kernel = tf.Variable(np.ones((3, 2), np.float32))
    bias = tf.Variable(np.zeros(2, np.float32))

    def step(x):
        y = tf.nn.relu(tf.matmul(x, kernel) + bias)
        kernel.assign_sub(tf.ones((3, 2)) * 0.1)  # the update runs after the forward pass
        return y

    graph = tf.function(step).get_concrete_function(tf.TensorSpec([None, 3])).graph
    fused, _ = optimize(graph, for_inference=False)
    assert "fused_matmul" in [node.op.name for node in fused.nodes]

    def interleaved(x):
        product = tf.matmul(x, kernel)
        kernel.assign_sub(tf.ones((3, 2)) * 0.1)  # a write between the matmul and its bias add
        return tf.nn.relu(product + bias)

    graph = tf.function(interleaved).get_concrete_function(tf.TensorSpec([None, 3])).graph
    kept, _ = optimize(graph, for_inference=False)
    assert "fused_matmul" not in [node.op.name for node in kept.nodes]
    inputs = np.ones((2, 3), np.float32)
    kernel.assign(np.ones((3, 2), np.float32))
    expected = np.maximum(inputs @ np.ones((3, 2)), 0)
    from trainer.graph import Executable  # noqa: PLC0415

    np.testing.assert_allclose(Executable(kept).run(inputs)[0], expected, rtol=1e-6)
