-- Migration 1: the raw layer as release 0.1 created it (loader/schema.sql then), unchanged, so
-- that a database made by that release counts as at version 1. Idempotent.
-- Values are kept as text, exactly as they came; the dbt staging models cast them.

create table if not exists raw.load_log (
    load_id         bigint generated always as identity primary key,
    source_key      text        not null,  -- what a later load replaces: 'prices/<symbol>' or 'symbols_meta'
    file_path       text        not null,
    file_kind       text        not null check (file_kind in ('prices', 'symbols')),
    symbol          text,
    asset_type      text check (asset_type in ('stock', 'etf')),  -- from the folder; null: use metadata
    content_hash    text,         -- XXH3-128 of the file's bytes, hex
    file_size_bytes bigint,
    status          text        not null check (status in ('loaded', 'replaced', 'rejected', 'failed')),
    rows_read       bigint      not null default 0,
    rows_loaded     bigint      not null default 0,
    rows_rejected   bigint      not null default 0,
    blank_lines     bigint      not null default 0,
    started_at      timestamptz not null,
    finished_at     timestamptz,
    purged_at       timestamptz,  -- when a replaced load's raw rows were deleted
    error           text,
    check (status <> 'loaded' or rows_read = rows_loaded + rows_rejected)
);
create index if not exists load_log_source_key_idx on raw.load_log (source_key, load_id desc);

-- The symbol and file of a row are its load's (raw.load_log), not repeated on 25 M rows.
create table if not exists raw.daily_prices (
    load_id     bigint  not null,
    line_number integer not null,
    date        text,
    open        text,
    high        text,
    low         text,
    close       text,
    adj_close   text,
    volume      text
);
-- No index: COPY runs at the speed of a bare table. Nothing reads a single load's rows but
-- the purge of replaced loads, which deletes them all in one pass at the end of a run.

create table if not exists raw.symbols_meta (
    load_id          bigint  not null,
    line_number      integer not null,
    nasdaq_traded    text,
    symbol           text,
    security_name    text,
    listing_exchange text,
    market_category  text,
    etf              text,
    round_lot_size   text,
    test_issue       text,
    financial_status text,
    cqs_symbol       text,
    nasdaq_symbol    text,
    next_shares      text
);

create table if not exists raw.load_rejects (
    load_id     bigint  not null,
    line_number integer not null,
    raw_line    text    not null,
    reason_code text    not null,
    reason      text    not null
);
create index if not exists load_rejects_load_id_idx on raw.load_rejects (load_id);

-- For people and ad-hoc queries: the rows of each symbol's current load, with symbol and file.
create or replace view raw.current_daily_prices as
select load_log.symbol, load_log.asset_type, load_log.file_path, daily_prices.line_number,
       daily_prices.date, daily_prices.open, daily_prices.high, daily_prices.low, daily_prices.close,
       daily_prices.adj_close, daily_prices.volume, daily_prices.load_id
  from raw.daily_prices
  join raw.load_log on load_log.load_id = daily_prices.load_id
 where load_log.status = 'loaded';
