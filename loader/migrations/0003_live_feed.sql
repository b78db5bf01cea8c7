-- Migration 3: the live feed (stream/consume.py). Each micro-batch the consumer commits is one
-- load in raw.load_log (file_kind 'feed', source_key 'feed/<stream>', load_mode null): its bars
-- sit in raw.feed_bars, carrying their symbol (a batch holds many symbols). Per (symbol, date)
-- the newest live load wins, a file's or the feed's alike (staging's one rule): when a file and
-- the feed disagree on a day, the later one wins. A file --replace supersedes the feed's
-- earlier bars of that symbol as it does the symbol's earlier files.

alter table raw.load_log drop constraint if exists load_log_file_kind_check;
alter table raw.load_log add constraint load_log_file_kind_check
    check (file_kind in ('prices', 'symbols', 'feed'));

-- The bars a feed load wrote: per (symbol, date) only a revision higher than any the warehouse
-- took before (raw.feed_revisions), values as text exactly as they came (staging types them,
-- with the same rules and rejection reasons as file rows).
create table if not exists raw.feed_bars (
    load_id         bigint  not null,
    stream_sequence bigint  not null,
    symbol          text    not null,
    revision        integer not null,
    date            text    not null,
    open            text,
    high            text,
    low             text,
    close           text,
    adj_close       text,
    volume          text
);
-- Staging reads a batch's bars by load, and a symbol's bars when it recomputes that symbol.
create index if not exists feed_bars_load_id_idx on raw.feed_bars (load_id);
create index if not exists feed_bars_symbol_idx on raw.feed_bars (symbol, load_id);

-- The ledger that makes the feed exactly-once: every stream message the warehouse has taken,
-- committed in the same transaction as the bars. A redelivered or re-sent message already
-- here is acknowledged and skipped. outcome: 'applied' (its bar is in raw.feed_bars), 'stale'
-- (a revision not higher than one taken before: a duplicate, a late re-send, an out-of-order
-- revision), 'rejected' (the reason is in raw.load_rejects; line_number = the message's
-- position in its batch, and the reason names its sequence).
-- stream: the stream's name and creation time (`BARS@2026-11-22T10:41:31+00:00`): sequences
-- restart at 1 when a stream is created again, so they name a message only with it.
create table if not exists raw.feed_messages (
    stream          text        not null,
    stream_sequence bigint      not null,
    load_id         bigint      not null,
    outcome         text        not null check (outcome in ('applied', 'stale', 'rejected')),
    symbol          text,
    trade_date      date,
    revision        integer,
    published_at    timestamptz,
    primary key (stream, stream_sequence)
);
-- Which messages a load took (a reject's load and line lead back to its sequence).
create index if not exists feed_messages_load_id_idx on raw.feed_messages (load_id);

-- Per (symbol, date), the highest revision the feed delivered: a message is applied only when
-- its revision is higher, so the highest wins whatever the order of arrival.
create table if not exists raw.feed_revisions (
    symbol     text    not null,
    trade_date date    not null,
    revision   integer not null,
    load_id    bigint  not null,
    primary key (symbol, trade_date)
);
