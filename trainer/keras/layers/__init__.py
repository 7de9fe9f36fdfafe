"""``tf.keras.layers``: every public layer class, exported from one place."""

from trainer.keras.layers.base import InputSpec, Layer  # noqa: F401
from trainer.keras.layers.conv import Conv2D, DepthwiseConv2D  # noqa: F401
from trainer.keras.layers.pooling import (  # noqa: F401
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from trainer.keras.layers.core import Activation, Dense, Dropout, Flatten, Identity, Lambda  # noqa: F401
from trainer.keras.layers.input_layer import Input, InputLayer  # noqa: F401
from trainer.keras.layers.activations import ELU, LeakyReLU, PReLU, ReLU, Softmax  # noqa: F401
from trainer.keras.layers.merging import (  # noqa: F401
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from trainer.keras.layers.normalization import BatchNormalization, LayerNormalization  # noqa: F401
from trainer.keras.layers.preprocessing import Normalization, Rescaling  # noqa: F401
from trainer.keras.layers.reshaping import Cropping2D, Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D  # noqa: F401
