{#- The ledger's rows, or no rows (typed) while data/ledger/ holds no file.
    DuckDB: read_json errors on a glob that matches nothing, so the files are
    counted first (at execution); the other adapters read the source. -#}
{% macro ledger_rows() %}
    {{ return(adapter.dispatch('ledger_rows')()) }}
{% endmacro %}

{% macro default__ledger_rows() %}
    select * from {{ source('ledger', 'served_predictions') }}
{% endmacro %}

{% macro duckdb__ledger_rows() %}
    {%- set pattern = env_var('APY_RUNWAY_DATA_DIR', '../data')
        ~ '/ledger/date=*/*.json.gz' -%}
    {%- set found = 1 -%}
    {%- if execute -%}
        {%- set counted = run_query(
            "select count(*) from glob('" ~ pattern ~ "')") -%}
        {%- set found = counted.columns[0].values()[0] -%}
    {%- endif -%}
    {%- if found > 0 %}
    select * from {{ source('ledger', 'served_predictions') }}
    {%- else %}
    select
        cast(null as varchar) as source,
        cast(null as varchar) as pool_id,
        cast(null as varchar) as hour,
        cast(null as varchar) as model_id,
        cast(null as date) as feature_date,
        cast(null as double) as p_keep,
        cast(null as varchar) as predicted_class,
        cast(null as integer) as binned_confidence,
        cast(null as double) as cutpoint_low,
        cast(null as double) as cutpoint_high,
        cast(null as integer) as horizon_days,
        cast(null as double) as apy_drop_threshold,
        cast(null as varchar) as apy_future_stat,
        cast(null as double) as min_future_coverage,
        cast(null as boolean) as dead_pool_is_dropped,
        cast(null as varchar []) as reasons
    where false
    {%- endif %}
{% endmacro %}

{#- The shown probability and the ONE bin rule of inference.contracts, in
    portable SQL: 100 x (0.5 + |p - 0.5|) (the same float64 operations in the
    same order), and 1 + (p > low) + (p > high): a value equal to a cut-point
    goes to the LOWER bin. -#}
{% macro predicted_probability(p_keep) -%}
    100.0 * (0.5 + abs({{ p_keep }} - 0.5))
{%- endmacro %}

{% macro confidence_bin(probability, low, high) -%}
    (
        1
        + case when {{ probability }} > {{ low }} then 1 else 0 end
        + case when {{ probability }} > {{ high }} then 1 else 0 end
    )
{%- endmacro %}
