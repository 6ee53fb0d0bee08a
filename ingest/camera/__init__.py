"""One camera: the worker thread that pulls, decodes and normalises it (worker), its
health as the API shows it (health: state, rates, reasons), the reconnection back-off.
May import: ingest.source, ingest.picture, ingest.redact."""
