-- Migration 5: the transaction that logged each load (writer_xid), and indexes to find the
-- loads a passing test has not seen: the raw layer's tests read only the rows of loads logged
-- since their last passing run started, or by transactions its snapshot did not see
-- (docs/data_quality.md). A load logged before this migration counts as written by it: each
-- such test reads those rows once more.
alter table raw.load_log add column if not exists writer_xid xid8 not null default pg_current_xact_id();
create index if not exists load_log_started_at_idx on raw.load_log (started_at);
create index if not exists load_log_writer_xid_idx on raw.load_log (writer_xid);
