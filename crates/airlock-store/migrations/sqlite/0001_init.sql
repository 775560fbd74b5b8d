-- Accounts -------------------------------------------------------------------

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    fullname      TEXT,
    homepage      TEXT,
    github        TEXT,
    twitter       TEXT,
    freenode      TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Only the SHA-256 of a token is stored. `key` is the public id npm shows and revokes by.
CREATE TABLE tokens (
    key            TEXT PRIMARY KEY,
    hash           TEXT NOT NULL UNIQUE,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    display        TEXT NOT NULL,
    name           TEXT,
    description    TEXT,
    readonly       INTEGER NOT NULL,
    cidr_whitelist TEXT,
    packages       TEXT,
    created_at     TEXT NOT NULL,
    expires_at     TEXT
);
CREATE INDEX tokens_by_user ON tokens(user_id);

-- npm's web login: the browser side knows `login_id`, the polling CLI knows the secret whose
-- hash is `done_hash`. The token is minted only when the CLI polls after the browser finished.
CREATE TABLE web_logins (
    login_id       TEXT PRIMARY KEY,
    done_hash      TEXT NOT NULL UNIQUE,
    create_account INTEGER NOT NULL,
    user_id        INTEGER REFERENCES users(id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);

-- Packages -------------------------------------------------------------------

CREATE TABLE packages (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    scope          TEXT,
    access         TEXT NOT NULL CHECK (access IN ('public', 'restricted')),
    rev            INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    modified_at    TEXT NOT NULL,
    unpublished_at TEXT,
    description    TEXT,
    keywords       TEXT
);

-- A version row is never deleted: unpublishing sets `unpublished_at`, so the primary key
-- keeps the version number from ever being reused.
CREATE TABLE versions (
    package_id     INTEGER NOT NULL REFERENCES packages(id),
    version        TEXT NOT NULL,
    manifest       TEXT NOT NULL,
    integrity      TEXT NOT NULL,
    shasum         TEXT NOT NULL,
    sha512_hex     TEXT NOT NULL,
    size           INTEGER NOT NULL,
    file_count     INTEGER NOT NULL,
    unpacked_size  INTEGER NOT NULL,
    publisher_id   INTEGER NOT NULL REFERENCES users(id),
    published_at   TEXT NOT NULL,
    deprecated     TEXT,
    unpublished_at TEXT,
    PRIMARY KEY (package_id, version)
);

CREATE TABLE dist_tags (
    package_id INTEGER NOT NULL REFERENCES packages(id),
    tag        TEXT NOT NULL,
    version    TEXT NOT NULL,
    PRIMARY KEY (package_id, tag)
);

CREATE TABLE maintainers (
    package_id INTEGER NOT NULL REFERENCES packages(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (package_id, user_id)
);

CREATE TABLE scope_owners (
    scope             TEXT NOT NULL,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    assigned_by_admin INTEGER NOT NULL,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (scope, user_id)
);

-- Append-only record of every package change, written in the same transaction as the change.
CREATE TABLE package_events (
    id         INTEGER PRIMARY KEY,
    package_id INTEGER NOT NULL REFERENCES packages(id),
    kind       TEXT NOT NULL,
    version    TEXT,
    actor_id   INTEGER REFERENCES users(id),
    at         TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX package_events_by_package ON package_events(package_id, id);
