{% macro export_to_parquet(name, order_by=none) %}
    {#- A post-hook that copies the model's table to
        <APY_RUNWAY_DATA_DIR>/exports/<name>.parquet, in `order_by` order when
        given (an incremental table's physical order depends on its history;
        a table built whole keeps its model's order). The CLI creates the
        folder and sets the variable to an absolute path. -#}
    {%- set exports = env_var('APY_RUNWAY_DATA_DIR', '../data') ~ '/exports' -%}
    copy (
        select * from {{ this }}
        {%- if order_by %} order by {{ order_by }}{% endif %}
    )
    to '{{ exports }}/{{ name }}.parquet' (format parquet)
{% endmacro %}
