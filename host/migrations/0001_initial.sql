-- The system of record. Written in the SQL that SQLite and PostgreSQL share (TEXT, BIGINT,
-- no autoincrement, no BLOBs): documents live in the object store, rows hold pointers to them.
-- Times are microseconds since the Unix epoch.

CREATE TABLE components (
    digest        TEXT PRIMARY KEY,   -- SHA-256 of the component bytes
    source        TEXT NOT NULL,      -- where it was first loaded from
    size_bytes    BIGINT NOT NULL,
    registered_at BIGINT NOT NULL
);

CREATE TABLE tasks (
    component_digest TEXT NOT NULL REFERENCES components (digest),
    name             TEXT NOT NULL,
    interface_hash   TEXT NOT NULL,
    spec_json        TEXT NOT NULL,   -- the TaskSpec as JSON (interface, cache, retry, limits)
    PRIMARY KEY (component_digest, name)
);

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,    -- 'r' + ULID: ordering by id is ordering by creation
    project          TEXT NOT NULL,
    domain           TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    task             TEXT NOT NULL,
    phase            TEXT NOT NULL,   -- running | succeeded | failed
    created_at       BIGINT NOT NULL,
    ended_at         BIGINT,
    error_kind       TEXT,
    error_text       TEXT
);
CREATE INDEX runs_by_scope ON runs (project, domain, id);

CREATE TABLE actions (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    id          TEXT NOT NULL,
    parent_id   TEXT,                 -- the calling action; NULL for the run's root
    task        TEXT NOT NULL,
    phase       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    inputs_uri  TEXT,
    outputs_uri TEXT,                 -- the accepted attempt's outputs
    error_kind  TEXT,
    error_text  TEXT,
    PRIMARY KEY (run_id, id)
);

CREATE TABLE attempts (
    run_id         TEXT NOT NULL,
    action_id      TEXT NOT NULL,
    attempt        BIGINT NOT NULL,   -- 1, 2, ... each with its own object prefix
    phase          TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT,
    inputs_uri     TEXT,
    outputs_uri    TEXT,
    log_uri        TEXT,
    error_kind     TEXT,              -- user | input | output | trap | deadline | memory | ...
    error_text     TEXT,
    instantiate_us BIGINT,
    call_us        BIGINT,
    PRIMARY KEY (run_id, action_id, attempt),
    FOREIGN KEY (run_id, action_id) REFERENCES actions (run_id, id)
);
