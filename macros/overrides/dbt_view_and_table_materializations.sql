{#- Overrides dbt's view and table materializations. Why: the profile runs each statement in
    its own transaction (autocommit, which TimescaleDB's continuous-aggregate refresh needs), so
    dbt's four-statement swap would leave readers a moment with no relation; the package's
    swap_in_relation does the swap in one transaction, and leaves a view that would come out
    the same in place (no lock for its readers to wait on at every build). -#}
{% materialization view, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('view')) }}
{% endmaterialization %}

{% materialization table, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('table')) }}
{% endmaterialization %}
