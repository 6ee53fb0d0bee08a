"""The viewing journal: who opened which view of which camera or wall, when, from where;
logins, wall changes, reloads. Append-only SQLite on its own thread (journal); rows,
their safety and their CSV export (rows).
May import: itself only."""

from server.audit.journal import AuditError, AuditJournal
from server.audit.rows import Client, rows_to_csv

__all__ = ["AuditError", "AuditJournal", "Client", "rows_to_csv"]
