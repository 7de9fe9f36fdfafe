"""Which saved array belongs to which weight: a model's weights as records by layer path and order.

A record names the layer that owns a weight by its path of layer names below the model ("dense_1",
"block/conv2d"; the model's own weights have the path ""), the layer's class, the weight's short
name and its position among that layer's weights. Loading matches records to layers by path; when
the file's paths are not all found in the model (a model rebuilt in the same process gets new
automatic names), layers are matched by order instead, as Keras's HDF5 loader does by default.
"""

from __future__ import annotations

import numpy as np

from trainer.keras.saving.file_format import SavingError
from trainer.tensor import convert_to_tensor


def owned_weights(model) -> list:
    """``(path, layer, weights)`` for ``model`` and every layer under it, depth first in tracking order.

    Each weight appears once, under the first layer that owns it, in the order the layer created it.
    """
    seen_layers, seen_weights, result = set(), set(), []

    def visit(layer, path):
        if id(layer) in seen_layers:
            return
        seen_layers.add(id(layer))
        own = [weight for weight in layer._own_weights if id(weight) not in seen_weights]
        seen_weights.update(id(weight) for weight in own)
        result.append((path, layer, own))
        sibling_names: dict[str, int] = {}
        for child in layer._tracked_layers:
            count = sibling_names.get(child.name, 0)
            sibling_names[child.name] = count + 1
            name = child.name if count == 0 else f"{child.name}#{count}"  # two sublayers may share a name
            visit(child, f"{path}/{name}" if path else name)

    visit(model, "")
    return result


def weight_records(model) -> list:
    """``(record, variable)`` for every weight of ``model``, in the order a weights file stores them."""
    records = []
    for path, layer, weights in owned_weights(model):
        for index, variable in enumerate(weights):
            short_name = variable.name.rsplit(":", 1)[0].rsplit("/", 1)[-1]
            records.append(({"layer": path, "class_name": type(layer).__name__, "weight": short_name, "index": index}, variable))
    return records


def match_records(model, records: list, where: str) -> list:
    """``(variable, record)`` pairs: each saved record with the model weight it restores.

    Raises ``SavingError`` naming the layer when the file and the model disagree: a layer missing,
    a different number of weights, a weight of another shape, or a dtype that cannot be cast.
    """
    saved: dict[str, list] = {}
    for record in records:
        saved.setdefault(record["layer"], []).append(record)
    target = owned_weights(model)
    by_path = {path: (layer, weights) for path, layer, weights in target}
    if all(path in by_path for path in saved):
        missing = [_display(path, model) for path, _, weights in target if weights and path not in saved]
        if missing:
            raise SavingError(f"{where}: the file has no weights for layer(s) {', '.join(missing)}; it was saved from a different model")
        groups = [(path, *by_path[path], saved[path]) for path in saved]
    else:
        groups = _match_by_order(model, target, saved, where)
    pairs = []
    for path, layer, weights, layer_records in groups:
        name = _display(path, model)
        if len(weights) != len(layer_records):
            hint = "; the layer is not built yet: call the model on data or build() it first" if not layer.built else ""
            raise SavingError(f"{where}: layer {name} has {len(weights)} weights in the model but {len(layer_records)} in the file{hint}")
        for variable, record in zip(weights, layer_records):
            expected = tuple(variable.shape.as_list())
            if tuple(record["shape"]) != expected:
                raise SavingError(
                    f"{where}: layer {name} weight '{record['weight']}' has shape {tuple(record['shape'])} in the file "
                    f"but {expected} in the model"
                )
            if not np.can_cast(np.dtype(record["dtype"]), variable.dtype.as_numpy_dtype, "same_kind"):
                raise SavingError(f"{where}: layer {name} weight '{record['weight']}' is {record['dtype']} in the file, {variable.dtype.name} in the model")
            pairs.append((variable, record))
    return pairs


def _match_by_order(model, target: list, saved: dict, where: str) -> list:
    holders = [(path, layer, weights) for path, layer, weights in target if weights]
    if len(holders) != len(saved):
        hint = "; the model is not built yet: call it on data or build() it first" if not model.built else ""
        raise SavingError(
            f"{where}: the file holds weights for {len(saved)} layers ({', '.join(map(repr, saved))}) but the model has "
            f"{len(holders)} layers with weights ({', '.join(repr(path) for path, _, _ in holders)}){hint}"
        )
    groups = []
    for position, ((path, layer, weights), (saved_path, layer_records)) in enumerate(zip(holders, saved.items())):
        if layer_records[0]["class_name"] != type(layer).__name__:
            raise SavingError(
                f"{where}: layer {position} with weights is {layer_records[0]['class_name']} '{saved_path}' in the file "
                f"but {type(layer).__name__} '{path}' in the model"
            )
        groups.append((path, layer, weights, layer_records))
    return groups


def assign(pairs: list, arrays: list) -> None:
    """Writes each array into its variable, cast to the variable's dtype (checked by ``match_records``)."""
    for (variable, _), array in zip(pairs, arrays):
        value = np.asarray(array).astype(variable.dtype.as_numpy_dtype, copy=False)
        variable.assign(convert_to_tensor(value, dtype=variable.dtype))


def _display(path: str, model) -> str:
    return f"'{path}'" if path else f"'{model.name}' (the model's own weights)"
