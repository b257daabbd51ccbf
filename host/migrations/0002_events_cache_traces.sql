-- Issue 4: the event log, the cache, trace checkpoints, and what resume and gc need.

ALTER TABLE components ADD COLUMN environment TEXT;  -- the environment's name (task names are <environment>.<task>)

ALTER TABLE runs ADD COLUMN raw_data_path TEXT;      -- the run's raw-data store URL when not the default
ALTER TABLE runs ADD COLUMN purged_at BIGINT;        -- when gc removed the run's objects

ALTER TABLE actions ADD COLUMN cache_key TEXT;       -- NULL when the task's cache is disabled
ALTER TABLE actions ADD COLUMN cache_status TEXT;    -- disabled | hit | miss | overwrite

-- Append-only: one row per thing that happened to a run. Ids sort in the order rows were
-- written (microseconds, then a per-process counter).
CREATE TABLE events (
    run_id    TEXT NOT NULL,
    id        TEXT NOT NULL,
    action_id TEXT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,   -- created | started | cache-hit | cache-miss | trace-recorded | trace-replayed | retry-scheduled | attempt-lost | succeeded | failed
    detail    TEXT,
    PRIMARY KEY (run_id, id)
);

-- One entry per (key, scope): the accepted outputs of the action that produced it.
CREATE TABLE cache_entries (
    cache_key        TEXT NOT NULL,   -- see executor/cache.rs for the recipe
    scope            TEXT NOT NULL,   -- 'global' or '<project>/<domain>'
    task             TEXT NOT NULL,   -- <environment>.<task>
    component_digest TEXT NOT NULL,
    outputs_uri      TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    action_id        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (cache_key, scope)
);
CREATE INDEX cache_entries_by_run ON cache_entries (run_id);

-- Serialized caching: the one execution running for a key; others wait for its entry.
CREATE TABLE cache_reservations (
    cache_key  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    owner      TEXT NOT NULL,     -- the run that holds it
    expires_at BIGINT NOT NULL,   -- a holder that died is replaced after this
    PRIMARY KEY (cache_key, scope)
);

-- Checkpoints of traced calls inside an action, replayed by its later attempts.
CREATE TABLE traces (
    run_id     TEXT NOT NULL,
    action_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    args_hash  TEXT NOT NULL,     -- SHA-256 of the arguments' MessagePack
    attempt    BIGINT NOT NULL,   -- the attempt that recorded it
    uri        TEXT NOT NULL,     -- the recorded items, a MessagePack array of binaries
    items      BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, action_id, name, args_hash)
);
