-- price_series 1.0 -> 1.1 (README.md states the contract). No SQL object changes: the library's
-- trading_days takes a resume_state that carries the windows, and replays stored days that
-- begin on a symbol's first. The version is how the project's on-run-start knows the library
-- installed is one that does (a 1.0 library would resume a young listing from an incomplete
-- state).
\echo Use "ALTER EXTENSION price_series UPDATE" to load this file. \quit
