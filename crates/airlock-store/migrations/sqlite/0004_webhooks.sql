-- Webhooks -----------------------------------------------------------------------------

-- A subscription: the gate events of a package (`target` is its name) or of every package in
-- a scope (`target` is `@scope`) are POSTed to `url`, signed with HMAC-SHA256 under `secret`.
-- The secret is kept as given because signing needs it; it is never shown again after creation.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    target     TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_by_target ON webhooks(target);

-- The outbox: one row per hook per event, inserted by the transaction that records the gate
-- event, so a committed event always gets its notifications. `payload` is the exact body sent
-- and signed on every attempt. `next_attempt_at` is NULL once delivered or given up.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_kind      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    delivered_at    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, created_at);
