-- Provenance: the Sigstore bundle a version was published or staged with (npm's
-- `NAME-VERSION.sigstore` attachment), kept as sent so it can be served at
-- `/-/npm/v1/attestations/NAME@VERSION` and verified again by anyone, plus what the registry
-- established when it verified it (`summary`, JSON: repository, workflow, ids, log time).
--
-- Keyed by package and version, not by the versions row: a staged version has its row here
-- from the moment it is staged (version numbers are never reused, staged or published), so
-- promotion carries it without a copy. It is only served while the version is live.
CREATE TABLE provenance (
    package_id     INTEGER NOT NULL REFERENCES packages(id),
    version        TEXT NOT NULL,
    predicate_type TEXT NOT NULL,
    bundle         TEXT NOT NULL,
    summary        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (package_id, version)
);
