"""Several Vigie nodes sharing the cameras over NATS with JetStream; absent (no `cluster:` in
the config), Vigie runs alone. Holds: ownership (which node pulls which camera: the pure
decisions), relay (access units between nodes, the owner's packet tap, wants, cameras'
health), kv (the key-value buckets), node (this node's NATS connection, leases,
subscriptions), context (the node for the web application's lifetime).
May import: ingest, server.config, server.runtime, server.keys."""
