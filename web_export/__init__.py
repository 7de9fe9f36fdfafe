"""emberflow's browser target: the JavaScript lite runtime, the bundle writer and the demo page.

    from web_export import bundle
    bundle(model, "site/")      # then: python -m http.server --directory site

The runtime (``web_export/js/``) and the page (``web_export/page/``) are package data that ``bundle``
copies next to the model file and its ``manifest.json``.
"""

from web_export.bundle import bundle

__all__ = ["bundle"]
