-- When the host running a run last reported that it still does (microseconds since the epoch;
-- see host/src/records/heartbeat.rs): set when the run is created or resumed and every few
-- seconds while it runs, so a process on another machine can tell a stopped run from a live
-- one. NULL in rows written before heartbeats: such a run is never taken for stopped.
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT;
