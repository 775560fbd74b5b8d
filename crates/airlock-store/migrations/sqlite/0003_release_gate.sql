-- The release gate ---------------------------------------------------------------

-- Policy layers: `registry`, `@scope` or a package name -> a JSON patch over the defaults.
CREATE TABLE release_policies (
    subject    TEXT PRIMARY KEY,
    patch      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by INTEGER REFERENCES users(id)
);

-- A staged release. Its version number is taken the moment it is staged (unique with
-- `versions`, checked in both directions inside the writing transactions), and stays taken
-- whatever becomes of the stage. `state` is the gate's serialized ReleaseState; `seq` guards
-- updates; `due_at` is when the background job must look at it next (expiry or promotion).
CREATE TABLE stages (
    id            TEXT PRIMARY KEY,
    package_id    INTEGER NOT NULL REFERENCES packages(id),
    version       TEXT NOT NULL,
    tag           TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    integrity     TEXT NOT NULL,
    shasum        TEXT NOT NULL,
    sha512_hex    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    file_count    INTEGER NOT NULL,
    unpacked_size INTEGER NOT NULL,
    stager_id     INTEGER NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL,
    state_kind    TEXT NOT NULL,
    state         TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    due_at        TEXT,
    UNIQUE (package_id, version)
);
CREATE INDEX stages_due ON stages(due_at) WHERE due_at IS NOT NULL;

-- Append-only: every gate event (staged, approved with its factor, rejected, expired,
-- promoted, policy changed) with actor, time and tarball digest.
CREATE TABLE gate_events (
    id         INTEGER PRIMARY KEY,
    stage_id   TEXT REFERENCES stages(id),
    subject    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   INTEGER REFERENCES users(id),
    actor_name TEXT,
    at         TEXT NOT NULL,
    sha512_hex TEXT,
    factor     TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX gate_events_by_stage ON gate_events(stage_id, id);
