{% macro export_to_parquet(name, order_by='pool_id, snapshot_date') %}
    {#- A post-hook that copies the model's table to
        <APY_RUNWAY_DATA_DIR>/exports/<name>.parquet, in `order_by` order (an
        incremental table's physical order depends on its history). The CLI
        creates the folder and sets the variable to an absolute path. -#}
    {%- set exports = env_var('APY_RUNWAY_DATA_DIR', '../data') ~ '/exports' -%}
    copy (select * from {{ this }} order by {{ order_by }})
    to '{{ exports }}/{{ name }}.parquet' (format parquet)
{% endmacro %}
