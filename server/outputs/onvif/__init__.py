"""The ONVIF Profile S facade, so that other video systems find Vigie's streams: service
(the device and media services on the web port, their own WS-Security authentication),
soap (envelopes read safely, faults, UsernameToken digests and replays), profiles (one per
camera and wall in the caller's scope), answers (the XML of each operation), discovery
(WS-Discovery on UDP 3702, off by default).
May import: server.access, server.runtime, server.audit, server.keys."""
