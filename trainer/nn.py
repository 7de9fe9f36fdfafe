"""``tf.nn``: activations, losses on logits, dropout and (in ``trainer.ops.conv_ops``) convolutions."""

from trainer.ops.conv_ops import (  # noqa: F401
    avg_pool,
    avg_pool2d,
    conv2d,
    depthwise_conv2d,
    max_pool,
    max_pool2d,
)
from trainer.ops.nn_ops import (  # noqa: F401
    bias_add,
    dropout,
    elu,
    gelu,
    hard_sigmoid,
    hard_swish,
    l2_normalize,
    leaky_relu,
    log_softmax,
    relu,
    relu6,
    selu,
    sigmoid,
    sigmoid_cross_entropy_with_logits,
    silu,
    softmax,
    softmax_cross_entropy_with_logits,
    softplus,
    sparse_softmax_cross_entropy_with_logits,
    swish,
    tanh,
)
