"""Who may see what: scope (pure permission rules), auth (who is asking: sessions, tokens,
the refuse-by-default middleware), sessions (the session store and the login throttle),
secrets (password and token hashes), limits (views per user and address), views (the open
views, re-checked whenever what they show changes).
May import: server.config, server.runtime, server.audit."""
