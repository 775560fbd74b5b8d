-- Two-factor authentication ------------------------------------------------------

-- One TOTP enrolment per user. `pending` until the user proves the secret with a code.
-- `last_step` is the newest TOTP step accepted, so a code cannot be used twice.
CREATE TABLE user_tfa (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     TEXT NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('auth-only', 'auth-and-writes')),
    pending    INTEGER NOT NULL,
    last_step  INTEGER,
    created_at TEXT NOT NULL
);

-- SHA-256 of each recovery code; a used code is deleted.
CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash    TEXT NOT NULL,
    PRIMARY KEY (user_id, hash)
);

-- npm's web OTP: the page at `otp_id` takes a code; the CLI polls with the secret behind
-- `done_hash` and gets a one-time token (stored as `token_hash`) to send as `npm-otp`.
CREATE TABLE web_otps (
    otp_id      TEXT PRIMARY KEY,
    done_hash   TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    verified    INTEGER NOT NULL DEFAULT 0,
    token_hash  TEXT UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
