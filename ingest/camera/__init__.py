"""One camera: the worker thread that pulls, decodes and normalises it (worker), its
health as the API shows it (health: state, rates, reasons), the reconnection back-off, and
picture health: what its picture looks like (sight: a small grey copy and its features)
and whether it is usable (picture_health: frozen, black, covered, blurred, moved, too dark
or bright, against a learned reference kept by references).
May import: ingest.source, ingest.picture, ingest.redact."""
