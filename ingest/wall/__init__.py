"""Walls: the compositor (latest tiles into a canvas at the wall's rate, encoded once per
format) and the governor (short of CPU, the least prominent cameras reduced to keyframes).
May import: ingest.camera, ingest.picture, ingest.encode."""
