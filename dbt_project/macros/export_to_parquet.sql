{% macro export_to_parquet(name, order_by=none) %}
    {#- A post-hook that copies the model's table to
        <APY_RUNWAY_DATA_DIR>/exports/<name>.parquet, in `order_by` order when
        given (an incremental table's physical order depends on its history;
        a table built whole keeps its model's order). The CLI creates the
        folder and sets the variable to an absolute path. -#}
    {%- set exports = env_var('APY_RUNWAY_DATA_DIR', '../data') ~ '/exports' -%}
    {{ return(adapter.dispatch('export_to_parquet')(exports, name, order_by)) }}
{% endmacro %}

{% macro duckdb__export_to_parquet(exports, name, order_by) %}
    {#- One parquet file. -#}
    copy (
        select * from {{ this }}
        {%- if order_by %} order by {{ order_by }}{% endif %}
    )
    to '{{ exports }}/{{ name }}.parquet' (format parquet)
{% endmacro %}

{% macro spark__export_to_parquet(exports, name, order_by) %}
    {#- A folder of parquet part files (`_SUCCESS` beside them), written by
        the executors in parallel; pandas and pyarrow read the folder as one
        table. The path may be a cluster's (s3a://..., abfss://...). -#}
    insert overwrite directory '{{ exports }}/{{ name }}.parquet'
    using parquet
    select * from {{ this }}
    {%- if order_by %} order by {{ order_by }}{% endif %}
{% endmacro %}
