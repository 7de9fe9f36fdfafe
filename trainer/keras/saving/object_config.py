"""Rebuilding layers and nested models from their configs, constructing registered classes only."""

from __future__ import annotations

import inspect

from trainer.keras.saving.registration import UnknownObjectError, lookup


def deserialize_layer(config, custom_objects: dict | None = None):
    """A layer, or a model used as a layer, rebuilt from ``{"class_name": ..., "config": {...}}``.

    The class is looked up among registered layers, then registered models (a ``Sequential`` inside
    a functional model), or in ``custom_objects``; anything else raises ``UnknownObjectError``.
    """
    from trainer.keras.layers.base import Layer  # noqa: PLC0415 - layers import this package

    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) or not isinstance(config.get("config", {}), dict):
        raise UnknownObjectError(f"a layer config must be {{'class_name': str, 'config': dict}}, got {str(config)[:200]}")
    class_name = config["class_name"]
    try:
        cls = lookup("layers", class_name, custom_objects)
    except UnknownObjectError as layer_error:
        try:
            cls = lookup("models", class_name, custom_objects)
        except UnknownObjectError:
            raise layer_error from None
    if not (inspect.isclass(cls) and issubclass(cls, Layer)):
        raise UnknownObjectError(f"{class_name!r} is registered, but not as a layer class")
    return from_config(cls, config.get("config", {}), custom_objects)


def from_config(cls, config: dict, custom_objects: dict | None = None):
    """``cls.from_config(config)``, handing ``custom_objects`` on where it takes them (models do)."""
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(dict(config), custom_objects=custom_objects)
    return cls.from_config(dict(config))
