"""Vigie's RTSP output, for other video systems (issue 20, under way): message (requests as
clients send them, parsed with hard limits), digest (RTSP Digest authentication, MD5 and
SHA-256 per RFC 7616). The server, its sessions and their RTP come next.
May import: server.access, server.runtime, server.audit, ingest (encoded frames, RTP)."""
