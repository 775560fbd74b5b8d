-- The registry's signature of each live version (npm's `dist.signatures`, protocol §6): made
-- with the current signing key when the version goes live, over `name@version:integrity`.
-- NULL for versions that went live before the registry had a key; `airlock serve` signs those
-- at startup.
ALTER TABLE versions ADD COLUMN signature_keyid TEXT;
ALTER TABLE versions ADD COLUMN signature TEXT;
