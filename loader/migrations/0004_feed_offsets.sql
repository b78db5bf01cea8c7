-- Migration 4: the Kafka consumer group's offsets, kept by the warehouse (stream/consume.py
-- --broker kafka). Per topic incarnation and partition, the offset of the next message to take:
-- written in the same transaction as the batch's bars and ledger rows, so what the warehouse
-- holds and where each partition resumes cannot disagree. Kafka's own committed offsets are a
-- hint for monitoring tools only.
--
-- The fence: a consumer writes a batch of a partition only while the row still holds the offset
-- it started that batch from (`update ... where next_offset = <its start>`); a consumer that lost
-- the partition in a rebalance, and whose successor has written since, finds the row moved and
-- commits nothing. Concurrent writers of one partition queue on the row's lock, and the second
-- sees the first's offset.
-- topic: the topic's name and id (`bars@<uuid>`): a topic created again counts from 0.
create table if not exists raw.feed_offsets (
    topic       text        not null,
    partition   integer     not null check (partition >= 0),
    next_offset bigint      not null check (next_offset >= 0),
    updated_by  text,
    updated_at  timestamptz not null default clock_timestamp(),
    primary key (topic, partition)
);
