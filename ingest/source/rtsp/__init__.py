"""RTSP cameras read by Vigie's own client: client (RTSP/1.0 over interleaved TCP, its
message parsers and limits), rtp (H.264/H.265 depacketising), source (the Source that
decodes them with PyAV, falling back to FFmpeg's client for what ours does not take).
May import: ingest.source's base, pyav, decoding and lag."""
