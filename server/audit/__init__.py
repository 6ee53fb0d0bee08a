"""The viewing journal: who opened which view of which camera or wall, when, from where;
logins, wall changes, reloads. Append-only SQLite on its own thread (journal); rows,
their safety and their CSV export (rows); its schema (schema); a cluster's copy of the
other nodes' rows (replica). Camera health too: each outage and picture condition with its
start and end, and each run of Vigie (camera_history); availability, incidents and planned
works computed from them (availability).
May import: itself only."""

from server.audit.journal import AuditError, AuditJournal
from server.audit.rows import Client, rows_to_csv

__all__ = ["AuditError", "AuditJournal", "Client", "rows_to_csv"]
