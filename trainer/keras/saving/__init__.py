from trainer.keras.saving.registration import (  # noqa: F401
    UnknownObjectError,
    deserialize,
    keras_serializable,
    lookup,
    register_keras_serializable,
    serialize,
)
