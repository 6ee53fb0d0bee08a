"""The HTTP API, one module per noun: status (health, readiness, status, cameras, walls,
metrics), walls (a wall's change, tours), login, sessions, journal, admin (reload),
picture (a camera's picture-health reference), demo (demo cameras' faults), openapi.
May import: server.access, server.runtime, server.audit, server.config, server.web."""
