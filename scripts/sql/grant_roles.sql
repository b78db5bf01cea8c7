-- Per-database privileges of the component roles (scripts/sql/create_roles.sql makes them).
-- Run as the database owner, a member of every component role, in the database itself:
-- scripts/db.sh does it on `make db-up`, the tests on every throwaway database. Idempotent,
-- and it also moves the objects of a database built before the roles existed to their owners.
--
--   loader       owns raw (PostgreSQL 15: ANALYZE and ALTER TABLE need the owner)
--   transformer  owns the dbt schemas; reads raw; may create schemas (dbt creates its own)
--   reader       reads the marts schema, nothing else, and cannot create anything
--   streamer     writes raw rows like the loader (no DDL), and later executes the incremental
--                step's functions, which the transformer owns (EXECUTE granted per function)
set client_min_messages = warning;

do $grants$
declare
    db text := current_database();
    dbt_schema text;
    obj record;
begin
    -- Nobody but the owner and the component roles connects; only writers get temp tables.
    execute format('revoke all on database %I from public', db);
    execute format('grant connect on database %I to loader, transformer, reader, streamer', db);
    execute format('grant temporary on database %I to loader, transformer, streamer', db);
    execute format('grant create on database %I to transformer', db);
    revoke create on schema public from public;

    -- Schemas and what is already in them go to their owners.
    create schema if not exists raw authorization loader;
    alter schema raw owner to loader;
    foreach dbt_schema in array array['staging', 'intermediate', 'marts', 'seeds', 'audit'] loop
        execute format('create schema if not exists %I authorization transformer', dbt_schema);
        execute format('alter schema %I owner to transformer', dbt_schema);
    end loop;
    for obj in
        select n.nspname, c.relname, c.relkind,
               case when n.nspname = 'raw' then 'loader' else 'transformer' end as new_owner
          from pg_class c
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'seeds', 'audit')
           and c.relkind in ('r', 'p', 'v', 'm')
           and pg_get_userbyid(c.relowner) <> case when n.nspname = 'raw' then 'loader' else 'transformer' end
    loop
        begin
            execute format(
                'alter %s %I.%I owner to %I',
                case obj.relkind when 'v' then 'view' when 'm' then 'materialized view' else 'table' end,
                obj.nspname, obj.relname, obj.new_owner
            );
        exception when insufficient_privilege then
            -- A hypertable's chunks live in TimescaleDB's own schema, where only a superuser
            -- may re-own them. What dbt built is derived from raw: the next `dbt build`
            -- builds it again, as the transformer. (raw holds no hypertable.)
            if obj.nspname = 'raw' then
                raise;
            end if;
            raise notice 'dropped %.% (only a superuser can re-own it); dbt build rebuilds it',
                obj.nspname, obj.relname;
            execute format('drop %s if exists %I.%I cascade',
                case obj.relkind when 'v' then 'view' when 'm' then 'materialized view' else 'table' end,
                obj.nspname, obj.relname);
        end;
    end loop;
    for obj in
        select p.oid::regprocedure as signature,
               case when n.nspname = 'raw' then 'loader' else 'transformer' end as new_owner
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('raw', 'staging', 'intermediate', 'marts')
    loop
        execute format('alter routine %s owner to %I', obj.signature, obj.new_owner);
    end loop;
end
$grants$;

-- raw: the transformer reads it; the streamer writes rows into it (no DDL, no delete).
grant usage on schema raw to transformer, streamer;
grant select on all tables in schema raw to transformer;
grant select, insert, update on all tables in schema raw to streamer;
grant usage, select on all sequences in schema raw to streamer;
alter default privileges for role loader in schema raw grant select on tables to transformer;
alter default privileges for role loader in schema raw grant select, insert, update on tables to streamer;
alter default privileges for role loader in schema raw grant usage, select on sequences to streamer;

-- marts: the reader reads every relation, including the ones dbt builds later. The views run
-- with their owner's (the transformer's) rights, so the reader needs no grant on staging.
grant usage on schema marts to reader;
grant select on all tables in schema marts to reader;
alter default privileges for role transformer in schema marts grant select on tables to reader;

-- Functions the transformer creates are not executable by everyone (PostgreSQL's default):
-- the streamer gets EXECUTE on the incremental step by name, nobody else.
alter default privileges for role transformer revoke execute on functions from public;
grant usage on schema staging, intermediate, marts to streamer;
