"""``tf.train.Checkpoint``, ``CheckpointManager`` and ``latest_checkpoint``: round trips, resuming, pruning, hostile files."""

from __future__ import annotations

import json
import os
import time
import zipfile

import numpy as np
import pytest

import trainer as tf
from trainer.train import CheckpointError

X = np.random.default_rng(3).normal(size=(16, 5)).astype(np.float32)
Y = np.random.default_rng(4).normal(size=(16, 2)).astype(np.float32)


def _model_and_optimizer():
    model = tf.keras.Sequential([tf.keras.layers.Dense(6, activation="tanh"), tf.keras.layers.Dense(2)])
    model.build((None, 5))
    return model, tf.keras.optimizers.Adam(0.01)


def _train(model, optimizer, steps):
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(X) - Y))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


def _weights(model):
    return [variable.numpy() for variable in model.weights]


def test_restored_training_continues_identically(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model, optimizer = _model_and_optimizer()
    initial = _weights(model)
    _train(model, optimizer, 3)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(3, dtype=tf.int64))
    path = checkpoint.save(str(tmp_path / "ckpt"))
    _train(model, optimizer, 4)
    expected = _weights(model)

    tf.keras.utils.set_random_seed(99)  # other initial weights: the checkpoint must overwrite them all
    new_model, new_optimizer = _model_and_optimizer()
    step = tf.Variable(0, dtype=tf.int64)
    assert not new_optimizer.built
    tf.train.Checkpoint(model=new_model, optimizer=new_optimizer, step=step).restore(path).assert_consumed()
    assert new_optimizer.built and int(new_optimizer.iterations.numpy()) == 3 and int(step.numpy()) == 3
    _train(new_model, new_optimizer, 4)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(new_model), expected))
    assert not any(np.array_equal(a, b) for a, b in zip(_weights(new_model), initial))


def test_save_numbers_files_and_names_the_latest(tmp_path):
    checkpoint = tf.train.Checkpoint(value=tf.Variable([1.0, 2.0]))
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    first = checkpoint.save(str(tmp_path / "run" / "ckpt"))
    second = checkpoint.save(str(tmp_path / "run" / "ckpt"))
    assert (first, second) == (str(tmp_path / "run" / "ckpt-1"), str(tmp_path / "run" / "ckpt-2"))
    assert int(checkpoint.save_counter.numpy()) == 2
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == second
    state = tf.train.get_checkpoint_state(str(tmp_path / "run"))
    assert state.model_checkpoint_path == second
    assert checkpoint.write(str(tmp_path / "plain")) == str(tmp_path / "plain")
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == second  # write() leaves the state file alone


def test_nested_checkpoints_python_state_and_inspection(tmp_path):
    class Counter(tf.train.experimental.PythonState):
        def __init__(self, count=0):
            self.count = count

        def serialize(self):
            return str(self.count)

        def deserialize(self, string):
            self.count = int(string)

    inner = tf.train.Checkpoint(bias=tf.Variable(np.arange(3, dtype=np.float32)))
    path = tf.train.Checkpoint(inner=inner, counter=Counter(7)).save(str(tmp_path / "ckpt"))
    assert tf.train.list_variables(str(tmp_path)) == [("inner/bias", [3]), ("save_counter", [])]
    np.testing.assert_array_equal(tf.train.load_variable(path, "inner/bias"), np.arange(3))
    with tf.train.load_checkpoint(str(tmp_path)) as reader:
        assert reader.has_tensor("inner/bias") and reader.get_variable_to_shape_map()["inner/bias"] == [3]
        assert reader.get_variable_to_dtype_map() == {"inner/bias": tf.float32, "save_counter": tf.int64}
        os.remove(path + ".ckpt")  # the reader holds the file open: reading goes on without reopening it
        np.testing.assert_array_equal(reader.get_tensor("inner/bias"), np.arange(3))
        assert int(reader.get_tensor("save_counter")) == 1
    tf.train.Checkpoint(inner=inner, counter=Counter(7)).write(path)

    restored_inner, counter = tf.train.Checkpoint(bias=tf.Variable(np.zeros(3, np.float32))), Counter()
    tf.train.Checkpoint(inner=restored_inner, counter=counter).restore(path).assert_consumed()
    assert counter.count == 7
    np.testing.assert_array_equal(restored_inner.bias.numpy(), np.arange(3))


def test_global_random_state_replays_the_same_draws(tmp_path):
    tf.random.set_seed(5)
    checkpoint = tf.train.Checkpoint(rng=tf.train.experimental.GlobalRandomState())
    path = checkpoint.write(str(tmp_path / "rng"))
    first = tf.random.uniform((4,)).numpy()
    tf.random.set_seed(123)
    checkpoint.restore(path)
    np.testing.assert_array_equal(tf.random.uniform((4,)).numpy(), first)


def test_status_reports_partial_matches(tmp_path):
    path = tf.train.Checkpoint(a=tf.Variable(1.0), b=tf.Variable(2.0)).save(str(tmp_path / "ckpt"))
    fewer = tf.train.Checkpoint(a=tf.Variable(0.0))
    status = fewer.restore(path)
    status.assert_existing_objects_matched().expect_partial()
    with pytest.raises(AssertionError, match="not matched to any object: b"):
        status.assert_consumed()
    with pytest.raises(AssertionError, match="no value in the checkpoint: c"):
        tf.train.Checkpoint(a=tf.Variable(0.0), c=tf.Variable(0.0)).restore(path).assert_existing_objects_matched()
    with pytest.raises(AssertionError, match="no checkpoint was restored"):
        fewer.restore(None).assert_consumed()
    assert float(fewer.a.numpy()) == 1.0


def test_manager_keeps_the_newest_and_picks_up_an_existing_directory(tmp_path):
    checkpoint = tf.train.Checkpoint(value=tf.Variable(0.0))
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=2)
    assert manager.latest_checkpoint is None and manager.restore_or_initialize() is None
    paths = []
    for number in range(4):
        checkpoint.value.assign(float(number))
        paths.append(manager.save())
    assert manager.checkpoints == paths[2:] and manager.latest_checkpoint == paths[3]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-3.ckpt", "ckpt-4.ckpt"]

    again = tf.train.CheckpointManager(tf.train.Checkpoint(value=tf.Variable(-1.0)), str(tmp_path), max_to_keep=2)
    assert again.checkpoints == paths[2:]
    assert again.restore_or_initialize() == paths[3] and float(again.checkpoint.value.numpy()) == 3.0
    assert again.save(checkpoint_number=100).endswith("ckpt-100")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-100.ckpt", "ckpt-4.ckpt"]


def test_manager_checkpoint_interval_skips_early_saves(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(tmp_path), max_to_keep=None, step_counter=step, checkpoint_interval=5)
    saved = []
    for _ in range(12):
        saved.append(manager.save() is not None)
        step.assign_add(1)
    assert [index for index, done in enumerate(saved) if done] == [0, 5, 10]
    with pytest.raises(ValueError, match="max_to_keep"):
        tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(tmp_path), max_to_keep=0)


def test_unbuilt_model_and_untrackable_objects_are_refused(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    unbuilt = tf.keras.Sequential([tf.keras.layers.Dense(6), tf.keras.layers.Dense(2)])
    with pytest.raises(CheckpointError, match="'model' .* is not built yet"):
        tf.train.Checkpoint(model=unbuilt).restore(path)
    with pytest.raises(TypeError, match="'numbers' is a list"):
        tf.train.Checkpoint(numbers=[1, 2])


def test_a_mismatched_shape_names_the_value_and_assigns_nothing(tmp_path):
    model, _ = _model_and_optimizer()
    path = tf.train.Checkpoint(model=model, extra=tf.Variable(5.0)).save(str(tmp_path / "ckpt"))
    other = tf.keras.Sequential([tf.keras.layers.Dense(6), tf.keras.layers.Dense(3)])
    other.build((None, 5))
    extra = tf.Variable(0.0)
    before = _weights(other)
    with pytest.raises(CheckpointError, match=r"'model/layer_with_weights-1/kernel' .* shape \(6, 2\) in the checkpoint but \(6, 3\)"):
        tf.train.Checkpoint(model=other, extra=extra).restore(path)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(other), before)) and float(extra.numpy()) == 0.0


def _saved(tmp_path):
    model, optimizer = _model_and_optimizer()
    _train(model, optimizer, 1)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "ckpt"))
    return path, _weights(model)


def _restore_into_fresh(path):
    model, optimizer = _model_and_optimizer()
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
    return _weights(model)


@pytest.mark.parametrize("keep", [0, 10, 100, 1000])
def test_truncated_files_are_refused(tmp_path, keep):
    path, _ = _saved(tmp_path)
    file = path + ".ckpt"
    data = open(file, "rb").read()
    open(file, "wb").write(data[: min(keep, len(data) - 1)])
    with pytest.raises(CheckpointError, match="ckpt-1.ckpt"):
        _restore_into_fresh(path)


def test_flipped_bits_never_restore_wrong_values(tmp_path):
    path, expected = _saved(tmp_path)
    file = path + ".ckpt"
    original = open(file, "rb").read()
    refused = 0
    for position in np.random.default_rng(0).choice(len(original), 60, replace=False):
        damaged = bytearray(original)
        damaged[position] ^= 0x10
        open(file, "wb").write(bytes(damaged))
        try:
            got = _restore_into_fresh(path)
        except CheckpointError:
            refused += 1
            continue
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), f"flipping byte {position} changed a restored value"
    assert refused > 30


def test_a_manifest_that_lies_about_an_array_is_refused(tmp_path):
    path, _ = _saved(tmp_path)
    file = path + ".ckpt"
    with zipfile.ZipFile(file) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(entries["checkpoint.json"])
    manifest["values"][0]["dtype"] = "<i4"  # castable to the kernel's float32, but not what the array holds
    entries["checkpoint.json"] = json.dumps(manifest)
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(CheckpointError, match=r"values/0.npy header says .* the manifest says shape \(5, 6\), dtype int32"):
        _restore_into_fresh(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('model_checkpoint_path: "/etc/passwd"\n', "quoted file name in the checkpoint directory"),
        ('model_checkpoint_path: "../outside"\n', "quoted file name in the checkpoint directory"),
        ('model_checkpoint_path: "ckpt-1"\nimport os\n', "line 2 is not a checkpoint state field"),
        ("all_model_checkpoint_paths: \"ckpt-1\"\n", "exactly one model_checkpoint_path"),
        ('model_checkpoint_path: "ckpt-1"\nlast_preserved_timestamp: soon\n', "must be a number"),
    ],
)
def test_hostile_state_files_are_refused(tmp_path, text, message):
    (tmp_path / "checkpoint").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        tf.train.latest_checkpoint(str(tmp_path))


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path):
    class Exploding(tf.train.experimental.PythonState):
        fail = False

        def serialize(self):
            if self.fail:
                raise RuntimeError("disk full")
            return "ok"

        def deserialize(self, string):
            pass

    state = Exploding()
    checkpoint = tf.train.Checkpoint(value=tf.Variable(1.0), state=state)
    path = checkpoint.write(str(tmp_path / "ckpt"))
    state.fail = True
    checkpoint.value.assign(2.0)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.write(str(tmp_path / "ckpt"))
    assert os.listdir(tmp_path) == ["ckpt.ckpt"]
    assert float(tf.train.load_variable(path, "value")) == 1.0


def _gan():
    generator = tf.keras.Sequential([tf.keras.layers.Dense(3)])
    generator.build((None, 2))
    discriminator = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    discriminator.build((None, 3))
    return {
        "generator": generator,
        "discriminator": discriminator,
        "generator_optimizer": tf.keras.optimizers.Adam(1e-2),
        "discriminator_optimizer": tf.keras.optimizers.Adam(1e-2),
    }


def _gan_step(objects):
    generator, discriminator = objects["generator"], objects["discriminator"]
    noise = tf.constant(np.random.default_rng(5).normal(size=(4, 2)).astype(np.float32))
    with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
        score = discriminator(generator(noise))
        generator_loss = tf.reduce_mean(tf.square(score - 1.0))
        discriminator_loss = tf.reduce_mean(tf.square(score))
    for model, tape, loss, optimizer in (
        (generator, generator_tape, generator_loss, objects["generator_optimizer"]),
        (discriminator, discriminator_tape, discriminator_loss, objects["discriminator_optimizer"]),
    ):
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


def test_two_models_with_their_own_optimizers_restore_and_train_on(tmp_path):
    # The TF DCGAN tutorial's checkpoint: each optimizer must be rebuilt on its own model's variables.
    trained = _gan()
    _gan_step(trained)
    path = tf.train.Checkpoint(**trained).save(str(tmp_path / "ckpt"))
    restored = _gan()
    tf.train.Checkpoint(**restored).restore(path).assert_consumed()
    for objects in (trained, restored):
        _gan_step(objects)
    for name in ("generator", "discriminator"):
        for a, b in zip(_weights(trained[name]), _weights(restored[name])):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_an_optimizer_built_on_untracked_variables_must_be_built_before_restore(tmp_path):
    model, optimizer = _model_and_optimizer()
    _train(model, optimizer, 1)
    path = tf.train.Checkpoint(optimizer=optimizer).save(str(tmp_path / "ckpt"))  # the model is not in the checkpoint
    fresh_model, fresh_optimizer = _model_and_optimizer()
    with pytest.raises(CheckpointError, match=r"optimizer 'optimizer' was built .* call optimizer.build\(var_list\) first"):
        tf.train.Checkpoint(optimizer=fresh_optimizer, model=fresh_model).restore(path)
    fresh_optimizer.build(fresh_model.trainable_variables)
    tf.train.Checkpoint(optimizer=fresh_optimizer).restore(path).assert_consumed()
    for a, b in zip(fresh_optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_python_state_that_refuses_its_string_leaves_everything_as_it_was(tmp_path):
    class Counter(tf.train.experimental.PythonState):
        def __init__(self, count):
            self.count = count

        def serialize(self):
            return str(self.count)

        def deserialize(self, string):
            self.count = int(string)

    class Garbage(tf.train.experimental.PythonState):
        def serialize(self):
            return '{"bit_generator": "PCG64", "state": "garbage"}'

        def deserialize(self, string):
            pass

    path = tf.train.Checkpoint(value=tf.Variable(5.0), counter=Counter(7), rng=Garbage()).write(str(tmp_path / "ckpt"))
    value, counter = tf.Variable(1.0), Counter(1)
    tf.random.set_seed(11)
    expected_draw = tf.random.uniform((3,)).numpy()
    tf.random.set_seed(11)
    with pytest.raises(CheckpointError, match="invalid random generator state"):
        tf.train.Checkpoint(value=value, counter=counter, rng=tf.train.experimental.GlobalRandomState()).restore(path)
    assert float(value.numpy()) == 1.0 and counter.count == 1
    np.testing.assert_array_equal(tf.random.uniform((3,)).numpy(), expected_draw)


def test_a_kill_while_old_checkpoints_are_deleted_leaves_the_new_one_named(tmp_path, monkeypatch):
    checkpoint = tf.train.Checkpoint(value=tf.Variable(1.0))
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=1)
    manager.save()
    real_remove = os.remove

    def killed_while_removing(path):
        real_remove(path)
        raise KeyboardInterrupt("simulated kill inside the sweep")

    monkeypatch.setattr(os, "remove", killed_while_removing)
    checkpoint.value.assign(2.0)
    with pytest.raises(KeyboardInterrupt):
        manager.save()
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-2.ckpt"]
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
    again = tf.train.CheckpointManager(tf.train.Checkpoint(value=tf.Variable(0.0)), str(tmp_path), max_to_keep=1)
    assert again.checkpoints == [str(tmp_path / "ckpt-2")]
    assert again.restore_or_initialize() == str(tmp_path / "ckpt-2") and float(again.checkpoint.value.numpy()) == 2.0


@pytest.mark.parametrize("name", ["model+ckpt", "run 1", "gewichte-ü"])
def test_any_file_name_save_accepts_is_read_back(tmp_path, name):
    directory = tmp_path / "my run+1"
    path = tf.train.Checkpoint(value=tf.Variable(3.0)).save(str(directory / name))
    assert tf.train.latest_checkpoint(str(directory)) == path
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=tf.Variable(0.0)), str(directory), max_to_keep=2, checkpoint_name=name)
    assert manager.restore_or_initialize() == path and float(manager.checkpoint.value.numpy()) == 3.0
    saved = manager.save()
    assert tf.train.latest_checkpoint(str(directory)) == saved


@pytest.mark.parametrize("name", ["a/b", "a\\\\b", "a\\u0000b", ".", ".."])
def test_state_file_names_that_could_escape_the_directory_are_refused(tmp_path, name):
    (tmp_path / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n')
    with pytest.raises(CheckpointError, match="quoted file name in the checkpoint directory"):
        tf.train.latest_checkpoint(str(tmp_path))


def test_manager_checkpoint_interval_follows_tensorflow_after_a_restart(tmp_path):
    def manager_and_step():
        step = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(step=step)
        return tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=None, step_counter=step, checkpoint_interval=10), step

    manager, step = manager_and_step()
    step.assign(10)
    assert manager.save() is not None
    restarted, step = manager_and_step()
    assert restarted.restore_or_initialize() is not None and int(step.numpy()) == 10
    step.assign(11)
    assert restarted.save() is None  # the restored step counts as the last save
    assert restarted.save(check_interval=False) is not None
    assert restarted.save(check_interval=False) is None  # a second save at the same step
    step.assign(21)
    assert restarted.save() is not None


def test_manager_recovery_without_timestamps_or_with_a_clock_that_went_back(tmp_path):
    checkpoint = tf.train.Checkpoint(value=tf.Variable(0.0))
    first = checkpoint.save(str(tmp_path / "ckpt"))  # Checkpoint.save records no timestamps, as TensorFlow's does
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=1)
    assert manager.checkpoints == []  # like TensorFlow: counted as saved at last_preserved_timestamp, so never deleted
    manager.save()
    last = manager.save()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-1.ckpt", "ckpt-3.ckpt"]
    assert tf.train.latest_checkpoint(str(tmp_path)) == last and os.path.basename(first) == "ckpt-1"

    future = time.time() + 7200.0  # written by a machine whose clock was ahead; ours went back
    other = tmp_path / "future"
    other.mkdir()
    tf.train.Checkpoint(value=tf.Variable(1.0)).write(str(other / "ckpt-1"))
    (other / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n'
        f"all_model_checkpoint_timestamps: {future!r}\nlast_preserved_timestamp: {future - 3600.0!r}\n"
    )
    behind = tf.train.CheckpointManager(tf.train.Checkpoint(value=tf.Variable(0.0)), str(other), max_to_keep=1)
    assert behind.checkpoints == []  # its timestamp is taken as now: not newer than the preserved mark, so kept
    behind.save(checkpoint_number=2)
    behind.save(checkpoint_number=3)
    assert sorted(os.listdir(other)) == ["checkpoint", "ckpt-1.ckpt", "ckpt-3.ckpt"]
