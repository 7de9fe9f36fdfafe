"""Intra-op threads (``trainer/ops/parallel.py``): split kernels equal one-thread kernels bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.ops import conv_ops, parallel, training_ops


@pytest.fixture
def always_split(monkeypatch):
    """Splits every kernel, however small, into 2 or 3 chunks; restores the pool's settings after."""
    previous = parallel.threads()
    monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)
    yield
    parallel.set_threads(previous)


def _run(kernel, arrays, attrs, threads):
    parallel.set_threads(threads)
    copies = [a.copy() for a in arrays]
    result = kernel(np, *copies, **attrs)
    return result, copies


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_split_kernels_equal_one_thread(always_split, threads, seed):
    rng = np.random.default_rng(seed)
    batch, size, channels = rng.integers(1, 6), rng.integers(4, 12), rng.integers(1, 9)
    x = rng.standard_normal((batch, size, size, channels)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0  # ties, as after a ReLU
    window = {"ksize": (2, 2), "strides": tuple(rng.integers(1, 3, 2)), "padding": str(rng.choice(["SAME", "VALID"]))}
    pooled = conv_ops.max_pool2d_op.forward(np, x, **window)
    grad = rng.standard_normal(pooled.shape).astype(np.float32)
    shape = (int(rng.integers(1, 40)), 7)
    adam_arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    adam_arrays.insert(2, rng.random(shape).astype(np.float32))  # v >= 0
    adam_arrays.append(rng.standard_normal(shape).astype(np.float32))
    adam_attrs = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    cases = [
        (conv_ops.max_pool2d_op.forward, [x], window),
        (conv_ops.max_pool2d_grad_op.forward, [x, grad], window),
        (_patches, [x], {"ksize": (3, 2), "strides": (1, 2), "padding": "SAME", "dilations": (1, 1)}),
        (_adam, adam_arrays, adam_attrs),
    ]
    for kernel, arrays, attrs in cases:
        expected, expected_arrays = _run(kernel, arrays, attrs, 1)
        actual, actual_arrays = _run(kernel, arrays, attrs, threads)
        np.testing.assert_array_equal(actual, expected, err_msg=getattr(kernel, '__qualname__', ''))
        for a, b in zip(actual_arrays, expected_arrays):
            np.testing.assert_array_equal(a, b, err_msg=getattr(kernel, '__qualname__', ''))


def _patches(xp, x, **attrs):
    from trainer.ops import patch_ops  # noqa: PLC0415

    return patch_ops.conv2d_patches_op.forward(xp, x, **attrs)


def _adam(xp, variable, m, v, gradient, **attrs):
    training_ops.apply_adam_op.forward(xp, variable, m, v, gradient, np.float32(1e-3), **attrs)
    training_ops.apply_adam_amsgrad_op.forward(xp, variable, m, v, v.copy(), gradient, np.float32(1e-3), **attrs)


def test_an_error_in_a_chunk_reaches_the_caller(always_split):
    parallel.set_threads(2)

    def fail_in_second_half(start, stop):
        if start > 0:
            raise ValueError("chunk failed")

    with pytest.raises(ValueError, match="chunk failed"):
        parallel.split(np, fail_in_second_half, 10, 1 << 30)
    seen = []
    parallel.split(np, lambda start, stop: seen.append((start, stop)), 10, 1 << 30)  # the pool still works
    assert sorted(seen) == [(0, 5), (5, 10)]


def test_thread_count_is_validated():
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_threads(0)


def test_tf_config_sets_the_intra_op_threads():
    import trainer as tf  # noqa: PLC0415

    previous = parallel.threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(3)
        assert tf.config.threading.get_intra_op_parallelism_threads() == parallel.threads() == 3
        tf.config.threading.set_intra_op_parallelism_threads(0)
        assert parallel.threads() == parallel.default_threads()
    finally:
        parallel.set_threads(previous)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_splits_with_its_own_workers(always_split):
    import os  # noqa: PLC0415

    parallel.set_threads(2)
    parallel.split(np, lambda start, stop: None, 10, 1 << 30)  # the parent's worker exists now
    child = os.fork()
    if child == 0:
        seen = []
        parallel.split(np, lambda start, stop: seen.append((start, stop)), 10, 1 << 30)
        os._exit(0 if sorted(seen) == [(0, 5), (5, 10)] else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
