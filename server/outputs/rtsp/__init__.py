"""Vigie's RTSP output, for other video systems (the gendarmerie's, a recorder, FFmpeg or
GStreamer tools): server (listening, UDP sockets, the reaper), connection (one client's
requests, Digest authentication against stream credentials), session (a playing stream:
packetised and sent, its view opened through server.access.views), feed (what a path plays:
a camera's own access units, or a composed picture's from the fMP4 encoder), message
(requests parsed with hard limits), sdp (what DESCRIBE answers). With ingest/encode/rtp.py
(packets, sender reports) and server/access/digest.py.
May import: server.access, server.runtime, server.audit, ingest (encoded frames, RTP)."""
