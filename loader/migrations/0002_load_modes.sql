-- Migration 2: load modes. A symbol now has many live loads: an append holds only the lines
-- its file added, a merge supersedes the dates it holds and keeps the rest, a replace (asked for
-- with --replace) supersedes the symbol's whole earlier history. For each (symbol, date) the
-- newest live load wins (staging and raw.current_daily_prices apply that rule).

-- 'replaced' becomes 'superseded': a load whose every row a later load supersedes. Its rows
-- stay in raw for the retention period (auditable, and a mistaken --replace can be undone),
-- then the loader purges them. Staging never reads superseded loads.
alter table raw.load_log drop constraint if exists load_log_status_check;
update raw.load_log set status = 'superseded' where status = 'replaced';
alter table raw.load_log add constraint load_log_status_check
    check (status in ('loaded', 'superseded', 'rejected', 'failed'));

alter table raw.load_log
    add column load_mode text check (load_mode in ('append', 'merge', 'replace')),
    -- append: where in the file this load's lines start (the earlier load's size in bytes)
    add column append_offset_bytes bigint,
    add column superseded_by bigint references raw.load_log (load_id),
    add column superseded_at timestamptz,
    -- replace: the dates the symbol had before and the new file does not (null until counted,
    -- at the end of the loader's run)
    -- merge: set once the end of a run has checked which earlier loads this one covers
    add column coverage_checked_at timestamptz,
    add column rows_removed bigint,
    add column removed_first_date text,
    add column removed_last_date text;

-- Loads of release 0.1 replaced their symbol's history.
update raw.load_log set load_mode = 'replace' where load_mode is null and file_kind = 'prices';
update raw.load_log set load_mode = 'merge' where load_mode is null;
update raw.load_log set superseded_at = coalesce(finished_at, started_at) where status = 'superseded';

-- The rows of one load, found without an index that COPY would have to keep up: rows arrive
-- in load order, so a BRIN index of a few pages covers 25 M rows. The loader summarizes new
-- pages at the end of each run.
create index if not exists daily_prices_load_id_brin on raw.daily_prices using brin (load_id)
    with (autosummarize = on);
create index if not exists load_log_live_idx on raw.load_log (source_key, load_id desc)
    where status = 'loaded';

-- For people and ad-hoc queries: per symbol and date, the row of the newest live load, with
-- its symbol and file. Dates are compared as written (staging parses them).
create or replace view raw.current_daily_prices as
select distinct on (load_log.symbol, trim(daily_prices.date))
       load_log.symbol, load_log.asset_type, load_log.file_path, daily_prices.line_number,
       daily_prices.date, daily_prices.open, daily_prices.high, daily_prices.low, daily_prices.close,
       daily_prices.adj_close, daily_prices.volume, daily_prices.load_id
  from raw.daily_prices
  join raw.load_log on load_log.load_id = daily_prices.load_id
 where load_log.status = 'loaded'
 order by load_log.symbol, trim(daily_prices.date), daily_prices.load_id desc, daily_prices.line_number desc;
