"""Several Vigie nodes sharing the cameras over NATS with JetStream; absent (no `cluster:` in
the config), Vigie runs alone. Holds: ownership (which node pulls which camera: the pure
decisions), node (this node's NATS connection, leases, heartbeats, changes told to every
node), relay (the messages between nodes: access units, wants, cameras' health) and link
(publishing and reading them), sessions, throttle and journal (the web sessions, the login
throttle and the journal, shared through JetStream), kv (the key-value buckets, what the
heartbeats count), context (all of it for the web application's lifetime).
May import: ingest, server.config, server.runtime, server.keys, server.access, server.audit."""
