-- The project's login roles, one per component, each with only what its job needs.
-- Cluster-wide; run once per server by a role with CREATEROLE (scripts/db.sh does it on the
-- project cluster). psql variables: owner (the admin role that owns the database: it becomes a
-- member of every component role, so it can hand schemas to them and act for them), and
-- loader_pw, transformer_pw, reader_pw, streamer_pw. Idempotent: re-running sets the passwords.
\set ON_ERROR_STOP 1
set client_min_messages = warning;

select format('create role %I login', role_name)
  from unnest(array['loader', 'transformer', 'reader', 'streamer']) as role_name
 where not exists (select from pg_roles where rolname = role_name) \gexec

alter role loader      login password :'loader_pw';
alter role transformer login password :'transformer_pw';
alter role reader      login password :'reader_pw';
alter role streamer    login password :'streamer_pw';

-- A reader's session cannot write even where a grant slips through.
alter role reader set default_transaction_read_only = on;
-- dbt's queries are large generated expressions (the parse rules): JIT compiling them takes
-- seconds to tens of seconds, far more than it saves on a daily build's few thousand rows.
alter role transformer set jit = off;

grant loader, transformer, reader, streamer to :"owner";
