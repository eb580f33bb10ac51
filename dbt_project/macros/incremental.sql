{% macro refresh_from_date_text() %}
    {#- The refresh's first UTC day as text 'YYYY-MM-DD', or none. Var
        refresh_from_date when set (`dbt --vars`, the unit tests), else env
        APY_RUNWAY_REFRESH_FROM_DATE (what `apy-runway refresh` and train
        set). Read only at execution, never while parsing: the value changes
        every hour while the parsed project stays valid (partial parsing, a
        warm dbtRunner's manifest). -#}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = var('refresh_from_date', none)
        or env_var('APY_RUNWAY_REFRESH_FROM_DATE', '') -%}
    {%- if not value -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if text | length != 10 or text[4] != '-' or text[7] != '-' -%}
        {{ exceptions.raise_compiler_error(
            "var refresh_from_date must be a date YYYY-MM-DD, got '"
            ~ text ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}


{% macro refresh_from_date() %}
    {#- The first UTC day an incremental run rebuilds (before each model's own
        lookback), as a SQL date literal, or none when the model builds in
        full. `apy-runway refresh` sets it (refresh_from_date_text) to the
        earliest snapshot_date among the rows landed since the last build; a
        full build (first run, --full-refresh) ignores it. An incremental run
        without it rebuilds every day (correct, only slower). -#}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = refresh_from_date_text() -%}
    {%- if not text -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do log("refresh_from_date " ~ text ~ " (" ~ this ~ ")") -%}
    {{ return("date '" ~ text ~ "'") }}
{% endmacro %}


{% macro get_where_subquery(relation) -%}
    {#- dbt's own, plus two placeholders, replaced at execution: a test's
        `where` may say __refresh_from_date__, the refresh's first day (the
        whole table, 0001-01-01, in a full build), and __in_refresh_scope__,
        "the row's pool_id is one of the refresh's pools" (the file env
        APY_RUNWAY_REFRESH_SCOPE names; true without it, in a full build or
        with var refresh_from_date given by hand). A `where` is rendered
        while parsing, so it must not hold the values themselves. -#}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set day = none if flags.FULL_REFRESH
            else refresh_from_date_text() -%}
        {%- if '__refresh_from_date__' in where -%}
            {%- set where = where | replace(
                '__refresh_from_date__',
                "cast('" ~ (day or '0001-01-01') ~ "' as date)") -%}
        {%- endif -%}
        {%- if '__in_refresh_scope__' in where -%}
            {%- set path = none if (not day or var('refresh_from_date', none))
                else env_var('APY_RUNWAY_REFRESH_SCOPE', '') -%}
            {%- set where = where | replace(
                '__in_refresh_scope__',
                "pool_id in (select pool_id from "
                    ~ refresh_scope_relation(path) ~ ")" if path else 'true') -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}


{% macro incremental_config(unique_key) %}
    {#- The config of an incremental model on this target (merge it into
        the model's config() call). unique_key: the columns that identify a
        row ([pool_id, snapshot_date] for the daily models). -#}
    {{ return(adapter.dispatch('incremental_config')(unique_key)) }}
{% endmacro %}

{% macro duckdb__incremental_config(unique_key) %}
    {#- delete+insert: the rows of the rebuilt keys replace the stored ones. -#}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert',
        'unique_key': unique_key,
        'on_schema_change': 'fail',
    }) }}
{% endmacro %}

{% macro spark__incremental_config(unique_key) %}
    {#- Parquet tables have no row-level delete or merge: a daily model is
        partitioned by snapshot_date and an incremental run overwrites the
        days it writes (insert_overwrite, dynamic partitions). A model whose
        key is not by day (latest_features: one row per pool) is a table,
        rebuilt whole. -#}
    {%- if 'snapshot_date' in unique_key -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': ['snapshot_date'],
            'file_format': 'parquet',
            'on_schema_change': 'fail',
        }) }}
    {%- else -%}
        {{ return({'materialized': 'table', 'file_format': 'parquet'}) }}
    {%- endif -%}
{% endmacro %}


{% macro rows_to_write(rows, unique_key) %}
    {#- The relation an incremental model writes, given the CTE `rows` of
        the rows it rebuilt. A full build writes `rows`. -#}
    {{ return(adapter.dispatch('rows_to_write')(rows, unique_key)) }}
{% endmacro %}

{% macro duckdb__rows_to_write(rows, unique_key) %}
    {#- delete+insert replaces the stored rows of the rebuilt keys only. -#}
    {{ return(rows) }}
{% endmacro %}

{% macro spark__rows_to_write(rows, unique_key) %}
    {#- insert_overwrite replaces whole days: a rebuilt day also gets the
        stored rows of that day that were not rebuilt (a returning pool's gap
        days, a pool whose static attributes changed, a label rebuilt for a
        few pools), so both engines keep the same rows. In a unit test `this`
        is a fixture (or none): the rebuilt rows as they are. -#}
    {%- if not is_incremental() or this is none or this is string -%}
        {{ return(rows) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this)
        | map(attribute='name') | join(', ') -%}
    {%- set kept_rows -%}
    (
        select {{ columns }} from {{ rows }}
        union all
        select {{ columns }} from {{ this }} as kept
        where
            kept.snapshot_date in (select snapshot_date from {{ rows }})
            and not exists (
                select 1 from {{ rows }} as rebuilt
                where
                {%- for key in unique_key %}
                    {{ 'and ' if not loop.first }}rebuilt.{{ key }} = kept.{{ key }}
                {%- endfor %}
            )
    ) as {{ rows }}
    {%- endset -%}
    {{ return(kept_rows) }}
{% endmacro %}


{% macro refresh_pools(daily) %}
    {#- The SQL of the pools an incremental run rebuilds, each with the
        first day it rebuilds (pool_id, from_date), or none in a full build.
        From the file env APY_RUNWAY_REFRESH_SCOPE names (apy-runway writes
        each pool's earliest day among the rows landed since the last build:
        a back-filled pool does not move the others' dates); without it, or
        with var refresh_from_date given by hand, every pool of `daily` (a
        relation with pool_id and snapshot_date) with days from
        refresh_from_date on, from that date. -#}
    {%- set from_date = refresh_from_date() -%}
    {%- if not from_date -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set path = none if var('refresh_from_date', none)
        else env_var('APY_RUNWAY_REFRESH_SCOPE', '') -%}
    {%- if path -%}
        {{ return(
            "select pool_id, from_date from "
            ~ refresh_scope_relation(path)) }}
    {%- endif -%}
    {{ return(
        "select distinct pool_id, " ~ from_date ~ " as from_date from "
        ~ daily ~ " where snapshot_date >= " ~ from_date) }}
{% endmacro %}

{% macro refresh_scope_relation(path) %}
    {{ return(adapter.dispatch('refresh_scope_relation')(path)) }}
{% endmacro %}

{% macro duckdb__refresh_scope_relation(path) %}
    {{ return("read_parquet('" ~ path ~ "')") }}
{% endmacro %}

{% macro spark__refresh_scope_relation(path) %}
    {{ return("parquet.`" ~ path ~ "`") }}
{% endmacro %}


{% macro cross_section_in_place() %}
    {#- Whether an incremental int_pool_days_featurized updates the
        cross-sectional columns of the pools it does not rebuild in place
        (update_cross_section, its post-hook) instead of rebuilding every pool
        of the days whose cross-section changed. -#}
    {{ return(adapter.dispatch('cross_section_in_place')()) }}
{% endmacro %}

{% macro duckdb__cross_section_in_place() %}
    {{ return(true) }}
{% endmacro %}

{% macro spark__cross_section_in_place() %}
    {#- parquet has no row-level update: the days are rewritten whole -#}
    {{ return(false) }}
{% endmacro %}


{% macro update_cross_section(cross_sectional) %}
    {#- int_pool_days_featurized's post-hook where cross_section_in_place():
        the rows from the refresh's first day on whose cross-sectional
        columns differ from `cross_sectional` (just rebuilt for every pool of
        its changed days) take its values. Nothing in a full build. -#}
    {%- set from_date = refresh_from_date() -%}
    {%- if not from_date or not cross_section_in_place() -%}
        {{ return('') }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(cross_sectional)
        | map(attribute='name')
        | reject('in', ['pool_id', 'snapshot_date']) | list -%}
    {%- set update -%}
    update {{ this }} as featurized
    set
        {%- for column in columns %}
        {{ column }} = cross_sectional.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ cross_sectional }} as cross_sectional
    where
        featurized.pool_id = cross_sectional.pool_id
        and featurized.snapshot_date = cross_sectional.snapshot_date
        and cross_sectional.snapshot_date >= {{ from_date }}
        and (
        {%- for column in columns %}
            {{ 'or ' if not loop.first }}featurized.{{ column }}
                is distinct from cross_sectional.{{ column }}
        {%- endfor %}
        )
    {%- endset -%}
    {{ return(update) }}
{% endmacro %}
