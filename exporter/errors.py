"""The exporter's one exception type."""


class ExportError(ValueError):
    """A model or graph cannot be exported; the message names the op, layer, source line and target."""
