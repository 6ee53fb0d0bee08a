"""The journal's SQLite schema, as migration steps (server/audit/journal.py applies them)."""

from __future__ import annotations

SCHEMA_VERSION = 4

# Index i brings a database from user_version i to i + 1. Never edit a released step:
# add one, and bump SCHEMA_VERSION.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE journal (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
        kind         TEXT NOT NULL,                      -- 'view' or an event kind
        time         REAL NOT NULL,                      -- epoch seconds; a view's start
        end_time     REAL,                               -- views: set once when closed
        duration     REAL,                               -- views: seconds, set with end_time
        close_reason TEXT,                               -- views: closed | shutdown | ...
        user_name    TEXT NOT NULL,
        role         TEXT NOT NULL,
        address      TEXT NOT NULL,
        user_agent   TEXT NOT NULL,
        target_kind  TEXT,                               -- views: wall | camera | mosaic
        target       TEXT,
        output       TEXT,                               -- views: mjpeg | ws | snapshot | ...
        cameras      TEXT NOT NULL DEFAULT '[]',         -- JSON list, in the caller's order
        communes     TEXT NOT NULL DEFAULT '[]',         -- JSON list
        detail       TEXT NOT NULL DEFAULT '{}'          -- JSON object of scalars
    );
    CREATE INDEX journal_time ON journal (time);
    CREATE INDEX journal_user ON journal (user_name, time);
    CREATE INDEX journal_open_views ON journal (id) WHERE kind = 'view' AND end_time IS NULL;

    CREATE TABLE journal_camera (
        entry_id INTEGER NOT NULL REFERENCES journal (id),
        camera   TEXT NOT NULL,
        PRIMARY KEY (entry_id, camera)
    ) WITHOUT ROWID;
    CREATE INDEX journal_camera_by_camera ON journal_camera (camera, entry_id);

    CREATE TABLE journal_commune (
        entry_id INTEGER NOT NULL REFERENCES journal (id),
        commune  TEXT NOT NULL,
        PRIMARY KEY (entry_id, commune)
    ) WITHOUT ROWID;
    CREATE INDEX journal_commune_by_commune ON journal_commune (commune, entry_id);

    CREATE TRIGGER journal_written_once
    BEFORE UPDATE OF id, kind, time, user_name, role, address, user_agent, target_kind,
                     target, output, cameras, communes, detail ON journal
    BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END;

    CREATE TRIGGER journal_view_closed_once
    BEFORE UPDATE OF end_time, duration, close_reason ON journal
    WHEN OLD.kind <> 'view' OR OLD.end_time IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a view is closed once'); END;

    CREATE TRIGGER journal_camera_written_once BEFORE UPDATE ON journal_camera
    BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END;

    CREATE TRIGGER journal_commune_written_once BEFORE UPDATE ON journal_commune
    BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END;
    """,
    # 2: bytes sent by a view (RTSP sessions), written with its end, once.
    """
    ALTER TABLE journal ADD COLUMN bytes_sent INTEGER;
    CREATE TRIGGER journal_bytes_written_once
    BEFORE UPDATE OF bytes_sent ON journal
    WHEN OLD.kind <> 'view' OR OLD.end_time IS NOT NULL OR NEW.end_time IS NULL
    BEGIN SELECT RAISE(ABORT, 'a view is closed once'); END;
    """,
    # 3: a cluster's journal (server/audit/replica.py). Rows written by another node carry
    # its name and their id there (origin "node:id", unique); this node's own rows leave
    # their changes in journal_changes, published to the cluster and then forgotten. A view
    # closed as "node_lost" (its node vanished) takes its true end when that node tells it.
    """
    ALTER TABLE journal ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE journal ADD COLUMN origin TEXT;
    CREATE UNIQUE INDEX journal_origin ON journal (origin) WHERE origin IS NOT NULL;
    CREATE INDEX journal_open_views_by_node ON journal (node) WHERE kind = 'view' AND end_time IS NULL;
    CREATE TRIGGER journal_origin_written_once BEFORE UPDATE OF node, origin ON journal
    BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END;
    DROP TRIGGER journal_view_closed_once;
    CREATE TRIGGER journal_view_closed_once
    BEFORE UPDATE OF end_time, duration, close_reason ON journal
    WHEN OLD.kind <> 'view' OR (OLD.end_time IS NOT NULL AND OLD.close_reason IS NOT 'node_lost')
    BEGIN SELECT RAISE(ABORT, 'a view is closed once'); END;
    DROP TRIGGER journal_bytes_written_once;
    CREATE TRIGGER journal_bytes_written_once
    BEFORE UPDATE OF bytes_sent ON journal
    WHEN OLD.kind <> 'view' OR NEW.end_time IS NULL
         OR (OLD.end_time IS NOT NULL AND OLD.close_reason IS NOT 'node_lost')
    BEGIN SELECT RAISE(ABORT, 'a view is closed once'); END;
    CREATE TABLE journal_changes (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_id INTEGER NOT NULL,
        op       TEXT NOT NULL                 -- 'entry' (written) or 'close' (a view's end)
    );
    CREATE TRIGGER journal_change_entry AFTER INSERT ON journal WHEN NEW.origin IS NULL
    BEGIN INSERT INTO journal_changes (entry_id, op) VALUES (NEW.id, 'entry'); END;
    CREATE TRIGGER journal_change_close AFTER UPDATE OF end_time ON journal
    WHEN NEW.origin IS NULL AND NEW.end_time IS NOT NULL
    BEGIN INSERT INTO journal_changes (entry_id, op) VALUES (NEW.id, 'close'); END;
    """,
    # 4: camera health (server/audit/camera_history.py). A camera's stream outage or picture
    # condition, and each run of this node, are rows that last like views: written once,
    # ended once (a restart ends them at the node's last sign of life, kept in node_alive,
    # so time Vigie did not run is unknown, never an outage).
    """
    DROP TRIGGER journal_view_closed_once;
    CREATE TRIGGER journal_view_closed_once
    BEFORE UPDATE OF end_time, duration, close_reason ON journal
    WHEN OLD.kind NOT IN ('view', 'camera_stream', 'camera_picture', 'vigie_run')
         OR (OLD.end_time IS NOT NULL AND OLD.close_reason IS NOT 'node_lost')
    BEGIN SELECT RAISE(ABORT, 'a view is closed once'); END;
    -- Camera health, acknowledgements and works are read by kind; queries repeat the
    -- "kind <> 'view'" so SQLite may use these (views keep journal_open_views).
    CREATE INDEX journal_kind ON journal (kind, time) WHERE kind <> 'view';
    CREATE INDEX journal_open_lasting ON journal (kind) WHERE end_time IS NULL AND kind <> 'view';
    CREATE TABLE node_alive (
        node TEXT PRIMARY KEY,
        at   REAL NOT NULL                 -- epoch seconds of this node's last sign of life
    ) WITHOUT ROWID;
    """,
)
