{#- The price guard: staging's incremental step judges the bars it is about to apply against
    the history already accepted, and holds back the symbols whose new bars a broken source
    would explain better than the market (docs/data_quality.md "The price guard").

    Three findings, each a run of sessions:
    - zero_volume: a bar with volume 0;
    - repeated_close: a bar whose close equals the bar before (a close repeated k times is a
      run of k);
    - missed_session: an NYSE session with no bar between two bars of the symbol (a gap of g
      sessions is a run of g).

    Two stated tests, one false-alarm rate (var price_guard_false_alarm_rate, default 1e-6):
    Each run and session is judged against the history before it: the accepted bars and the
    pass's own earlier bars, so a verdict does not depend on how the bars were batched.
    - one symbol, over a run: a run reaching into the new bars is longer than any in its
      history and improbable by that history (Laplace's rule of succession for the
      start and continuation rates; a run going on from bars a person or a full build
      accepted is judged on its new bars by its own persistence, one the guard alone let in is
      judged whole). A clean history gives rates of about 1/n, never 0, so one finding is
      never an error.
    - one session, across symbols: the share of the session's new bars with the finding is
      above the highest smoothed share ((x + 1) / (m + 2)) of the 20 sessions before it,
      and the Chernoff bound of a binomial tail that far above it is below the rate.
    A symbol without accepted bars is a first build: its findings warn (dbt tests), and its
    bars become its accepted history.

    The accepted history is kept incrementally by the pass that applies the bars: finding
    counts and runs per symbol and load (the baseline), and per session across symbols. -#}

{% macro price_guard_findings() -%}
    {{ return([
        {'name': 'zero_volume', 'label': 'volume 0', 'unit': 'bars'},
        {'name': 'repeated_close', 'label': 'the close repeated', 'unit': 'bars'},
        {'name': 'missed_session', 'label': 'sessions missing', 'unit': 'sessions'},
    ]) }}
{%- endmacro %}

{% macro price_guard_relation(name) -%}
    {{ return(api.Relation.create(database=target.database, schema='staging',
                                  identifier='stg_market_data__' ~ name, type='table')) }}
{%- endmacro %}

{#- The tables the guard keeps (created once, owned by the transformer):
    - quality_baseline: per (symbol, load), what the load's accepted bars brought: bars and
      sessions, and per finding its count, the runs that started in them and the longest run
      that reached into them;
    - quality_sessions: per session, the accepted bars across symbols and how many had each
      finding (each (symbol, session) counted once, as first accepted);
    - held_prices: the (load, symbol) pairs held back, with the finding and the reason;
      accepted_at when a person accepted them, applied_at once a build applied them. -#}
{% macro create_price_guard_tables(relation) -%}
    create table if not exists {{ stock_analytics.price_guard_relation('quality_baseline') }} (
        symbol text not null,
        load_id bigint not null,
        applied_at timestamptz not null,
        bars bigint not null,
        sessions bigint not null,
        -- accepted by a person or a full build, not only by the guard's own judgment
        vouched boolean not null,
        {%- for finding in stock_analytics.price_guard_findings() %}
        {{ finding.name }}_count bigint not null,
        {{ finding.name }}_runs bigint not null,
        {{ finding.name }}_longest_run integer not null,
        {%- endfor %}
        -- the dates of those bars: a symbol's loads together span every date it has stored
        first_date date not null,
        last_date date not null,
        primary key (symbol, load_id)
    );
    {{ stock_analytics.add_baseline_date_range(relation) }}
    create table if not exists {{ stock_analytics.price_guard_relation('quality_sessions') }} (
        trade_date date primary key,
        symbols bigint not null,
        {%- for finding in stock_analytics.price_guard_findings() %}
        {{ finding.name }}_symbols bigint not null{{ ',' if not loop.last }}
        {%- endfor %}
    );
    create table if not exists {{ stock_analytics.price_guard_relation('held_prices') }} (
        load_id bigint not null,
        symbol text not null,
        finding text not null,
        reason text not null,
        first_date date,
        last_date date,
        held_at timestamptz not null default now(),
        accepted_at timestamptz,
        applied_at timestamptz,
        primary key (load_id, symbol)
    );
    {{ timescale_incremental.create_index_if_missing(
        'stg_market_data__held_prices_symbol_idx',
        stock_analytics.price_guard_relation('held_prices'),
        '(symbol) where applied_at is null'
    ) }}
{%- endmacro %}

{#- A baseline kept by a release before it had the dates: each of a symbol's rows takes the
    symbol's range stored in `relation` (an empty one when nothing is stored), once. The
    columns are looked up in the catalog first: an ALTER at every build would lock the table
    against the live feed's steps. -#}
{% macro add_baseline_date_range(relation) -%}
    {%- set baseline = stock_analytics.price_guard_relation('quality_baseline') -%}
    do $upgrade$
    begin
        if not exists (
            select from pg_catalog.pg_attribute
            where attrelid = '{{ baseline }}'::regclass and attname = 'first_date' and not attisdropped
        ) then
            alter table {{ baseline }} add column first_date date, add column last_date date;
            update {{ baseline }} as baseline
            set first_date = coalesce(stored.first_date, 'infinity'),
                last_date = coalesce(stored.last_date, '-infinity')
            from (
                select symbols.symbol, ranges.first_date, ranges.last_date
                from (select distinct symbol from {{ baseline }}) as symbols
                cross join lateral (
                    select min(trade_date) as first_date, max(trade_date) as last_date
                    from {{ relation }} as stored
                    where stored.symbol = symbols.symbol
                ) as ranges
            ) as stored
            where baseline.symbol = stored.symbol;
            alter table {{ baseline }} alter column first_date set not null, alter column last_date set not null;
        end if;
    end
    $upgrade$;
{%- endmacro %}

{#- A hold still in force: nobody accepted it and its load is live (a corrected file loaded
    with --replace supersedes the held load, and with it the hold). -#}
{% macro is_open_hold(holding) -%}
    ({{ holding }}.accepted_at is null and exists (
        select from raw.load_log as held_load
        where held_load.load_id = {{ holding }}.load_id and {{ stock_analytics.is_live_load('held_load') }}
    ))
{%- endmacro %}

{#- One expression per finding, as `case <finding_column> when '<finding>' then ... end`; the
    template names {name}, {label}, {unit_column} (bars or sessions) and {flag} (' > 0' for
    missed sessions, a count, so that `<flagged column>{flag}` is a boolean). -#}
{% macro per_finding(finding_column, template) -%}
    case {{ finding_column }}
    {%- for finding in stock_analytics.price_guard_findings() %}
        when '{{ finding.name }}' then {{ template.format(
            name=finding.name, label=finding.label,
            unit_column='sessions' if finding.unit == 'sessions' else 'bars',
            flag=' > 0' if finding.name == 'missed_session' else '') }}
    {%- endfor %}
    end
{%- endmacro %}

{#- ln(1 / false-alarm rate), the bar both tests must clear. -#}
{% macro price_guard_threshold() -%}
    {%- set rate = var('price_guard_false_alarm_rate', 1e-6) -%}
    {%- if rate is not number or rate <= 0 or rate >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var price_guard_false_alarm_rate must be a probability between 0 and 1, got " ~ rate) }}
    {%- endif -%}
    {{ return('ln(1.0 / ' ~ rate ~ ')') }}
{%- endmacro %}

{#- Per calendar day, the NYSE sessions before it and up to it (seed nyse_trading_sessions),
    so the sessions missed between two bars are one subtraction: pg_temp.price_guard_calendar,
    a temporary table of the session (about 24,000 days). It is built again only when the
    seed's content is not what it was built from (a hash of its dates, a few ms): a live
    feed's steps no longer build it every time (about 0.1 s each). -#}
{% macro create_session_ordinals(sessions) -%}
    if to_regclass({{ timescale_incremental.relation_name_literal(sessions) }}) is null then
        raise exception 'the NYSE calendar seed {{ sessions.include(database=false) }} is missing: run dbt seed (dbt build seeds first)';
    end if;
    if to_regclass('pg_temp.price_guard_calendar') is null then
        create temporary table pg_temp.price_guard_calendar (
            day date primary key,
            sessions_before integer not null,
            sessions_through integer not null
        );
        create temporary table pg_temp.price_guard_calendar_source (seed_hash text not null);
    end if;
    declare
        v_seed_hash text := (
            select md5(array_agg(sessions.session_date order by sessions.session_date)::text)
            from {{ sessions }} as sessions
        );
    begin
        if not exists (
            select from pg_temp.price_guard_calendar_source as source
            where source.seed_hash = v_seed_hash
        ) then
            truncate pg_temp.price_guard_calendar, pg_temp.price_guard_calendar_source;
            insert into pg_temp.price_guard_calendar (day, sessions_before, sessions_through)
            select
                days.day,
                count(sessions.session_date) over (order by days.day) - (sessions.session_date is not null)::integer,
                count(sessions.session_date) over (order by days.day)
            from generate_series(
                (select min(session_date) from {{ sessions }}),
                (select max(session_date) from {{ sessions }}),
                interval '1 day'
            ) as days (day)
            left join {{ sessions }} as sessions on sessions.session_date = days.day;
            insert into pg_temp.price_guard_calendar_source (seed_hash) values (v_seed_hash);
            {{ timescale_incremental.analyze_in_routine('pg_temp.price_guard_calendar') }}
        end if;
    end;
{%- endmacro %}

{#- Each bar of `bars` (symbol, trade_date, close, volume and any other columns) with its
    findings and the run each belongs to, in CTEs ending in `finding_runs`:
    zero_volume, repeated_close (booleans), missed_session (sessions missed before the bar, 0
    outside the calendar), and <finding>_run: bars of one symbol with the same number and the
    finding form one run. -#}
{% macro price_finding_runs(bars) -%}
finding_days as (

    select
        bars.*,
        coalesce(bars.volume = 0, false) as zero_volume,
        coalesce(bars.close = lag(bars.close) over by_date, false) as repeated_close,
        greatest(coalesce(calendar.sessions_before - lag(calendar.sessions_through) over by_date, 0), 0)
            as missed_session
    from {{ bars }} as bars
    left join pg_temp.price_guard_calendar as calendar on bars.trade_date = calendar.day
    window by_date as (partition by bars.symbol order by bars.trade_date)

),

finding_runs as (

    select
        *,
        count(*) filter (where not zero_volume) over running as zero_volume_run,
        count(*) filter (where not repeated_close) over running as repeated_close_run,
        -- a gap is a run of its own
        row_number() over running as missed_session_run
    from finding_days
    window running as (partition by symbol order by trade_date rows unbounded preceding)

)
{%- endmacro %}

{#- The runs in `finding_runs`, one row per (symbol, finding, run): its length, dates, the
    load of its last bar, whether it holds a bar of this pass (is_new) and starts in one. -#}
{% macro price_runs_of(finding_runs, with_new=false) -%}
    {%- for finding in stock_analytics.price_guard_findings() %}
    select
        symbol,
        '{{ finding.name }}' as finding,
        {%- if finding.name == 'missed_session' %}
        max(missed_session) as run_length,
        {%- else %}
        count(*) as run_length,
        {%- endif %}
        min(trade_date) as first_date,
        max(trade_date) as last_date,
        (array_agg(load_id order by trade_date desc))[1] as load_id,
        {%- if with_new %}
        bool_or(is_new) as touches_new,
        (array_agg(is_new order by trade_date))[1] as starts_new,
        (array_agg(vouched order by trade_date))[1] as vouched_start,
        count(*) filter (where not is_new) as accepted_length,
        {%- if finding.name == 'missed_session' %}
        max(missed_session) filter (where is_new) as new_length
        {%- else %}
        count(*) filter (where is_new) as new_length
        {%- endif %}
        {%- else %}
        true as touches_new,
        true as starts_new,
        true as vouched_start,
        0 as accepted_length,
        {%- if finding.name == 'missed_session' %}
        max(missed_session) as new_length
        {%- else %}
        count(*) as new_length
        {%- endif %}
        {%- endif %}
    from {{ finding_runs }}
    {%- if finding.name == 'missed_session' %}
    where missed_session > 0
    {%- else %}
    where {{ finding.name }}
    {%- endif %}
    group by symbol, {{ finding.name }}_run
    {{ 'union all' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- Baseline rows (symbol, load_id, bars, sessions, per finding count / runs / longest run)
    from `finding_runs` and its runs; with_new: of the pass's new bars only. -#}
{% macro price_baseline_rows(finding_runs, runs, with_new=false, vouched='true') -%}
    with

    counted as (

        select
            symbol,
            load_id,
            count(*) as bars,
            count(*) + sum(missed_session) as sessions,
            count(*) filter (where zero_volume) as zero_volume_count,
            count(*) filter (where repeated_close) as repeated_close_count,
            sum(missed_session) as missed_session_count,
            min(trade_date) as first_date,
            max(trade_date) as last_date
        from {{ finding_runs }}
        {%- if with_new %}
        where is_new
        {%- endif %}
        group by symbol, load_id

    ),

    run_stats as (

        select
            symbol,
            load_id,
            {%- for finding in stock_analytics.price_guard_findings() %}
            count(*) filter (where finding = '{{ finding.name }}' and starts_new) as {{ finding.name }}_runs,
            coalesce(max(run_length) filter (where finding = '{{ finding.name }}' and touches_new), 0)
                as {{ finding.name }}_longest_run{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ runs }}
        group by symbol, load_id

    )

    select
        counted.symbol,
        counted.load_id,
        now() as applied_at,
        counted.bars,
        counted.sessions,
        {{ vouched }} as vouched,
        {%- for finding in stock_analytics.price_guard_findings() %}
        counted.{{ finding.name }}_count,
        coalesce(run_stats.{{ finding.name }}_runs, 0) as {{ finding.name }}_runs,
        coalesce(run_stats.{{ finding.name }}_longest_run, 0) as {{ finding.name }}_longest_run,
        {%- endfor %}
        counted.first_date,
        counted.last_date
    from counted
    left join run_stats
        on counted.symbol = run_stats.symbol and counted.load_id = run_stats.load_id
{%- endmacro %}

{#- Statements of a full build: the baseline and the session counts from every stored bar
    (every bar is accepted, as in a first build). -#}
{% macro price_guard_rebuild(relation) -%}
    {%- set baseline = stock_analytics.price_guard_relation('quality_baseline') -%}
    {%- set sessions = stock_analytics.price_guard_relation('quality_sessions') -%}
    truncate {{ baseline }};
    truncate {{ sessions }};
    create temporary table pg_temp.price_guard_bars on commit drop as
    with
    {{ stock_analytics.price_finding_runs('(select symbol, trade_date, close, volume, load_id from ' ~ relation ~ ')') }}
    select * from finding_runs;
    create temporary table pg_temp.price_guard_runs on commit drop as
    {{ stock_analytics.price_runs_of('pg_temp.price_guard_bars') }};
    insert into {{ baseline }}
    {{ stock_analytics.price_baseline_rows('pg_temp.price_guard_bars', 'pg_temp.price_guard_runs') }};
    insert into {{ sessions }}
    select
        trade_date,
        count(*),
        {%- for finding in stock_analytics.price_guard_findings() %}
        count(*) filter (where {{ finding.name }}{{ ' > 0' if finding.name == 'missed_session' }}){{ ',' if not loop.last }}
        {%- endfor %}
    from pg_temp.price_guard_bars
    group by trade_date;
    drop table pg_temp.price_guard_runs;
    drop table pg_temp.price_guard_bars;
{%- endmacro %}

{#- Statements of an incremental pass, run on pg_temp.price_guard_staged (the bars the pass
    would write: symbol, trade_date, close, volume, load_id, was_stored, restated (stored with the
    same close and volume: no news to judge), stored_load_id) before they are
    written. They judge each symbol with accepted history (unless listed in v_unjudged), and
    leave the symbols to hold in pg_temp.price_guard_verdicts (symbol, finding, reason,
    first_date, last_date). The bars with their findings stay in pg_temp.price_guard_bars for
    price_guard_record. -#}
{% macro price_guard_judge(relation, threshold) -%}
    {%- set baseline = stock_analytics.price_guard_relation('quality_baseline') -%}
    {%- set sessions = stock_analytics.price_guard_relation('quality_sessions') -%}
    {%- set findings = stock_analytics.price_guard_findings() -%}
    create temporary table pg_temp.price_guard_history on commit drop as
    select
        baseline.symbol,
        sum(baseline.bars) as bars,
        sum(baseline.sessions) as sessions,
        {%- for finding in findings %}
        sum(baseline.{{ finding.name }}_count) as {{ finding.name }}_count,
        sum(baseline.{{ finding.name }}_runs) as {{ finding.name }}_runs,
        max(baseline.{{ finding.name }}_longest_run) as {{ finding.name }}_longest_run,
        {%- endfor %}
        min(baseline.first_date) as first_date,
        max(baseline.last_date) as last_date
    from {{ baseline }} as baseline
    where baseline.symbol in (select distinct symbol from pg_temp.price_guard_staged)
    group by baseline.symbol;

    -- The pass's bars with the stored bars around them: no accepted run is longer than the
    -- symbol's longest, so that many bars on each side hold every run the new bars reach. They
    -- are looked for within the symbol's stored dates (its baseline's, none for a new symbol),
    -- and a probe whose dates can hold none is not run (a condition on the outer row alone
    -- gates it): a short history no longer sends each probe through every chunk of staging.
    create temporary table pg_temp.price_guard_bars on commit drop as
    with

    changed as (

        select
            staged.symbol,
            min(staged.trade_date) as first_date,
            max(staged.trade_date) as last_date,
            1 + coalesce(greatest(
                {%- for finding in findings if finding.name != 'missed_session' %}
                history.{{ finding.name }}_longest_run{{ ',' if not loop.last }}
                {%- endfor %}
            ), 0) as context_bars,
            coalesce(history.first_date, 'infinity') as stored_from,
            coalesce(history.last_date, '-infinity') as stored_through
        from pg_temp.price_guard_staged as staged
        left join pg_temp.price_guard_history as history on staged.symbol = history.symbol
        where not (staged.symbol = any(v_recomputed))
        group by staged.symbol, history.symbol, history.first_date, history.last_date,
            {%- for finding in findings if finding.name != 'missed_session' %}
            history.{{ finding.name }}_longest_run{{ ',' if not loop.last }}
            {%- endfor %}

    ),

    -- Materialized: the apply routine turns nested loops off, and the planner then ran the
    -- baseline join below inside the loop over the symbols, reading the whole baseline (a row
    -- per symbol and load: it grows every day) once per symbol.
    stored_context as materialized (

        select around.*
        from changed
        cross join lateral (
            (
                select stored.symbol, stored.trade_date, stored.close, stored.volume, stored.load_id
                from {{ relation }} as stored
                where stored.symbol = changed.symbol
                    and stored.trade_date >= changed.stored_from and stored.trade_date < changed.first_date
                    -- of the outer row only: the probe is not run when nothing is stored before
                    and changed.stored_from < changed.first_date
                order by stored.trade_date desc
                limit changed.context_bars
            )
            union all
            (
                select stored.symbol, stored.trade_date, stored.close, stored.volume, stored.load_id
                from {{ relation }} as stored
                where stored.symbol = changed.symbol
                    and stored.trade_date between changed.first_date and changed.last_date
                    and stored.trade_date between changed.stored_from and changed.stored_through
                    -- a one-day pass's stored bar of that day is the one it replaces
                    and changed.first_date < changed.last_date
            )
            union all
            (
                select stored.symbol, stored.trade_date, stored.close, stored.volume, stored.load_id
                from {{ relation }} as stored
                where stored.symbol = changed.symbol
                    and stored.trade_date > changed.last_date and stored.trade_date <= changed.stored_through
                    and changed.last_date < changed.stored_through
                order by stored.trade_date
                limit changed.context_bars
            )
        ) as around
        where not exists (
            select from pg_temp.price_guard_staged as staged
            where staged.symbol = around.symbol and staged.trade_date = around.trade_date
        )

    ),

    sequence as (

        select
            staged.symbol, staged.trade_date, staged.close, staged.volume, staged.load_id,
            not staged.restated as is_new, staged.was_stored, coalesce(restated_from.vouched, false) as vouched
        from pg_temp.price_guard_staged as staged
        left join {{ baseline }} as restated_from
            on staged.restated and staged.symbol = restated_from.symbol and staged.stored_load_id = restated_from.load_id
        union all
        select stored_context.symbol, stored_context.trade_date, stored_context.close, stored_context.volume,
            stored_context.load_id, false, true, coalesce(baseline.vouched, false)
        from stored_context
        left join {{ baseline }} as baseline
            on stored_context.symbol = baseline.symbol and stored_context.load_id = baseline.load_id

    ),

    {{ stock_analytics.price_finding_runs('sequence') }}

    select * from finding_runs;

    create temporary table pg_temp.price_guard_runs on commit drop as
    {{ stock_analytics.price_runs_of('pg_temp.price_guard_bars', with_new=true) }};

    create temporary table pg_temp.price_guard_verdicts (
        symbol text not null,
        finding text not null,
        reason text not null,
        first_date date,
        last_date date
    ) on commit drop;

    -- One symbol over a run.
    insert into pg_temp.price_guard_verdicts (symbol, finding, reason, first_date, last_date)
    with

    -- A run is judged against the history up to its start: the accepted bars and the pass's
    -- own bars before it. So a verdict depends on the bars, not on how they were batched (a
    -- feed catching up applies years in one pass; a run in its last year is judged as it
    -- would be a day at a time).
    new_bars_before as (

        select
            bars.symbol,
            bars.trade_date,
            count(*) filter (where bars.is_new) over before as bars,
            count(*) filter (where bars.is_new) over before
            + coalesce(sum(bars.missed_session) filter (where bars.is_new) over before, 0) as sessions
        from pg_temp.price_guard_bars as bars
        window before as (
            partition by bars.symbol order by bars.trade_date rows between unbounded preceding and 1 preceding
        )

    ),

    new_runs as (

        select
            runs.symbol,
            runs.finding,
            runs.run_length,
            runs.starts_new,
            runs.vouched_start,
            runs.accepted_length,
            runs.new_length,
            runs.first_date,
            runs.last_date,
            coalesce(sum(runs.new_length) over before, 0) as earlier_count,
            count(*) filter (where runs.starts_new) over before as earlier_runs,
            coalesce(max(runs.run_length) over before, 0) as earlier_longest_run
        from pg_temp.price_guard_runs as runs
        where runs.touches_new and not (runs.symbol = any(v_unjudged))
        window before as (
            partition by runs.symbol, runs.finding order by runs.first_date
            rows between unbounded preceding and 1 preceding
        )

    ),

    judged as (

        select
            new_runs.symbol,
            new_runs.finding,
            new_runs.run_length,
            new_runs.starts_new,
            new_runs.vouched_start,
            new_runs.accepted_length,
            new_runs.new_length,
            new_runs.first_date,
            new_runs.last_date,
            history.bars + new_bars_before.bars as bars,
            {{ stock_analytics.per_finding('new_runs.finding', "history.{unit_column} + new_bars_before.{unit_column}") }}
                as opportunities,
            {{ stock_analytics.per_finding('new_runs.finding', "history.{name}_count") }} + new_runs.earlier_count
                as finding_count,
            {{ stock_analytics.per_finding('new_runs.finding', "history.{name}_runs") }} + new_runs.earlier_runs
                as run_count,
            greatest(
                {{ stock_analytics.per_finding('new_runs.finding', "history.{name}_longest_run") }},
                new_runs.earlier_longest_run
            ) as longest_run
        from new_runs
        inner join pg_temp.price_guard_history as history on new_runs.symbol = history.symbol
        inner join new_bars_before
            on new_runs.symbol = new_bars_before.symbol and new_runs.first_date = new_bars_before.trade_date
        where history.bars > 0

    ),

    scored as (

        select
            *,
            -- ln(chance of the run, by Laplace's rule of succession):
            -- - it starts in the new bars: a start, then (length - 1) continuations, at the
            --   symbol's accepted rates;
            -- - it goes on from bars a person or a full build accepted (vouched): only its
            --   new bars, at the run's own persistence (j bars so far: j / (j + m) to last m more);
            -- - it goes on from bars only the guard passed: the whole run, at the rates of the
            --   history without it (a run fed a day at a time is still judged whole).
            case
                when starts_new then
                    ln((run_count + 1.0) / (opportunities + 2.0))
                    + (run_length - 1) * ln((greatest(finding_count - run_count, 0) + 1.0) / (finding_count + 2.0))
                when vouched_start then
                    ln(accepted_length / cast(accepted_length + new_length as double precision))
                else
                    ln((greatest(run_count - 1, 0) + 1.0) / (greatest(opportunities - accepted_length, 0) + 2.0))
                    + (run_length - 1) * ln(
                        (greatest(finding_count - accepted_length - run_count + 1, 0) + 1.0)
                        / (greatest(finding_count - accepted_length, 0) + 2.0)
                    )
            end
                as log_chance
        from judged

    ),

    surprising as (

        -- per symbol and finding, its most improbable run that is longer than any accepted
        select distinct on (symbol, finding) *
        from scored
        where run_length > longest_run and log_chance < -{{ threshold }}
        order by symbol, finding, log_chance

    )

    select
        symbol,
        finding,
        format(
            '%s: %s in a row from %s to %s (%s of them new); its history before the run (%s bars) has runs '
            'of at most %s, and this run has a chance of %s by that history',
            {{ stock_analytics.per_finding('finding', "'{label}'") }},
            run_length, first_date, last_date, new_length, bars, longest_run, trim(to_char(exp(log_chance), '9.9EEEE'))
        ),
        first_date,
        last_date
    from surprising;

    -- One session across symbols: the bars new to a session against the 20 sessions before.
    insert into pg_temp.price_guard_verdicts (symbol, finding, reason, first_date, last_date)
    with

    new_bars as (

        -- a symbol without accepted bars is a first build: not judged
        select bars.* from pg_temp.price_guard_bars as bars
        inner join pg_temp.price_guard_history as history on bars.symbol = history.symbol
        where bars.is_new and not bars.was_stored and history.bars > 0
            and not (bars.symbol = any(v_unjudged))

    ),

    new_sessions as (

        select
            trade_date,
            count(*) as symbols,
            {%- for finding in findings %}
            count(*) filter (where {{ finding.name }}{{ ' > 0' if finding.name == 'missed_session' }})
                as {{ finding.name }}_symbols{{ ',' if not loop.last }}
            {%- endfor %}
        from new_bars
        group by trade_date

    ),

    -- The sessions as they stand with this pass: the accepted counts and the new bars. A
    -- session is compared with the 20 before it, the pass's own included, so a load of many
    -- sessions is judged as the same bars a session at a time would be.
    with_this_pass as (

        select
            trade_date,
            sum(symbols) as symbols,
            {%- for finding in findings %}
            sum({{ finding.name }}_symbols) as {{ finding.name }}_symbols,
            {%- endfor %}
            bool_or(is_new) as is_new
        from (
            select accepted.*, false as is_new
            from {{ sessions }} as accepted
            where accepted.trade_date >= (
                -- the 20 accepted sessions before the pass's first are all a window needs
                select coalesce(min(earlier.trade_date), '-infinity')
                from (
                    select recent.trade_date from {{ sessions }} as recent
                    where recent.trade_date < (select min(new_sessions.trade_date) from new_sessions)
                    order by recent.trade_date desc
                    limit 20
                ) as earlier
            )
            union all
            select new_sessions.*, true as is_new
            from new_sessions
        ) as both_kinds
        group by trade_date

    ),

    judged as (

        {%- for finding in findings %}
        select
            trade_date,
            '{{ finding.name }}' as finding,
            symbols,
            {{ finding.name }}_symbols as with_finding,
            count(*) over before as sessions_seen,
            max(({{ finding.name }}_symbols + 1.0) / (symbols + 2.0)) over before as highest_share,
            is_new
        from with_this_pass
        window before as (order by trade_date rows between 20 preceding and 1 preceding)
        {{ 'union all' if not loop.last }}
        {%- endfor %}

    ),

    scored as (

        select
            *,
            cast(with_finding as double precision) / symbols as share,
            -- m * KL(q || p): minus the log of the Chernoff bound on P(X >= x), X ~ Bin(m, p)
            symbols * (
                (cast(with_finding as double precision) / symbols)
                * ln((cast(with_finding as double precision) / symbols) / highest_share)
                + case when with_finding < symbols then
                    (1 - cast(with_finding as double precision) / symbols)
                    * ln((1 - cast(with_finding as double precision) / symbols) / (1 - highest_share))
                else 0 end
            ) as surprise
        from judged
        where is_new and with_finding > 0 and sessions_seen > 0

    )

    select
        new_bars.symbol,
        scored.finding,
        format(
            '%s on %s in %s of %s symbols (%s%%); the %s sessions before had at most %s%% (smoothed)',
            {{ stock_analytics.per_finding('scored.finding', "'{label}'") }},
            scored.trade_date, scored.with_finding, scored.symbols, round(cast(100 * scored.share as numeric), 2),
            scored.sessions_seen, round(cast(100 * scored.highest_share as numeric), 2)
        ),
        scored.trade_date,
        scored.trade_date
    from scored
    inner join new_bars
        on scored.trade_date = new_bars.trade_date
        and {{ stock_analytics.per_finding('scored.finding', "new_bars.{name}{flag}") }}
    where scored.share > scored.highest_share and scored.surprise > {{ threshold }};
{%- endmacro %}

{#- After the pass wrote its bars: the baseline and session counts take in the bars applied
    that are news (pg_temp.price_guard_bars, less the held symbols' and the bars a merged or
    replaced file states again as stored). They are vouched when a person accepted them or
    they are the symbol's first (a first build for it). -#}
{% macro price_guard_record() -%}
    {%- set baseline = stock_analytics.price_guard_relation('quality_baseline') -%}
    {%- set sessions = stock_analytics.price_guard_relation('quality_sessions') -%}
    {%- set findings = stock_analytics.price_guard_findings() -%}
    delete from pg_temp.price_guard_bars where symbol in (select symbol from pg_temp.price_guard_verdicts);
    delete from pg_temp.price_guard_runs where symbol in (select symbol from pg_temp.price_guard_verdicts);
    insert into {{ baseline }} as kept
    {{ stock_analytics.price_baseline_rows(
        'pg_temp.price_guard_bars', 'pg_temp.price_guard_runs', with_new=true,
        vouched='(counted.symbol = any(v_unjudged) or counted.symbol not in '
                ~ '(select history.symbol from pg_temp.price_guard_history as history where history.bars > 0))') }}
    on conflict (symbol, load_id) do update set
        applied_at = excluded.applied_at,
        vouched = kept.vouched or excluded.vouched,
        bars = kept.bars + excluded.bars,
        sessions = kept.sessions + excluded.sessions,
        {%- for finding in findings %}
        {{ finding.name }}_count = kept.{{ finding.name }}_count + excluded.{{ finding.name }}_count,
        {{ finding.name }}_runs = kept.{{ finding.name }}_runs + excluded.{{ finding.name }}_runs,
        {{ finding.name }}_longest_run = greatest(kept.{{ finding.name }}_longest_run, excluded.{{ finding.name }}_longest_run),
        {%- endfor %}
        first_date = least(kept.first_date, excluded.first_date),
        last_date = greatest(kept.last_date, excluded.last_date);
    insert into {{ sessions }} as kept
    select
        trade_date,
        count(*),
        {%- for finding in findings %}
        count(*) filter (where {{ finding.name }}{{ ' > 0' if finding.name == 'missed_session' }}){{ ',' if not loop.last }}
        {%- endfor %}
    from pg_temp.price_guard_bars
    where is_new and not was_stored
    group by trade_date
    -- the one row two consumers' steps share (a day's counts): locked in date order, never crosswise
    order by trade_date
    on conflict (trade_date) do update set
        symbols = kept.symbols + excluded.symbols,
        {%- for finding in findings %}
        {{ finding.name }}_symbols = kept.{{ finding.name }}_symbols + excluded.{{ finding.name }}_symbols{{ ',' if not loop.last }}
        {%- endfor %};
{%- endmacro %}

{#- var accept_held_prices, as the apply function's p_accept: a symbol, a list of symbols, or
    '*' (every hold), as a text[] literal; null when the var is not set. -#}
{% macro accepted_held_prices() -%}
    {%- set accepted = var('accept_held_prices', none) -%}
    {%- if accepted is none or accepted == [] or accepted == '' -%}
        {{ return('null') }}
    {%- endif -%}
    {%- if accepted is string -%}
        {%- set accepted = [accepted] -%}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for symbol in accepted -%}
        {%- if symbol is not string or symbol | trim == '' -%}
            {{ exceptions.raise_compiler_error(
                "var accept_held_prices: a symbol, a list of symbols or '*', got " ~ accepted) }}
        {%- endif -%}
        {%- do literals.append("'" ~ (symbol | trim | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {{ return('array[' ~ literals | join(', ') ~ ']::text[]') }}
{%- endmacro %}

{#- After staging's apply: one warning line per symbol held back and not accepted (the first
    20), and how to accept them. The dbt test assert_no_held_back_prices fails the build. -#}
{% macro log_held_prices() -%}
    {%- set held = stock_analytics.price_guard_relation('held_prices') -%}
    {%- set query -%}
        select holding.symbol, min(holding.first_date), max(holding.last_date), string_agg(holding.reason, '; ')
        from {{ held }} as holding
        where {{ stock_analytics.is_open_hold('holding') }}
        group by holding.symbol
        order by holding.symbol
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {%- if rows | length == 0 -%}{{ return('') }}{%- endif -%}
    {%- do log("price guard: " ~ rows | length ~ " symbol(s) held back, out of the marts until accepted:",
               info=true) -%}
    {%- for row in rows[:20] -%}
        {%- do log("  " ~ row[0] ~ " " ~ row[1] ~ " to " ~ row[2] ~ ": " ~ row[3], info=true) -%}
    {%- endfor -%}
    {%- if rows | length > 20 -%}
        {%- do log("  ... and " ~ (rows | length - 20) ~ " more: select * from " ~ held ~ " where accepted_at is null", info=true) -%}
    {%- endif -%}
    {%- set named = rows[:3] | map(attribute=0) | join(', ') ~ (', ...' if rows | length > 3 else '') -%}
    {%- do log("  if they are right: dbt build --vars '{accept_held_prices: [" ~ named ~ "]}' (or '*' for all);"
               ~ " if not: load the corrected file with --replace", info=true) -%}
{%- endmacro %}
