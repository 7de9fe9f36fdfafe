"""emberflow's exporter: graph passes, lowering to lite and ONNX, quantization, and the ``emberflow`` CLI.

Lowering arrives with the exporter issue; today the package holds the command line (``emberflow demo``).
"""
