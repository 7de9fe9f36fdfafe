"""emberflow's on-device interpreter for lite (TFLite-schema) files: NumPy and flatbuffers only.

It arrives with the lite runtime issue; until then the package exists so that installs and imports of
the distribution's four packages are stable.
"""
