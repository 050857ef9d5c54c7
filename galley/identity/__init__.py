"""Identity: Galley's own OAuth2 / OIDC authority (tenants, subscriptions, service principals,
hashed secrets, signed tokens), trust in external OIDC issuers, and the server's TLS material."""
