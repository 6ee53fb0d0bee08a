"""Several Vigie nodes sharing the cameras over NATS with JetStream; absent (no `cluster:` in
the config), Vigie runs alone. Holds: ownership (which node pulls which camera: the pure
decisions), relay (access units between nodes, the owner's packet tap, wants), node (this
node's NATS connection, leases in a JetStream key-value bucket, subscriptions, status).
May import: ingest, server.config, server.runtime, server.keys."""
