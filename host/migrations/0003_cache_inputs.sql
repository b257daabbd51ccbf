-- A cache hit with the same inputs document as the entry's run points at that document instead
-- of writing a copy (no new objects for a hit).
ALTER TABLE cache_entries ADD COLUMN inputs_uri TEXT;
ALTER TABLE cache_entries ADD COLUMN inputs_sha256 TEXT;
