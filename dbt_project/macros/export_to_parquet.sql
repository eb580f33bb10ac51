{% macro export_to_parquet(name) %}
    {#- A post-hook that copies the model's table to
        <APY_RUNWAY_DATA_DIR>/exports/<name>.parquet. The CLI creates the
        folder and sets the variable to an absolute path. -#}
    {%- set exports = env_var('APY_RUNWAY_DATA_DIR', '../data') ~ '/exports' -%}
    copy (select * from {{ this }})
    to '{{ exports }}/{{ name }}.parquet' (format parquet)
{% endmacro %}
