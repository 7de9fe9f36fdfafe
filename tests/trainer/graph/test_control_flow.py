"""tf.cond, tf.while_loop and autograph: eager and traced results agree with plain Python on NumPy,
traced control flow is one node holding its subgraphs, gradients match finite differences, and
unsupported forms fail with the user's file and line."""

import linecache
import re

import numpy as np
import pytest

import trainer as tf
from trainer.graph import autograph
from trainer.graph.autograph import AutoGraphError
from trainer.graph.control_flow import ControlFlowError
from trainer.graph.ir import GraphError
from trainer.ops.registry import GradientNotSupportedError

SEEDS = range(4)
GLOBAL_SCALE = 3.0


def traced_graph(function, *args):
    return function.get_concrete_function(*args).graph


def top_level_ops(function, *args) -> dict:
    return traced_graph(function, *args).op_counts()


def numeric_gradient(function, x, epsilon=1e-6):
    """Central differences of the scalar NumPy ``function`` at ``x``."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = epsilon
        gradient[index] = (function(x + step) - function(x - step)) / (2 * epsilon)
    return gradient


def assert_points_at_line(error: Exception, needle: str):
    """The message starts with ``file:line`` of this test file, and that line contains ``needle``."""
    match = re.search(re.escape(__file__) + r":(\d+)", str(error))
    assert match, f"no {__file__}:<line> in the message: {error}"
    assert needle in linecache.getline(__file__, int(match.group(1))), str(error)


# -- tf.cond ------------------------------------------------------------------------------------------


def branch_reference(x):
    """What the tested branches compute, in NumPy: the reference for values and gradients."""
    return np.sum(np.sin(x) * x) if np.sum(x) > 0 else np.sum(np.exp(x))


def branches(x):
    return tf.cond(tf.reduce_sum(x) > 0, lambda: tf.reduce_sum(tf.sin(x) * x), lambda: tf.reduce_sum(tf.exp(x)))


def test_eager_cond_runs_only_the_chosen_branch():
    calls = []

    def branch(name, value):
        def run():
            calls.append(name)
            return value

        return run

    assert (
        float(tf.cond(tf.constant(1.0) > 0, branch("true", tf.constant(1.0)), branch("false", tf.constant(2.0)))) == 1.0
    )
    assert float(tf.cond(False, branch("true", tf.constant(1.0)), branch("false", tf.constant(2.0)))) == 2.0
    assert calls == ["true", "false"]


@pytest.mark.parametrize("seed", SEEDS)
def test_traced_cond_agrees_with_python_and_is_one_node(seed):
    x = np.random.default_rng(seed).standard_normal((3,))
    traced = tf.function(branches, autograph=False)
    np.testing.assert_allclose(traced(tf.constant(x)).numpy(), branch_reference(x), rtol=1e-12)
    np.testing.assert_allclose(branches(tf.constant(x)).numpy(), branch_reference(x), rtol=1e-12)
    graph = traced_graph(traced, tf.constant(x))
    assert graph.op_counts()["cond"] == 1
    text = str(graph)
    assert "then_branch: graph cond_then(" in text and "else_branch: graph cond_else(" in text
    assert "      %" in text  # subgraph nodes are printed indented under the cond node


def test_cond_merges_nested_outputs_and_python_numbers():
    @tf.function(autograph=False)
    def pick(x):
        return tf.cond(x > 0, lambda: {"value": x * 2.0, "sign": 1.0}, lambda: {"value": -x, "sign": -1.0})

    for value in (2.5, -1.5):
        result = pick(tf.constant(value))
        assert float(result["value"]) == (value * 2.0 if value > 0 else -value)
        assert float(result["sign"]) == np.sign(value) and result["sign"].dtype == tf.float32


def test_cond_branches_of_different_dtypes_name_the_line():
    @tf.function(autograph=False)
    def mixed(x):
        return tf.cond(x > 0, lambda: x, lambda: tf.cast(x, tf.int32))

    with pytest.raises(ControlFlowError, match="float32 in the true branch but int32") as caught:
        mixed(tf.constant(1.0))
    assert_points_at_line(caught.value, "tf.cond(")


def test_cond_branches_of_different_structures_are_refused():
    @tf.function(autograph=False)
    def uneven(x):
        return tf.cond(x > 0, lambda: (x, x), lambda: x)

    with pytest.raises(ControlFlowError, match="same structure"):
        uneven(tf.constant(1.0))


def test_cond_needs_a_scalar_bool_predicate():
    @tf.function(autograph=False)
    def vector_predicate(x):
        return tf.cond(x > 0, lambda: x, lambda: -x)

    with pytest.raises(ControlFlowError, match="scalar bool"):
        vector_predicate(tf.constant([1.0, 2.0]))


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_through_eager_cond_matches_finite_differences(seed):
    x = tf.constant(np.random.default_rng(seed).standard_normal((3,)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = branches(x)
    np.testing.assert_allclose(
        tape.gradient(y, x).numpy(), numeric_gradient(branch_reference, x.numpy()), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_through_traced_cond_matches_finite_differences(seed):
    @tf.function(autograph=False)
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = branches(x)
        return tape.gradient(y, x)

    x = np.random.default_rng(seed).standard_normal((3,))
    np.testing.assert_allclose(
        gradient(tf.constant(x)).numpy(), numeric_gradient(branch_reference, x), rtol=1e-6, atol=1e-8
    )
    assert gradient.experimental_get_tracing_count() == 1  # one graph serves both branches


def test_second_derivative_through_traced_cond():
    @tf.function(autograph=False)
    def second(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = branches(x)
            total = tf.reduce_sum(inner.gradient(y, x))
        return outer.gradient(total, x)

    for x in (np.array([0.3, 0.7]), np.array([-0.3, -0.7])):

        def first_derivative_total(v):
            return np.sum(numeric_gradient(branch_reference, v, epsilon=1e-5))

        expected = numeric_gradient(first_derivative_total, x, epsilon=1e-4)
        np.testing.assert_allclose(second(tf.constant(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_cond_reads_and_assigns_captured_variables():
    counter = tf.Variable(0.0)
    weights = tf.Variable([1.0, 2.0])

    @tf.function(autograph=False)
    def step(x):
        def positive():
            counter.assign_add(1.0)
            return tf.reduce_sum(x * weights)

        return tf.cond(tf.reduce_sum(x) > 0, positive, lambda: tf.constant(0.0))

    assert float(step(tf.constant([1.0, 1.0]))) == 3.0
    assert float(step(tf.constant([-1.0, -1.0]))) == 0.0
    weights.assign([10.0, 20.0])
    assert float(step(tf.constant([1.0, 1.0]))) == 30.0
    assert float(counter) == 2.0 and step.experimental_get_tracing_count() == 1


def test_check_verifies_the_subgraphs():
    def cond_node():
        graph = traced_graph(tf.function(branches, autograph=False), tf.constant([1.0, 2.0]))
        return graph, next(n for n in graph.nodes if n.op.name == "cond")

    graph, node = cond_node()
    branch = node.attrs["then_branch"]
    branch.outputs = [branch.inputs[0]]  # the branches no longer agree on the output's shape
    with pytest.raises(GraphError, match="ranks must agree"):
        graph.check()
    graph, node = cond_node()
    branch = node.attrs["then_branch"]
    inner_ids = {v.id for v in branch.inputs + branch.constants} | {v.id for n in branch.nodes for v in n.outputs}
    outer = next(v for n in graph.nodes for v in n.outputs if v.id not in inner_ids)
    branch.nodes[0].inputs = [outer]  # a value of the outer graph, used inside
    with pytest.raises(GraphError, match="subgraph then_branch: .* used before it is defined"):
        graph.check()


# -- tf.while_loop -------------------------------------------------------------------------------------


def python_sum_loop(limit, x):
    index, total = 0, np.zeros_like(x)
    while index < limit:
        index, total = index + 1, total + x * index
    return index, total


def sum_loop(limit, x):
    return tf.while_loop(
        lambda i, total: i < limit,
        lambda i, total: (i + 1, total + x * tf.cast(i, x.dtype)),
        [tf.constant(0), tf.zeros_like(x)],
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_while_loop_eager_and_traced_agree_with_python(seed):
    rng = np.random.default_rng(seed)
    limit, x = int(rng.integers(0, 6)), rng.standard_normal((2,))
    expected_index, expected_total = python_sum_loop(limit, x)
    traced = tf.function(sum_loop, autograph=False)
    for index, total in (sum_loop(tf.constant(limit), tf.constant(x)), traced(tf.constant(limit), tf.constant(x))):
        assert int(index) == expected_index
        np.testing.assert_allclose(total.numpy(), expected_total, rtol=1e-12)
    assert top_level_ops(traced, tf.constant(limit), tf.constant(x))["while"] == 1
    assert traced.experimental_get_tracing_count() == 1


def test_while_loop_keeps_the_structure_of_loop_vars():
    assert tf.while_loop(lambda i, total: i < 5, lambda i, total: (i + 1, total + i), [0, 0]) == [5, 10]
    halve = tf.function(lambda x: tf.while_loop(lambda v: v > 1.0, lambda v: v / 2.0, x), autograph=False)
    assert float(halve(tf.constant(10.0))) == 0.625


def test_while_loop_maximum_iterations():
    def count(limit):
        return tf.while_loop(lambda i: i < limit, lambda i: i + 1, [tf.constant(0)], maximum_iterations=3)[0]

    assert int(count(tf.constant(10))) == 3 and int(count(tf.constant(2))) == 2
    traced = tf.function(count, autograph=False)
    assert int(traced(tf.constant(10))) == 3 and int(traced(tf.constant(2))) == 2


def test_while_loop_shapes_must_stay_unless_invariants_say_otherwise():
    def grow(x, invariants=None):
        return tf.while_loop(
            lambda v: tf.size(v) < 8, lambda v: tf.concat([v, v], 0), [x], shape_invariants=invariants
        )[0]

    with pytest.raises(ControlFlowError, match="shape_invariants"):
        tf.function(grow, autograph=False)(tf.constant([1.0]))
    relaxed = tf.function(lambda x: grow(x, [tf.TensorShape([None])]), autograph=False)
    np.testing.assert_array_equal(relaxed(tf.constant([1.0])).numpy(), np.ones(8))


def test_while_loop_body_must_keep_dtypes():
    @tf.function(autograph=False)
    def drift(x):
        return tf.while_loop(lambda v: v < 10, lambda v: tf.cast(v, tf.float32) + 1.0, [x])

    with pytest.raises(ControlFlowError, match="enters the loop as int32 but the body makes it float32"):
        drift(tf.constant(1))


def test_gradient_through_a_traced_while_loop_is_refused():
    @tf.function(autograph=False)
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.while_loop(lambda v: tf.reduce_sum(v) < 10.0, lambda v: v * 2.0, [x])[0]
        return tape.gradient(y, x)

    with pytest.raises(GradientNotSupportedError, match="tf.while_loop"):
        gradient(tf.constant([1.0, 2.0]))


# -- autograph ------------------------------------------------------------------------------------------


def sign_scale(x):
    if tf.reduce_sum(x) > 0:
        y = x * 2.0
    elif tf.reduce_sum(x) < -1.0:
        y = x * 0.5
    else:
        y = -x
    return y


def sign_scale_reference(x):
    total = np.sum(x)
    return x * 2.0 if total > 0 else x * 0.5 if total < -1.0 else -x


@pytest.mark.parametrize("seed", SEEDS)
def test_tensor_if_becomes_one_cond_node(seed):
    function = tf.function(sign_scale)
    x = np.random.default_rng(seed).standard_normal((3,)) * 2
    for value in (x, -x, x / 100):
        np.testing.assert_allclose(function(tf.constant(value)).numpy(), sign_scale_reference(value), rtol=1e-12)
    assert top_level_ops(function, tf.constant(x))["cond"] == 1  # the elif is a cond inside the else branch
    assert function.experimental_get_tracing_count() == 1


def test_simple_tensor_if_on_a_scalar():
    @tf.function
    def relu_like(x):
        if x > 0:
            result = x
        else:
            result = tf.zeros_like(x)
        return result

    assert float(relu_like(tf.constant(3.0))) == 3.0 and float(relu_like(tf.constant(-3.0))) == 0.0
    assert top_level_ops(relu_like, tf.constant(1.0)) == {"greater": 1, "cond": 1}


def doubling(x):
    while tf.reduce_sum(x) < 10:
        x = x * 2.0
    return x


def doubling_reference(x):
    while np.sum(x) < 10:
        x = x * 2.0
    return x


@pytest.mark.parametrize("seed", SEEDS)
def test_tensor_while_becomes_one_while_node(seed):
    function = tf.function(doubling)
    x = np.random.default_rng(seed).uniform(0.1, 1.0, (3,))
    np.testing.assert_allclose(function(tf.constant(x)).numpy(), doubling_reference(x), rtol=1e-12)
    assert top_level_ops(function, tf.constant(x))["while"] == 1


def weighted_sum(x, n):
    total = tf.zeros_like(x)
    for i in tf.range(n):
        total = total + x * tf.cast(i, x.dtype)
    return total


@pytest.mark.parametrize("n", [0, 1, 4])
def test_for_over_tf_range_becomes_one_while_node(n):
    function = tf.function(weighted_sum)
    x = np.array([1.0, -2.0])
    expected = sum((x * i for i in range(n)), np.zeros(2))
    np.testing.assert_allclose(function(tf.constant(x), tf.constant(n)).numpy(), expected)
    np.testing.assert_allclose(function(tf.constant(x), n).numpy(), expected)  # a Python bound: still a while node
    assert top_level_ops(function, tf.constant(x), tf.constant(n))["while"] == 1
    assert top_level_ops(function, tf.constant(x), n)["while"] == 1
    np.testing.assert_allclose(autograph.convert(weighted_sum)(tf.constant(x), n).numpy(), expected)  # eagerly: Python


def test_for_over_a_tensor_iterates_its_rows():
    @tf.function
    def column_sums(matrix):
        total = tf.zeros([2], tf.float64)
        for row in matrix:
            total = total + row
        return total

    matrix = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_allclose(column_sums(tf.constant(matrix)).numpy(), matrix.sum(axis=0))
    assert top_level_ops(column_sums, tf.constant(matrix))["while"] == 1


def test_python_valued_if_and_for_unroll():
    @tf.function
    def unrolled(x, flag):
        if flag:
            x = x + 1.0
        for _ in range(3):
            x = x * 2.0
        return x

    assert float(unrolled(tf.constant(1.0), True)) == 16.0 and float(unrolled(tf.constant(1.0), False)) == 8.0
    counts = top_level_ops(unrolled, tf.constant(1.0), True)
    assert "cond" not in counts and "while" not in counts and counts["multiply"] == 3


def test_early_return_at_the_end_becomes_a_cond():
    @tf.function
    def absolute(x):
        if x > 0:
            return x
        return -x

    assert float(absolute(tf.constant(2.0))) == 2.0 and float(absolute(tf.constant(-2.0))) == 2.0
    assert top_level_ops(absolute, tf.constant(1.0))["cond"] == 1


def test_boolean_operators_and_conditional_expressions_on_tensors():
    @tf.function
    def band(x):
        inside = x * 1.0 if x > -1.0 and not x > 1.0 else tf.zeros_like(x)
        if x < -5.0 or x > 5.0:
            inside = inside - 1.0
        return inside

    for value, expected in ((0.5, 0.5), (3.0, 0.0), (9.0, -1.0), (-9.0, -1.0)):
        assert float(band(tf.constant(value))) == expected
    assert top_level_ops(band, tf.constant(0.5))["cond"] == 2


def test_tuples_dicts_and_python_values_in_the_state():
    @tf.function
    def ordered(x, y):
        config = {"scale": 2.0, "name": "pair"}
        if tf.reduce_sum(x) > tf.reduce_sum(y):
            return (y, x), config["scale"]
        return (x, y), 1.0

    (low, high), scale = ordered(tf.constant([3.0]), tf.constant([1.0]))
    assert (float(low), float(high), float(scale)) == (1.0, 3.0, 2.0)
    assert top_level_ops(ordered, tf.constant([3.0]), tf.constant([1.0]))["cond"] == 1

    @tf.function
    def recurrent(x, steps):
        state = (tf.zeros_like(x), tf.ones_like(x))
        for _ in tf.range(steps):
            hidden, cell = state
            state = (hidden + cell * x, cell * 0.5)
        return state

    hidden, cell = np.zeros(2), np.ones(2)
    x = np.array([1.0, 2.0], np.float32)
    for _ in range(3):
        hidden, cell = hidden + cell * x, cell * 0.5
    result = recurrent(tf.constant(x), tf.constant(3))
    np.testing.assert_allclose([result[0].numpy(), result[1].numpy()], [hidden, cell])
    assert top_level_ops(recurrent, tf.constant(x), tf.constant(3))["while"] == 1


def test_python_strings_cannot_depend_on_a_tensor_condition():
    @tf.function
    def labelled(x):
        label = "negative"
        if x > 0:
            label = "positive"
        return tf.identity(x, name=label)

    with pytest.raises(AutoGraphError, match="'label' holds the str 'positive' in the `if` branch") as caught:
        labelled(tf.constant(1.0))
    assert_points_at_line(caught.value, "if x > 0")


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_through_a_converted_if_reaches_captured_variables(seed):
    rng = np.random.default_rng(seed)
    weights = tf.Variable(rng.standard_normal((3,)))

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            if tf.reduce_sum(x * weights) > 0:
                loss = tf.reduce_sum(tf.sin(weights) * x)
            else:
                loss = tf.reduce_sum(tf.exp(weights * x))
        return tape.gradient(loss, weights)

    def loss(w, inputs):
        return np.sum(np.sin(w) * inputs) if np.sum(inputs * w) > 0 else np.sum(np.exp(w * inputs))

    x = rng.standard_normal((3,))
    for inputs in (x, -x):  # one of them takes each branch
        expected = numeric_gradient(lambda w, inputs=inputs: loss(w, inputs), weights.numpy())
        np.testing.assert_allclose(gradient(tf.constant(inputs)).numpy(), expected, rtol=1e-6, atol=1e-8)
    assert gradient.experimental_get_tracing_count() == 1


def test_a_branch_local_temporary_needs_no_else():
    @tf.function
    def with_temporary(x):
        y = x
        if x > 0:
            doubled = x * 2.0
            y = doubled + 1.0
        return y

    assert float(with_temporary(tf.constant(1.0))) == 3.0 and float(with_temporary(tf.constant(-1.0))) == -1.0


def test_a_variable_set_in_one_branch_and_used_after_is_refused():
    @tf.function
    def half_defined(x):
        if x > 0:
            y = x
        return y

    with pytest.raises(AutoGraphError, match="'y' is assigned only in the `if` branch") as caught:
        half_defined(tf.constant(1.0))
    assert_points_at_line(caught.value, "if x > 0")
    assert float(autograph.convert(half_defined.python_function)(tf.constant(1.0))) == 1.0  # eagerly it is Python
    with pytest.raises(UnboundLocalError):
        autograph.convert(half_defined.python_function)(tf.constant(-1.0))


def test_mismatched_branch_dtypes_under_autograph_name_the_line():
    @tf.function
    def mixed(x):
        if x > 0:
            y = x
        else:
            y = tf.cast(x, tf.int32)
        return y

    with pytest.raises(ControlFlowError, match="'y' is float32 in the true branch but int32") as caught:
        mixed(tf.constant(1.0))
    assert_points_at_line(caught.value, "if x > 0")


@pytest.mark.parametrize("form", ["return in a loop", "break", "continue", "global"])
def test_unsupported_forms_under_a_tensor_condition_name_the_line(form):
    def return_in_loop(x):
        while x < 10.0:
            x = x * 2.0
            return x
        return x

    def with_break(x):
        while x < 10.0:
            x = x * 2.0
            if x > 5.0:
                break
        return x

    def with_continue(x):
        for i in tf.range(3):
            if i == 1:
                continue
            x = x + 1.0
        return x

    def assigns_global(x):
        global GLOBAL_SCALE
        if x > 0:
            GLOBAL_SCALE = 4.0
        return x

    function, keyword = {
        "return in a loop": (return_in_loop, "while x < 10.0"),
        "break": (with_break, "while x < 10.0"),
        "continue": (with_continue, "for i in tf.range(3)"),
        "global": (assigns_global, "if x > 0"),
    }[form]
    with pytest.raises(AutoGraphError) as caught:
        tf.function(function)(tf.constant(1.0))
    assert_points_at_line(caught.value, keyword)


def test_python_control_flow_with_break_still_runs():
    @tf.function
    def first_power_above(x, limit):
        for power in range(10):
            if 2**power > limit:
                break
        return x * float(power)

    assert float(first_power_above(tf.constant(1.0), 20)) == 5.0


def test_loop_variables_need_a_value_before_a_tensor_loop():
    @tf.function
    def undefined_before(x):
        while x < 10.0:
            late = x
            x = x * 2.0
        return late

    with pytest.raises(AutoGraphError, match="'late' has no value before this `while` loop") as caught:
        undefined_before(tf.constant(1.0))
    assert_points_at_line(caught.value, "while x < 10.0")


def test_closures_and_globals_stay_live():
    offset = 1.0

    def shifted(x):
        if tf.reduce_sum(x) > 0:
            y = x * GLOBAL_SCALE + offset
        else:
            y = x - offset
        return y

    converted = autograph.convert(shifted)
    assert converted is not shifted and autograph.convert(shifted) is converted
    assert float(converted(tf.constant(1.0))) == 4.0
    offset = 2.0  # the converted function shares the closure cell
    assert float(converted(tf.constant(1.0))) == 5.0 and float(converted(tf.constant(-1.0))) == -3.0
    assert float(tf.function(shifted)(tf.constant(1.0))) == 5.0


def test_globals_are_read_at_call_time(monkeypatch):
    def scaled(x):
        if x > 0:
            x = x * GLOBAL_SCALE
        return x

    converted = autograph.convert(scaled)
    monkeypatch.setitem(globals(), "GLOBAL_SCALE", 10.0)
    assert float(converted(tf.constant(1.0))) == 10.0


def test_methods_keep_private_names_super_and_nonlocal():
    class Base:
        def offset(self):
            return 1.0

    class Scaler(Base):
        def __init__(self):
            self.__factor = 3.0

        @tf.function
        def __call__(self, x):
            if x > 0:
                x = x * self.__factor + super().offset()
            return x

    scaler = Scaler()
    assert float(scaler(tf.constant(2.0))) == 7.0 and float(scaler(tf.constant(-2.0))) == -2.0

    traces = 0

    @tf.function
    def counted(x):
        nonlocal traces
        traces += 1
        if x > 0:
            x = -x
        return x

    counted(tf.constant(1.0))
    counted(tf.constant(2.0))
    assert traces == 1 and float(counted(tf.constant(2.0))) == -2.0


def test_functions_without_source_are_returned_unchanged():
    namespace = {}
    exec("def from_exec(x):\n    if x > 0:\n        x = -x\n    return x\n", namespace)  # noqa: S102
    lambda_function = lambda x: x if x > 0 else -x  # noqa: E731
    for function in (len, np.sum, namespace["from_exec"], lambda_function, tf.reduce_sum):
        assert autograph.convert(function) is function


def test_retracing_is_unchanged_by_autograph():
    def python_flag(x, flag):
        if flag:
            x = x + 1.0
        return x

    counts = {}
    for converted in (True, False):
        function = tf.function(python_flag, autograph=converted)
        for args in (
            (tf.constant(1.0), True),
            (tf.constant(2.0), True),
            (tf.constant(1.0), False),
            (tf.constant([1.0]), True),
        ):
            function(*args)
        counts[converted] = function.experimental_get_tracing_count()
    assert counts == {True: 3, False: 3}

    tensor_flag = tf.function(sign_scale)
    for value in ([1.0, 1.0], [-1.0, -1.0], [-0.1, 0.0]):
        tensor_flag(tf.constant(value))
    assert tensor_flag.experimental_get_tracing_count() == 1  # one graph holds every branch
    tensor_flag(tf.constant([1.0, 2.0, 3.0]))
    assert tensor_flag.experimental_get_tracing_count() == 2


def test_a_tape_outside_the_function_sees_the_branch_taken():
    function = tf.function(sign_scale)
    x = tf.constant([0.5, 1.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(function(x))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [2.0, 2.0])
