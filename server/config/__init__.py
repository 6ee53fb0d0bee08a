"""The configuration: one YAML file, validated, errors by file, line and field.

Holds: loader (safe YAML with line marks, `load_config`, `parse_config`, `ConfigError`),
types (shared field types and error formatting), one model module per section: cameras
(communes, cameras, secrets, privacy masks), walls, users (users, kiosks, metrics, audit,
sessions, limits), models (the whole file and its cross-references).
May import: itself only. `from server.config import ...` is the way in.
"""

from server.config.loader import *  # noqa: F403 - the loader's __all__ is the package's face
from server.config.loader import __all__  # noqa: F401
