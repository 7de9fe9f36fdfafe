"""``tf.keras.Model``: a layer with training (``compile``/``fit``/...), summaries and the three ways to build one.

* subclassing: define layers in ``__init__`` and the forward pass in ``call``;
* functional: ``tf.keras.Model(inputs, outputs)`` returns a ``Functional`` model;
* ``tf.keras.Sequential`` (in ``sequential.py``).
"""

from __future__ import annotations

from trainer.keras.layers.base import Layer
from trainer.keras.models.summary import print_summary
from trainer.keras.models.training import Trainer
from trainer.keras.saving.registration import keras_serializable


@keras_serializable("models")
class Model(Trainer, Layer):
    """A trainable model: ``Model(inputs, outputs)`` (functional) or a subclass with ``call``.

    Example:
        >>> inputs = tf.keras.Input(shape=(784,))
        >>> hidden = tf.keras.layers.Dense(128, activation="relu")(inputs)
        >>> model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(hidden))
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            from trainer.keras.models.functional_model import Functional  # noqa: PLC0415

            return Functional(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        trainable = kwargs.pop("trainable", True)
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__ got unexpected arguments; subclassed models take "
                "name=, trainable=, dtype= (functional models are built with Model(inputs, outputs))"
            )
        Layer.__init__(self, trainable=trainable, name=name, dtype=dtype)
        Trainer.__init__(self)

    @property
    def layers(self) -> list:
        """The model's direct sublayers in the order they were assigned."""
        return list(self._tracked_layers)

    def get_layer(self, name=None, index=None):
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index} is out of range; the model has {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        """Prints the Keras table of layers, output shapes and parameter counts."""
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn, show_trainable=show_trainable)

    def build(self, input_shape):
        """Builds a subclassed model by calling it on a symbolic input of ``input_shape``."""
        if not self.built:
            from trainer.graph.tracing import tracing  # noqa: PLC0415

            self.built = True
            self._build_input_shape = input_shape
            with tracing(None):  # a shape-only pass: never part of an enclosing trace (fit's traced step)
                self._call_eager(_placeholders(input_shape, self._dtype), (), {"training": False} if _accepts_training(self) else {})
        self.built = True

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable}

    def to_json(self, **kwargs) -> str:
        """The model's architecture as a JSON string (no weights); ``tf.keras.models.model_from_json`` rebuilds it.

        Args:
            **kwargs: passed to ``json.dumps`` (``indent=2``, ``sort_keys=True``, ...).
        """
        from trainer.keras.saving.saving import model_to_json  # noqa: PLC0415

        return model_to_json(self, **kwargs)

    def save(self, filepath, overwrite=True, **kwargs) -> None:
        """Saves the model to one ``.ember`` file: config, weights, compile arguments and optimizer state.

        ``tf.keras.models.load_model(filepath)`` restores it, ready to continue training.
        """
        from trainer.keras.saving.saving import save_model  # noqa: PLC0415

        save_model(self, filepath, overwrite=overwrite, **kwargs)


def _accepts_training(model) -> bool:
    from trainer.keras.layers.base import _call_accepts  # noqa: PLC0415

    return _call_accepts(type(model), "training")


def _placeholders(input_shape, dtype):
    """Symbolic inputs for ``input_shape``: one shape, or a list/tuple of shapes for several inputs."""
    from trainer.shapes import TensorShape  # noqa: PLC0415
    from trainer.tensor import Tensor  # noqa: PLC0415

    several = isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple, TensorShape))
    if several:
        return [Tensor.symbolic(TensorShape(shape).as_tuple(), dtype) for shape in input_shape]
    return Tensor.symbolic(TensorShape(input_shape).as_tuple(), dtype)
