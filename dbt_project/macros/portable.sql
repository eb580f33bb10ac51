{#- Portable SQL: the few places where DuckDB and Spark SQL differ. Each macro
    dispatches on the target's adapter (adapter.dispatch) to a duckdb__ or a
    spark__ implementation; the models call the macro, never the dialect.
    Everything else in the models is SQL both engines read alike (date + n
    days, filter clauses, named windows, rows frames, greatest / least,
    any_value, try_cast, `string` as the text type). New SQL: write it once,
    and when an engine needs its own spelling, add a macro here with both
    implementations (documented in _macros.yml and dbt_project/README.md). -#}


{% macro median_value(expression) -%}
    {{ return(adapter.dispatch('median_value')(expression)) }}
{%- endmacro %}

{% macro duckdb__median_value(expression) -%}
    median({{ expression }})
{%- endmacro %}

{#- Spark's median() takes no window frame; percentile(x, 0.5) does (and
    interpolates between the two middle values, as DuckDB's median does). -#}
{% macro spark__median_value(expression) -%}
    percentile({{ expression }}, 0.5)
{%- endmacro %}


{% macro arg_max(value, ordering) -%}
    {{ return(adapter.dispatch('arg_max')(value, ordering)) }}
{%- endmacro %}

{% macro duckdb__arg_max(value, ordering) -%}
    arg_max({{ value }}, {{ ordering }})
{%- endmacro %}

{% macro spark__arg_max(value, ordering) -%}
    max_by({{ value }}, {{ ordering }})
{%- endmacro %}


{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__days_between(start_date, end_date) -%}
    datediff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{#- datediff(day, ...) is Spark's timestampdiff: a bigint, as DuckDB's. -#}
{% macro spark__days_between(start_date, end_date) -%}
    datediff(day, {{ start_date }}, {{ end_date }})
{%- endmacro %}


{% macro day_series(start_date, end_date) -%}
    {{ return(adapter.dispatch('day_series')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__day_series(start_date, end_date) -%}
    cast(
        unnest(generate_series({{ start_date }}, {{ end_date }}, interval 1 day))
        as date
    )
{%- endmacro %}

{% macro spark__day_series(start_date, end_date) -%}
    explode(sequence({{ start_date }}, {{ end_date }}, interval 1 day))
{%- endmacro %}


{% macro star_except(relation_alias, columns) -%}
    {{ return(adapter.dispatch('star_except')(relation_alias, columns)) }}
{%- endmacro %}

{% macro duckdb__star_except(relation_alias, columns) -%}
    {{ relation_alias }}.* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(relation_alias, columns) -%}
    {{ relation_alias }}.* except ({{ columns | join(', ') }})
{%- endmacro %}


{% macro type_timestamp_utc() -%}
    {{ return(adapter.dispatch('type_timestamp_utc')()) }}
{%- endmacro %}

{#- An instant in UTC: DuckDB's timestamptz (the profile pins TimeZone = UTC);
    Spark's timestamp is one (the profile pins spark.sql.session.timeZone). -#}
{% macro duckdb__type_timestamp_utc() -%}
    timestamptz
{%- endmacro %}

{% macro spark__type_timestamp_utc() -%}
    timestamp
{%- endmacro %}


{% macro key_hash(columns) -%}
    {{ return(adapter.dispatch('key_hash')(columns)) }}
{%- endmacro %}

{% macro duckdb__key_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{#- Spark's hash() has 32 bits; xxhash64 has 64, as DuckDB's hash. -#}
{% macro spark__key_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}


{% macro storage_order(columns) -%}
    {{ return(adapter.dispatch('storage_order')(columns)) }}
{%- endmacro %}

{#- DuckDB: write the rows day by day, so an incremental run's reads of the
    newest days skip the row groups of older days. -#}
{% macro duckdb__storage_order(columns) -%}
    order by {{ columns }}
{%- endmacro %}

{#- Spark: the incremental tables are partitioned by snapshot_date, which
    does that job; a global sort would shuffle every row once more. -#}
{% macro spark__storage_order(columns) -%}
{%- endmacro %}
