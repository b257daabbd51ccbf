-- The process running a run (`<hostname>:<boot id>:<pid>:<start time>`, see
-- host/src/records/liveness.rs): set when the run is created and when it is resumed, so another
-- process can tell a run whose host stopped from a live one, and `--resume` refuses a live one.
ALTER TABLE runs ADD COLUMN host TEXT;
