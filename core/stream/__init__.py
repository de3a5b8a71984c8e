"""Frames in, annotated frames out: the pipeline (detect once, track, enrich, draw), the WebRTC
stream, video files, photos, overlays and synthetic clips.

The top wing of ``core``: may import ``core.analysis`` and everything below it.
"""
