-- Trusted publishing ---------------------------------------------------------------

-- One live trust configuration per package (npm's rule). `claims` is the configuration as
-- npm shows it; `pinned_ids` holds the CI's numeric repository/owner (or project/namespace)
-- ids, given at creation or learnt from the first accepted ID token, after which a
-- re-created repository of the same name no longer matches.
CREATE TABLE trust_configs (
    id          TEXT PRIMARY KEY,
    package_id  INTEGER NOT NULL REFERENCES packages(id),
    provider    TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    claims      TEXT NOT NULL,
    permissions TEXT NOT NULL,
    pinned_ids  TEXT,
    created_by  INTEGER NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE UNIQUE INDEX trust_configs_one_live ON trust_configs(package_id) WHERE revoked_at IS NULL;

-- Every ID token accepted by the exchange, so none is accepted twice. Rows past their
-- expiry are pruned: an expired token is refused anyway.
CREATE TABLE oidc_token_uses (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (issuer, jti)
);

-- Short-lived credentials minted by the exchange: only their hash is kept.
CREATE TABLE publisher_tokens (
    hash        TEXT PRIMARY KEY,
    config_id   TEXT NOT NULL REFERENCES trust_configs(id),
    package     TEXT NOT NULL,
    permissions TEXT NOT NULL,
    identity    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
