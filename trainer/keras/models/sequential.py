"""``tf.keras.Sequential``: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from trainer.keras.layers.base import Layer
from trainer.keras.layers.input_layer import Input, InputLayer
from trainer.keras.models.model import Model
from trainer.keras.saving.registration import keras_serializable
from trainer.shapes import TensorShape
from trainer.tensor import Tensor


@keras_serializable("models")
class Sequential(Model):
    """A linear stack of layers.

    The input shape comes from an ``Input``/``InputLayer`` first layer, an ``input_shape=`` argument
    on the first layer, or the first call (or ``fit``); until then the model is not built.

    Example:
        >>> model = tf.keras.Sequential([
        ...     tf.keras.layers.Flatten(input_shape=(28, 28)),
        ...     tf.keras.layers.Dense(128, activation="relu"),
        ...     tf.keras.layers.Dense(10, activation="softmax"),
        ... ])
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._input_layer = None
        self._symbolic_input = None
        self._symbolic_outputs = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        """Appends a layer (or a ``tf.keras.Input`` tensor, which sets the input shape)."""
        if isinstance(layer, Tensor) and layer._keras_history is not None:
            layer = layer._keras_history.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer instance, got {type(layer).__name__}: {layer!r}")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self.layers:
                raise ValueError("Sequential: an Input can only be the first layer")
            # Not a tracked sublayer: Keras's `model.layers` of a Sequential model omits the InputLayer.
            object.__setattr__(self, "_input_layer", layer)
            self._symbolic_input = layer.output_tensor
            return
        if any(layer.name == known.name for known in self.layers):
            raise ValueError(f'All layers added to a Sequential model should have unique names. Name "{layer.name}" is already the name of a layer in this model.')
        self._tracked_layers.append(layer)
        if self._symbolic_input is None and len(self.layers) == 1 and layer._batch_input_shape is not None:
            self._symbolic_input = Input(batch_shape=layer._batch_input_shape)
        if self._symbolic_input is not None:
            self._build_graph()

    def pop(self):
        """Removes and returns the last layer."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._tracked_layers.pop()
        if self._symbolic_input is not None and self.layers:
            self._build_graph()
        return layer

    @property
    def layers(self) -> list:
        return list(self._tracked_layers)

    def _build_graph(self) -> None:
        """Runs the stack on the symbolic input: builds every layer and records the output shapes."""
        tensor = self._symbolic_input
        outputs = []
        for layer in self.layers:
            tensor = layer(tensor)
            outputs.append(tensor)
        self._symbolic_outputs = outputs
        self.built = True
        self._build_input_shape = self._symbolic_input.shape

    def build(self, input_shape=None):
        if input_shape is None:
            if self._symbolic_input is None:
                raise ValueError("You must provide an input_shape to build a Sequential model without an Input")
            return
        shape = TensorShape(input_shape).as_list()
        if self._symbolic_input is None or not self.built:
            from trainer.graph.tracing import tracing  # noqa: PLC0415

            with tracing(None):  # a shape-only pass: never part of an enclosing trace (fit's traced step)
                self._symbolic_input = Input(batch_shape=shape)
                self._build_graph()

    def _maybe_build(self, inputs) -> None:
        # The first call builds the model for any batch size, not only for that call's batch.
        if not isinstance(inputs, Tensor):
            super()._maybe_build(inputs)
            return
        self.build([None] + inputs.shape.as_list()[1:])

    def call(self, inputs, training=None):
        if not self.built:
            self.build([None] + inputs.shape.as_list()[1:])
        elif self._symbolic_input is not None and not self._symbolic_input.shape.is_compatible_with(inputs.shape):
            error = ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected shape={self._symbolic_input.shape}, '
                f"found shape={inputs.shape}"
            )
            error._emberflow_layer = self.name
            raise error
        for layer in self._tracked_layers:
            inputs = layer(inputs, training=training)
        return inputs

    @property
    def inputs(self) -> list:
        return [self._symbolic_input] if self._symbolic_input is not None else []

    @property
    def outputs(self) -> list:
        return [self._symbolic_outputs[-1]] if self._symbolic_outputs else []

    def layer_output_shapes(self) -> list:
        return [t.shape for t in self._symbolic_outputs]

    def get_config(self) -> dict:
        from trainer.keras.saving.registration import serialize  # noqa: PLC0415

        layers = []
        if self._symbolic_input is not None:
            layers.append({"class_name": "InputLayer", "config": {"batch_shape": self._symbolic_input.shape.as_list(), "dtype": self._symbolic_input.dtype.name, "name": self._input_layer.name if self._input_layer else "input_layer"}})
        layers.extend(serialize(layer) for layer in self.layers)
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from trainer.keras.saving.object_config import deserialize_layer  # noqa: PLC0415

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            if layer_config.get("class_name") == "InputLayer":
                model.add(Input(batch_shape=layer_config["config"]["batch_shape"], dtype=layer_config["config"].get("dtype"), name=layer_config["config"].get("name")))
            else:
                model.add(deserialize_layer(layer_config, custom_objects))  # nested models too
        return model
