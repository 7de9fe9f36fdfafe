"""The one registration decorator: every public Keras-style class is exported and made loadable here.

Loading a saved model constructs only names registered in this table (or passed explicitly in
``custom_objects``), never serialized Python objects: that is what makes loading safe.
"""

from __future__ import annotations

import inspect

_REGISTRY: dict[tuple[str, str], object] = {}


class UnknownObjectError(ValueError):
    """A config names a class or function that is not registered; the message lists what is."""


def keras_serializable(category: str, *aliases: str):
    """Registers a class (or function) under ``category`` by its ``__name__`` and any snake_case ``aliases``.

    ``category`` is one of "layers", "models", "optimizers", "losses", "metrics", "activations",
    "initializers", "regularizers", "constraints", "callbacks", "schedules".
    """

    def decorate(obj):
        for name in (obj.__name__, *aliases):
            key = (category, name)
            if key in _REGISTRY and _REGISTRY[key] is not obj:
                raise ValueError(f"{category} name {name!r} is registered twice")
            _REGISTRY[key] = obj
        return obj

    return decorate


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """``@tf.keras.utils.register_keras_serializable()``: makes a user class loadable by name."""

    def decorate(obj):
        registered = f"{package}>{name or obj.__name__}"
        for category in ("layers", "models", "losses", "metrics", "optimizers", "activations", "initializers", "regularizers"):
            _REGISTRY[(category, registered)] = obj
        obj._registered_name = registered
        return obj

    return decorate


def registered_name(obj) -> str:
    """The name a class, function or instance is saved under: its registered ``package>name``, else ``__name__``."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    # vars(), not getattr: an unregistered subclass must not be saved under its registered parent's name.
    return vars(target).get("_registered_name") or target.__name__


def lookup(category: str, name: str, custom_objects: dict | None = None):
    """The registered class or function called ``name`` in ``category``; ``custom_objects`` wins."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    found = _REGISTRY.get((category, name))
    if found is None:
        known = sorted(n for c, n in _REGISTRY if c == category)
        raise UnknownObjectError(
            f"unknown {category[:-1] if category.endswith('s') else category} {name!r}; registered names: "
            f"{', '.join(known[:40])}{' ...' if len(known) > 40 else ''}. Pass custom classes in custom_objects= "
            "or decorate them with @tf.keras.utils.register_keras_serializable()"
        )
    return found


def serialize(obj) -> dict | str:
    """``{"class_name": ..., "config": ...}`` for objects, the registered name for plain functions."""
    if inspect.isfunction(obj):
        return registered_name(obj)
    return {"class_name": registered_name(obj), "config": obj.get_config()}


def deserialize(category: str, config, custom_objects: dict | None = None):
    """Rebuilds an object from ``serialize``'s output, a registered name, or passes instances through."""
    if isinstance(config, str):
        found = lookup(category, config, custom_objects)
        return found() if inspect.isclass(found) else found
    if isinstance(config, dict) and "class_name" in config:
        cls = lookup(category, config["class_name"], custom_objects)
        if not inspect.isclass(cls):
            raise UnknownObjectError(f"{config['class_name']!r} is a function, not a class with a config")
        if hasattr(cls, "from_config"):
            return cls.from_config(dict(config.get("config", {})))
        return cls(**config.get("config", {}))
    return config
