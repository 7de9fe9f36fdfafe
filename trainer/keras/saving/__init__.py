from trainer.keras.saving.file_format import SavingError  # noqa: F401
from trainer.keras.saving.registration import (  # noqa: F401
    UnknownObjectError,
    deserialize,
    keras_serializable,
    lookup,
    register_keras_serializable,
    serialize,
)
from trainer.keras.saving.saving import load_model, load_weights, model_from_json, save_model, save_weights  # noqa: F401
