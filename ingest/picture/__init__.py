"""Pictures: a decoded frame into a tile (normalise: scale, letterbox, privacy masks,
overlay), the latest tile per camera and size (tiles), cell geometry (layout), text
(overlay), NO SIGNAL cards (cards), machine-readable stamps (stamp).
May import: itself only (numpy, OpenCV, PyAV)."""
