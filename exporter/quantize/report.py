"""Per-layer quantization error: every operator's output in the quantized file against the float file's.

Both files run in our own runtime (``calibrate.FileRunner``, every intermediate kept), so the report needs
no LiteRT. An operator's output is matched to the float tensor of the same name (the quantization passes
keep activation names, adding "_int8" or "_float" to the copies they make), dequantized with its own
scale and zero point, and compared: max and mean absolute error and the signal-to-quantization-noise
ratio, SQNR = 10 log10(sum f^2 / sum (f - q)^2) dB (higher is better; inf when they agree exactly).

The table and the chart mark as worst only layers that stand out (``QuantizationReport.standouts``): the
lowest-SQNR layer, and any other within ``WORST_WITHIN_DB`` of it — each only when it lies at least
``WORST_BELOW_MEDIAN_DB`` below the median SQNR. Layers that are all about as noisy as each other get no mark.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from exporter.errors import ExportError
from exporter.files import write_atomically
from exporter.quantize.calibrate import FileRunner, batches
from exporter.quantize.params import dequantize

_SKIPPED = {"QUANTIZE", "DEQUANTIZE"}  # format conversions at the edges, not layers
# Names the quantization passes give an operator's own output beside the float model's tensor name: an int8
# output before its DEQUANTIZE, or a float op's output before the QUANTIZE to an int8 model output.
_SUFFIXES = ("_int8", "_float")
WORST_COUNT = 3
WORST_BELOW_MEDIAN_DB = 6.0  # a marked layer has at least 4x the noise power of the median layer
WORST_WITHIN_DB = 3.0  # ... and at most 2x the noise power of the worst layer


@dataclass
class LayerError:
    """One operator's output compared with the float model's."""

    op: str
    tensor: str
    max_abs: float
    mean_abs: float
    sqnr_db: float  # inf when the outputs agree exactly


@dataclass
class QuantizationReport:
    """The per-layer errors of one quantized file, in operator order.

    Example:
        >>> report = quantization_report(model, x_test[:200], "mnist_int8.lite")
        >>> print(report.table()); report.plot("error.png"); report.worst(2)
    """

    layers: list[LayerError] = field(default_factory=list)

    def worst(self, count: int = WORST_COUNT) -> list[LayerError]:
        """The ``count`` layers with the lowest SQNR (most quantization noise), worst first."""
        return sorted(self.layers, key=lambda layer: layer.sqnr_db)[:count]

    def standouts(self) -> list[LayerError]:
        """The layers worth a look, worst first: the lowest-SQNR layer and those within ``WORST_WITHIN_DB`` of it,
        keeping only those at least ``WORST_BELOW_MEDIAN_DB`` below the median SQNR of the finite layers
        (exact layers count as no noise and are never marked)."""
        finite = sorted((layer for layer in self.layers if math.isfinite(layer.sqnr_db)), key=lambda layer: layer.sqnr_db)
        if not finite:
            return []
        median = float(np.median([layer.sqnr_db for layer in finite]))
        lowest = finite[0].sqnr_db
        return [layer for layer in finite
                if layer.sqnr_db <= lowest + WORST_WITHIN_DB and layer.sqnr_db <= median - WORST_BELOW_MEDIAN_DB]  # fmt: skip

    def table(self) -> str:
        """A text table, one row per layer, the layers that stand out (``standouts``) marked."""
        worst = {id(layer) for layer in self.standouts()}
        header = f"{'#':>3}  {'op':<18} {'tensor':<32} {'max abs err':>12} {'mean abs err':>13} {'SQNR dB':>8}"
        lines = [header, "-" * len(header)]
        for number, layer in enumerate(self.layers):
            mark = "  <- worst" if id(layer) in worst else ""
            lines.append(
                f"{number:>3}  {layer.op:<18} {layer.tensor[-32:]:<32} {layer.max_abs:>12.3e} {layer.mean_abs:>13.3e} "
                f"{layer.sqnr_db:>8.1f}{mark}"
            )
        return "\n".join(lines)

    def plot(self, path) -> str:
        """A bar chart of each layer's SQNR, one labelled row per layer with its value, ``standouts`` in red,
        written to ``path`` as PNG; returns the path.

        Raises:
            ExportError: matplotlib is not installed (it is optional: ``pip install 'emberflow[plot]'``).
        """
        try:
            import matplotlib  # noqa: PLC0415 - optional, only for the chart
        except ImportError as error:
            raise ExportError("the quantization chart needs matplotlib: pip install 'emberflow[plot]'") from error
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        from matplotlib.patches import Patch  # noqa: PLC0415

        worst = self.standouts()
        finite = [layer.sqnr_db for layer in self.layers if math.isfinite(layer.sqnr_db)]
        cap = max(finite, default=0.0) + 10  # exact layers drawn a little beyond the best finite one
        values = [layer.sqnr_db if math.isfinite(layer.sqnr_db) else cap for layer in self.layers]
        # One row per layer, first layer on top, names left of the bars where they stay horizontal.
        figure, axes = plt.subplots(figsize=(9, 1.8 + 0.38 * len(self.layers)))
        is_worst = [any(layer is w for w in worst) for layer in self.layers]
        axes.barh(range(len(values)), values, color=["tab:red" if bad else "tab:blue" for bad in is_worst])
        labels = [f"{number}  {layer.op}  {layer.tensor[-36:]}" for number, layer in enumerate(self.layers)]
        axes.set_yticks(range(len(values)), labels, fontsize=9)
        axes.invert_yaxis()
        for row, (layer, value) in enumerate(zip(self.layers, values)):  # the number itself: bars can be close
            text = f"{layer.sqnr_db:.1f} dB" if math.isfinite(layer.sqnr_db) else "exact"
            axes.text(value, row, f" {text}", va="center", fontsize=8, fontweight="bold" if is_worst[row] else None)
        low, high = min(0.0, *values), max(0.0, *values)
        axes.set_xlim(low * 1.2, high * 1.2 + 1)
        axes.set_xlabel("SQNR (dB): signal-to-quantization-noise ratio against the float file, higher is better")
        legend = [Patch(color="tab:red", label=f"worst: lowest SQNR, {WORST_BELOW_MEDIAN_DB:g}+ dB below the median"),
                  Patch(color="tab:blue", label="other layers")]  # fmt: skip
        axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, fontsize=8, frameon=False)
        axes.set_title("Quantization error per layer", fontsize=10, loc="left")
        figure.tight_layout()
        image = io.BytesIO()
        figure.savefig(image, format="png", dpi=100)
        plt.close(figure)
        write_atomically(os.fspath(path), image.getvalue())
        return os.fspath(path)

    def as_dict(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers]}


def build_report(model_or_function, inputs, quantized, input_signature=None) -> QuantizationReport:
    """``quantized`` (a path or the bytes of a lite file) against the float export of the same model."""
    from exporter.lite import to_lite  # noqa: PLC0415

    float_data = to_lite(model_or_function, None, input_signature)
    if not isinstance(quantized, (bytes, bytearray)):
        with open(os.fspath(quantized), "rb") as handle:
            quantized = handle.read()
    return compare(float_data, bytes(quantized), inputs)


def compare(float_data: bytes, quantized_data: bytes, inputs) -> QuantizationReport:
    """The report of ``quantized_data`` against ``float_data`` over ``inputs`` (anything ``batches`` takes)."""
    from lite_runtime.errors import LiteFormatError  # noqa: PLC0415
    from lite_runtime.reader import read_model  # noqa: PLC0415

    float_model, quantized_model = read_model(float_data), read_model(quantized_data)
    layers = _matched_layers(float_model, quantized_model)
    if not layers:
        raise ExportError(
            "quantization report: no operator output of the quantized file matches a float tensor by name"
        )
    floats = FileRunner(float_data)
    try:
        quants = FileRunner(quantized_data)
    except LiteFormatError as error:
        raise ExportError(f"quantization report: our lite runtime cannot run the quantized file: {error}") from error
    totals = {output: _Totals() for output, *_ in layers}
    input_shape = tuple(None if d < 0 else int(d) for d in float_model.tensors[float_model.inputs[0]].shape_signature)
    for batch in batches(inputs, input_shape or None):
        float_run, quantized_run = floats.run(batch), quants.run(batch)
        for output, _, _, float_index in layers:
            spec = quantized_model.tensors[output]
            q = quantized_run.get_tensor(output)
            if q.dtype != np.float32:
                q = dequantize(q, spec.scales, spec.zero_points, spec.quantized_dimension)
            totals[output].add(float_run.get_tensor(float_index), q)
    return QuantizationReport([LayerError(op, name, *totals[output].summary()) for output, op, name, _ in layers])


class _Totals:
    """Running sums of one layer's error over the batches."""

    def __init__(self):
        self.peak = self.total = self.signal = self.noise = 0.0
        self.count = 0

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        reference = reference.astype(np.float64)
        error = np.abs(reference - quantized.astype(np.float64))
        self.peak = max(self.peak, float(error.max(initial=0.0)))
        self.total += float(error.sum())
        self.count += error.size
        self.signal += float((reference * reference).sum())
        self.noise += float((error * error).sum())

    def summary(self) -> tuple[float, float, float]:
        """(max abs, mean abs, SQNR dB)."""
        sqnr = math.inf if self.noise == 0 else 10 * math.log10(max(self.signal, 1e-30) / self.noise)
        return self.peak, self.total / max(self.count, 1), sqnr


def _matched_layers(float_model, quantized_model) -> list[tuple[int, str, str, int]]:
    """(quantized output index, op name, tensor name, float tensor index) for each comparable operator."""
    float_index = {t.name: t.index for t in float_model.tensors if t.data is None and t.dtype == np.float32}
    matched = []
    for operator in quantized_model.operators:
        if operator.name in _SKIPPED or not operator.outputs:
            continue
        output = operator.outputs[0]
        name, shape = quantized_model.tensors[output].name, quantized_model.tensors[output].shape
        for suffix in _SUFFIXES if name not in float_index else ():
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name in float_index and shape == float_model.tensors[float_index[name]].shape:
            matched.append((output, operator.name, name, float_index[name]))
    return matched
