{% macro refresh_from_date() %}
    {#- The first UTC day an incremental run rebuilds (before each model's own
        lookback), as a SQL date literal, or none when the model builds in
        full. `apy-runway refresh` sets var refresh_from_date to the earliest
        snapshot_date among the rows landed since the last build; a full
        build (first run, --full-refresh) ignores it. An incremental run
        without the var rebuilds every day (correct, only slower). -#}
    {%- set value = var('refresh_from_date', none) -%}
    {%- if not value or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if text | length != 10 or text[4] != '-' or text[7] != '-' -%}
        {{ exceptions.raise_compiler_error(
            "var refresh_from_date must be a date YYYY-MM-DD, got '"
            ~ text ~ "'") }}
    {%- endif -%}
    {{ return("date '" ~ text ~ "'") }}
{% endmacro %}
