"""tf.data.Dataset against plain Python and NumPy: every source and transformation, cardinality, specs, threads."""

import gc
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainer as tf
from trainer.data import structure

Dataset = tf.data.Dataset


def values(dataset):
    """The elements as plain Python values (lists for arrays), so that they compare with ``==``."""
    return [_plain(element) for element in dataset.as_numpy_iterator()]


def _plain(element):
    if isinstance(element, dict):
        return {key: _plain(item) for key, item in element.items()}
    if isinstance(element, tuple):
        return tuple(_plain(item) for item in element)
    return np.asarray(element).tolist()


def live_threads(prefix):
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


# -- sources ---------------------------------------------------------------------------------------------


def test_from_tensor_slices_yields_rows_as_tensors_keeping_the_structure(rng):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = np.arange(5)
    elements = list(Dataset.from_tensor_slices((x, {"label": y, "weight": [1.0, 2, 3, 4, 5]})))
    assert len(elements) == 5
    for row, (features, extras) in enumerate(elements):
        assert isinstance(features, tf.Tensor) and isinstance(extras, dict)
        assert set(extras) == {"label", "weight"}
        np.testing.assert_array_equal(features.numpy(), x[row])
        assert int(extras["label"]) == row
        assert extras["weight"].dtype == tf.float32  # Python floats become float32, as in TensorFlow


def test_from_tensor_slices_treats_a_list_as_one_value():
    dataset = Dataset.from_tensor_slices([[1, 2], [3, 4], [5, 6]])
    assert values(dataset) == [[1, 2], [3, 4], [5, 6]]
    assert dataset.element_spec == tf.TensorSpec((2,), tf.int32)


def test_from_tensor_slices_rejects_mismatched_first_dims_naming_the_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        Dataset.from_tensor_slices((np.zeros((4, 3)), np.zeros(5)))
    with pytest.raises(ValueError, match="scalar"):
        Dataset.from_tensor_slices((np.zeros(3), np.float32(1)))


def test_from_tensors_is_one_element():
    dataset = Dataset.from_tensors((np.arange(6).reshape(2, 3), 7))
    assert dataset.cardinality() == 1
    assert values(dataset) == [([[0, 1, 2], [3, 4, 5]], 7)]
    assert dataset.element_spec == (tf.TensorSpec((2, 3), tf.int64), tf.TensorSpec((), tf.int32))


@settings(max_examples=40, deadline=None)
@given(st.integers(-20, 20), st.integers(-20, 20), st.integers(-5, 5).filter(lambda step: step != 0))
def test_range_matches_python_range(start, stop, step):
    dataset = Dataset.range(start, stop, step)
    assert values(dataset) == list(range(start, stop, step))
    assert dataset.cardinality() == len(range(start, stop, step))
    assert dataset.element_spec == tf.TensorSpec((), tf.int64)


def test_from_generator_calls_the_generator_anew_and_checks_the_signature():
    calls = []

    def generate(limit):
        calls.append(limit)
        for i in range(limit):
            yield i, [float(i)] * (i + 1)

    signature = (tf.TensorSpec((), tf.int32), tf.TensorSpec((None,), tf.float32))
    dataset = Dataset.from_generator(generate, output_signature=signature, args=(3,))
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    assert dataset.element_spec == signature
    expected = [(0, [0.0]), (1, [1.0, 1.0]), (2, [2.0, 2.0, 2.0])]
    assert values(dataset) == expected and values(dataset) == expected
    assert calls == [3, 3]
    first = next(iter(dataset))
    assert first[0].dtype == tf.int32 and first[1].dtype == tf.float32

    wrong_shape = Dataset.from_generator(lambda: iter([[1.0, 2.0, 3.0]]), output_signature=tf.TensorSpec((2,)))
    with pytest.raises(ValueError, match=r"shape \(3,\) where an element of shape \(2,\)"):
        list(wrong_shape)
    wrong_structure = Dataset.from_generator(lambda: iter([1]), output_signature=signature)
    with pytest.raises(TypeError, match="tuple of 2"):
        list(wrong_structure)
    with pytest.raises(TypeError, match="callable"):
        Dataset.from_generator(generate(3), output_signature=signature)


def test_from_generator_accepts_output_types_and_shapes():
    dataset = Dataset.from_generator(
        lambda: iter([(1, 2.5)]), output_types=(tf.int64, tf.float32), output_shapes=((), ())
    )
    assert dataset.element_spec == (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.float32))
    assert values(dataset) == [(1, 2.5)]


# -- shuffle ---------------------------------------------------------------------------------------------


def shuffle_inputs():
    """The same 50 elements as rows of an array (index path) and from a range (element path)."""
    return [Dataset.from_tensor_slices(np.arange(50)), Dataset.range(50)]


@pytest.mark.parametrize("source", shuffle_inputs(), ids=["slices", "range"])
@pytest.mark.parametrize("buffer_size", [1, 2, 7, 49, 50, 1000])
def test_shuffle_is_a_permutation_within_the_buffer_window(source, buffer_size):
    order = values(source.shuffle(buffer_size, seed=5))
    assert sorted(order) == list(range(50))
    # With a buffer of k, output i can only be one of the first i + k inputs.
    assert all(value < position + buffer_size for position, value in enumerate(order))
    if buffer_size == 1:
        assert order == list(range(50))


@pytest.mark.parametrize("source", shuffle_inputs(), ids=["slices", "range"])
def test_shuffle_first_pick_is_uniform_over_the_buffer(source):
    # The first element is a uniform pick from the first buffer_size elements: each of 0..4 about 1/5.
    firsts = np.array([values(source.shuffle(5, seed=seed).take(1))[0] for seed in range(2000)])
    counts = np.bincount(firsts, minlength=5)
    assert counts.size == 5 and counts.min() > 320 and counts.max() < 480


@pytest.mark.parametrize("source", shuffle_inputs(), ids=["slices", "range"])
def test_shuffle_seeds_and_reshuffling(source):
    assert values(source.shuffle(10, seed=3)) == values(source.shuffle(10, seed=3))
    reshuffled = source.shuffle(50, seed=3)
    first, second = values(reshuffled), values(reshuffled)
    assert first != second and sorted(first) == sorted(second)
    fixed = source.shuffle(50, seed=3, reshuffle_each_iteration=False)
    assert values(fixed) == values(fixed)
    tf.random.set_seed(11)
    global_seeded = values(source.shuffle(50))
    tf.random.set_seed(11)
    assert values(source.shuffle(50)) == global_seeded


def test_shuffle_then_repeat_reshuffles_every_pass():
    passes = np.array(values(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=1).repeat(3))).reshape(3, 20)
    assert all(sorted(row) == list(range(20)) for row in passes)
    assert len({tuple(row) for row in passes}) == 3


def test_shuffle_rejects_an_empty_buffer():
    with pytest.raises(ValueError, match="buffer_size"):
        Dataset.range(3).shuffle(0)


# -- batch, unbatch --------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.integers(1, 12), st.booleans())
def test_batch_matches_numpy_chunks(count, batch_size, drop_remainder):
    x = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    dataset = Dataset.from_tensor_slices((x, np.arange(count))).batch(batch_size, drop_remainder=drop_remainder)
    starts = range(0, count - batch_size + 1 if drop_remainder else count, batch_size)
    labels = list(range(count))
    expected = [(x[start : start + batch_size].tolist(), labels[start : start + batch_size]) for start in starts]
    assert values(dataset) == expected
    assert dataset.cardinality() == len(expected)


def test_batch_element_spec_has_an_unknown_batch_dim_unless_dropping_the_remainder():
    dataset = Dataset.from_tensor_slices({"x": np.zeros((10, 3), np.float32)})
    assert dataset.batch(4).element_spec == {"x": tf.TensorSpec((None, 3), tf.float32)}
    assert dataset.batch(4, drop_remainder=True).element_spec == {"x": tf.TensorSpec((4, 3), tf.float32)}


def test_batch_fast_path_gives_the_elements_of_the_slow_path(rng, monkeypatch):
    x = rng.normal(size=(103, 4)).astype(np.float32)
    y = rng.integers(0, 10, size=103)
    shuffled = Dataset.from_tensor_slices((x, {"y": y})).shuffle(30, seed=9, reshuffle_each_iteration=False)
    pipeline = shuffled.repeat(2).skip(5).take(150)
    # The slow path: map breaks the row-index pipeline, so batch stacks element by element.
    slow = values(pipeline.map(lambda features, label: (features, label)).batch(16))
    unbatched = values(pipeline)
    monkeypatch.setattr(structure, "stack", _forbidden)  # the fast path must gather, never stack
    fast = values(pipeline.batch(16))
    assert fast == slow
    groups = [unbatched[start : start + 16] for start in range(0, 150, 16)]
    expected = [([row[0] for row in group], {"y": [row[1]["y"] for row in group]}) for group in groups]
    assert fast == expected


def _forbidden(*_args):
    raise AssertionError("batch() stacked elements one by one on the fast path")


def test_batch_of_ragged_elements_names_the_component():
    ragged = [[1, 2], [1, 2, 3]]
    dataset = Dataset.from_generator(lambda: iter(ragged), output_signature=tf.TensorSpec((None,), tf.int32))
    with pytest.raises(ValueError, match="different shapes in component 0"):
        list(dataset.batch(2))


def test_unbatch_inverts_batch():
    dataset = Dataset.from_tensor_slices((np.arange(10), np.arange(10) * 2)).batch(3)
    assert values(dataset.unbatch()) == [(i, 2 * i) for i in range(10)]
    assert dataset.unbatch().element_spec == (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))
    assert Dataset.range(12).batch(4, drop_remainder=True).unbatch().cardinality() == 12
    assert dataset.unbatch().cardinality() == tf.data.UNKNOWN_CARDINALITY


# -- map, filter, enumerate ------------------------------------------------------------------------------


def test_map_spreads_tuples_and_passes_dicts_whole():
    pairs = Dataset.from_tensor_slices((np.arange(4), np.arange(4) * 10))
    assert values(pairs.map(lambda a, b: a + b)) == [0, 11, 22, 33]
    records = Dataset.from_tensor_slices({"a": np.arange(3), "b": np.ones(3)})
    assert values(records.map(lambda record: record["a"] * 2)) == [0, 2, 4]
    assert values(pairs.map(lambda a, b: [b, a])) == [(0, 0), (10, 1), (20, 2), (30, 3)]  # a list becomes a tuple


def test_map_element_spec_is_traced_with_unknown_dims():
    batches = Dataset.from_tensor_slices(np.zeros((10, 4), np.uint8)).batch(3)
    scaled = batches.map(lambda x: (tf.cast(x, tf.float32) / 255.0, tf.reduce_sum(tf.cast(x, tf.int32), axis=1)))
    assert scaled.element_spec == (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None,), tf.int32))


def test_map_with_a_numpy_function_takes_its_spec_from_the_first_element():
    dataset = Dataset.range(3).map(lambda x: np.float64(x.numpy()) * np.ones(2))
    assert dataset.element_spec == tf.TensorSpec((2,), tf.float64)
    assert values(dataset) == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]


def test_parallel_map_keeps_the_order_and_raises_the_functions_error():
    def slow_square(x):
        time.sleep(0.001 * (int(x) % 3))
        return x * x

    dataset = Dataset.range(40).map(slow_square, num_parallel_calls=tf.data.AUTOTUNE)
    assert values(dataset) == [i * i for i in range(40)]

    def fail_at_7(x):
        if int(x) == 7:
            raise KeyError("element 7")
        return x

    with pytest.raises(KeyError, match="element 7"):
        list(Dataset.range(20).map(fail_at_7, num_parallel_calls=4))
    gc.collect()
    assert not live_threads("emberflow-map")


def test_filter_matches_python_filter():
    dataset = Dataset.range(20).filter(lambda x: x % 3 == 0)
    assert values(dataset) == [i for i in range(20) if i % 3 == 0]
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(ValueError, match="scalar boolean"):
        list(Dataset.range(3).filter(lambda x: x + 1))


def test_enumerate_pairs_positions_with_elements():
    dataset = Dataset.from_tensor_slices(np.array([5, 6, 7])).enumerate(start=10)
    assert values(dataset) == [(10, 5), (11, 6), (12, 7)]
    assert dataset.element_spec[0] == tf.TensorSpec((), tf.int64)


# -- repeat, take, skip, cache ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.integers(-1, 15), st.integers(-1, 15), st.integers(0, 3), st.booleans())
def test_take_skip_repeat_match_python_slicing(size, take, skip, repeat, from_slices):
    source = Dataset.from_tensor_slices(np.arange(size)) if from_slices else Dataset.range(size)
    expected = list(range(size)) * repeat
    expected = expected[len(expected) if skip == -1 else skip :]
    expected = expected if take == -1 else expected[:take]
    dataset = source.repeat(repeat).skip(skip).take(take)
    assert values(dataset) == expected
    assert dataset.cardinality() == len(expected)


def test_infinite_repeat_with_take_and_of_an_empty_dataset():
    forever = Dataset.range(3).repeat()
    assert forever.cardinality() == tf.data.INFINITE_CARDINALITY
    assert values(forever.take(7)) == [0, 1, 2, 0, 1, 2, 0]
    assert forever.take(7).cardinality() == 7
    assert values(Dataset.range(0).repeat()) == []
    assert values(Dataset.from_tensor_slices(np.arange(2)).repeat().batch(3).take(2)) == [[0, 1, 0], [1, 0, 1]]


def test_cache_replays_the_first_complete_iteration():
    calls = []

    def generate():
        calls.append(1)
        yield from range(5)

    cached = Dataset.from_generator(generate, output_signature=tf.TensorSpec((), tf.int64)).cache()
    assert values(cached.take(2)) == [0, 1]  # a partial pass is not cached
    assert values(cached) == list(range(5)) and values(cached) == list(range(5))
    assert len(calls) == 2
    shuffled = Dataset.from_tensor_slices(np.arange(30)).shuffle(30, seed=2).cache()
    assert values(shuffled) == values(shuffled)
    with pytest.raises(ValueError, match="not supported"):
        Dataset.range(3).cache("/tmp/cache")


# -- zip, concatenate ------------------------------------------------------------------------------------


def test_zip_follows_the_nest_and_stops_at_the_shortest():
    numbers, letters = Dataset.range(5), Dataset.from_tensor_slices(np.arange(3) * 10)
    assert values(Dataset.zip((numbers, letters))) == [(0, 0), (1, 10), (2, 20)]
    assert values(Dataset.zip(numbers, letters)) == [(0, 0), (1, 10), (2, 20)]
    assert values(Dataset.zip({"n": numbers, "l": letters}).take(1)) == [{"n": 0, "l": 0}]
    assert Dataset.zip((numbers, letters)).cardinality() == 3
    assert Dataset.zip((numbers.repeat(), letters)).cardinality() == 3
    assert Dataset.zip((numbers.repeat(), numbers.repeat())).cardinality() == tf.data.INFINITE_CARDINALITY
    with pytest.raises(TypeError, match="Dataset objects"):
        Dataset.zip((numbers, [1, 2]))


def test_concatenate_merges_specs_and_rejects_other_dtypes():
    short = Dataset.from_tensor_slices(np.zeros((2, 3), np.float32))
    long = Dataset.from_tensor_slices(np.ones((1, 5), np.float32))
    joined = short.concatenate(long)
    assert joined.element_spec == tf.TensorSpec((None,), tf.float32)
    assert [len(row) for row in values(joined)] == [3, 3, 5]
    assert joined.cardinality() == 3
    assert short.concatenate(long.repeat()).cardinality() == tf.data.INFINITE_CARDINALITY
    with pytest.raises(TypeError, match="Incompatible"):
        short.concatenate(Dataset.range(3))


# -- prefetch --------------------------------------------------------------------------------------------


def test_prefetch_yields_the_same_elements_and_stops_its_thread():
    dataset = Dataset.from_tensor_slices(np.arange(50)).shuffle(50, seed=4, reshuffle_each_iteration=False)
    assert values(dataset.prefetch(tf.data.AUTOTUNE)) == values(dataset)
    iterator = iter(dataset.prefetch(3))
    next(iterator)
    assert live_threads("emberflow-prefetch")
    del iterator
    gc.collect()
    assert not live_threads("emberflow-prefetch")


def test_prefetch_propagates_the_producers_exception():
    def generate():
        yield 1
        yield 2
        raise RuntimeError("disk on fire")

    dataset = Dataset.from_generator(generate, output_signature=tf.TensorSpec((), tf.int32)).prefetch(2)
    seen = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        for element in dataset:
            seen.append(int(element))
    assert seen == [1, 2]
    gc.collect()
    assert not live_threads("emberflow-prefetch")


# -- what a dataset is -----------------------------------------------------------------------------------


def test_len_follows_cardinality_and_refuses_infinite_or_unknown():
    dataset = Dataset.from_tensor_slices(np.arange(10))
    assert len(dataset) == 10 and len(dataset.batch(3)) == 4 and bool(dataset.take(0))
    with pytest.raises(TypeError, match="infinite"):
        len(dataset.repeat())
    with pytest.raises(TypeError, match="unknown"):
        len(dataset.filter(lambda x: x > 2))


def test_cardinality_matches_the_number_of_elements_through_a_pipeline():
    base = Dataset.from_tensor_slices((np.arange(23), np.arange(23)))
    pipelines = [
        base.shuffle(8, seed=0).batch(5),
        base.map(lambda a, b: a).batch(4, drop_remainder=True).prefetch(1),
        base.skip(3).repeat(2).take(30).cache().enumerate(),
        Dataset.zip((base, Dataset.range(40))).concatenate(Dataset.zip((base, Dataset.range(40)))).batch(7),
    ]
    for pipeline in pipelines:
        assert pipeline.cardinality() == sum(1 for _ in pipeline)


def test_iteration_restarts_and_as_numpy_iterator_gives_numpy():
    dataset = Dataset.from_tensor_slices({"x": np.arange(4.0)}).batch(2)
    assert values(dataset) == values(dataset) == [{"x": [0.0, 1.0]}, {"x": [2.0, 3.0]}]
    element = next(dataset.as_numpy_iterator())
    assert isinstance(element, dict) and isinstance(element["x"], np.ndarray)
    assert isinstance(next(iter(dataset))["x"], tf.Tensor)
    assert "element_spec" in repr(dataset)
    assert tf.data.experimental.AUTOTUNE == tf.data.AUTOTUNE == -1
