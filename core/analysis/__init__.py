"""Per-face analysis: detectors, then the processors that each enrich a :class:`core.faces.Face`.

May import ``core.style``, ``core.store`` and the shared modules at the root of ``core``; never
``core.stream`` (a processor does not know who calls it).
"""
