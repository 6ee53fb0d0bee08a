"""Vigie's RTSP output, for other video systems (issue 20, under way): message (requests as
clients send them, parsed with hard limits), sdp (what DESCRIBE answers: one H.264 or H.265
track, its parameter sets, rate and control URL). With ingest/encode/rtp.py (packets, sender
reports) and server/access/digest.py (Digest, MD5 and SHA-256); the server and its
sessions come next.
May import: server.access, server.runtime, server.audit, ingest (encoded frames, RTP)."""
