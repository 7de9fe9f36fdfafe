"""emberflow's browser target: the JavaScript lite runtime, the bundle writer and the demo page.

It arrives with the web export issue; until then the package exists so that the distribution's four
packages install and import.
"""
