"""The same MLP trained with a hand-written loop: GradientTape and optimizer.apply_gradients.

Run: python samples/custom_training_loop.py [--subset]
"""

import sys

import trainer as tf

tf.keras.utils.set_random_seed(7)
source = "subset" if "--subset" in sys.argv else "auto"
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data(source=source)
x_train, x_test = x_train / 255.0, x_test / 255.0

model = tf.keras.Sequential(
    [
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ]
)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = tf.keras.optimizers.Adam()
accuracy = tf.keras.metrics.SparseCategoricalAccuracy()
dataset = tf.data.Dataset.from_tensor_slices((x_train.astype("float32"), y_train)).shuffle(10_000).batch(32)

for epoch in range(3):
    accuracy.reset_state()
    for images, labels in dataset:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(labels, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        accuracy.update_state(labels, logits)
    print(f"epoch {epoch + 1}: loss {float(loss):.4f}, training accuracy {float(accuracy.result()):.4f}")

test_logits = model(x_test.astype("float32"), training=False)
test_accuracy = tf.keras.metrics.SparseCategoricalAccuracy()(y_test, test_logits)
print(f"Test accuracy: {float(test_accuracy):.4f}")
