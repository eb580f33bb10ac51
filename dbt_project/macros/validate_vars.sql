{% macro validate_vars() %}
    {#-
        on-run-start: refuse nonsense vars before anything is built (plain
        Jinja, no SQL: engine-neutral). Reads the names given on the command
        line (invocation_args_dict) and every value through var().
    -#}
    {%- set known = [
        "as_of_date", "refresh_from_date", "daily_downsampling",
        "horizon_days", "apy_drop_threshold", "apy_future_stat",
        "min_future_coverage", "dead_pool_is_dropped",
    ] -%}
    {%- set given = invocation_args_dict.get("vars") or {} -%}
    {%- if given is string -%}
        {%- set given = fromyaml(given) or {} -%}
    {%- endif -%}
    {%- set unknown = [] -%}
    {%- for name in given -%}
        {%- if name not in known -%}{%- do unknown.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {%- if unknown -%}
        {{ exceptions.raise_compiler_error(
            "unknown var(s) " ~ unknown | join(", ")
            ~ "; the known vars are " ~ known | join(", ")
        ) }}
    {%- endif -%}

    {%- set horizon = var("horizon_days") -%}
    {%- set horizon_text = horizon | string | trim -%}
    {%- if horizon is boolean or horizon is float
        or not modules.re.fullmatch("[0-9]+", horizon_text)
        or horizon_text | int < 1 -%}
        {{ exceptions.raise_compiler_error(
            "var horizon_days must be a positive whole number of days, got "
            ~ horizon | tojson
        ) }}
    {%- endif -%}

    {#- numbers: a YAML number, or text that reads as one (not a word) -#}
    {%- set numbers = {} -%}
    {%- for name in ["apy_drop_threshold", "min_future_coverage"] -%}
        {%- set value = var(name) -%}
        {%- set text = value | string | trim -%}
        {%- if value is boolean or not modules.re.fullmatch(
            "[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?", text) -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be a number, got " ~ value | tojson
            ) }}
        {%- endif -%}
        {%- do numbers.update({name: text | float}) -%}
    {%- endfor -%}

    {%- set threshold = numbers["apy_drop_threshold"] -%}
    {%- if not (threshold > -1 and threshold < 1) -%}
        {{ exceptions.raise_compiler_error(
            "var apy_drop_threshold must lie in (-1, 1) (a ratio: -0.2 = dropped "
            ~ "by more than 20%), got " ~ var("apy_drop_threshold") | tojson
        ) }}
    {%- endif -%}

    {%- set coverage = numbers["min_future_coverage"] -%}
    {%- if not (coverage >= 0 and coverage <= 1) -%}
        {{ exceptions.raise_compiler_error(
            "var min_future_coverage must lie in [0, 1] (a share of the horizon "
            ~ "days), got " ~ var("min_future_coverage") | tojson
        ) }}
    {%- endif -%}

    {%- for name, allowed in [
        ("apy_future_stat", ["point", "mean", "median"]),
        ("daily_downsampling", ["last", "mean", "median"]),
    ] -%}
        {%- if var(name) not in allowed -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be one of " ~ allowed | join(", ")
                ~ ", got " ~ var(name) | tojson
            ) }}
        {%- endif -%}
    {%- endfor -%}

    {%- if var("dead_pool_is_dropped") is not boolean -%}
        {{ exceptions.raise_compiler_error(
            "var dead_pool_is_dropped must be true or false, got "
            ~ var("dead_pool_is_dropped") | tojson
        ) }}
    {%- endif -%}

    {%- for name in ["as_of_date", "refresh_from_date"] -%}
        {%- set value = var(name) -%}
        {%- if value is not none -%}
            {%- set text = value | string | trim -%}
            {%- set parsed = none -%}
            {%- set match = modules.re.fullmatch(
                "([0-9]{4})-([0-9]{2})-([0-9]{2})", text) -%}
            {%- if match and value is not boolean -%}
                {%- set year = match.group(1) | int -%}
                {%- set month = match.group(2) | int -%}
                {%- set day = match.group(3) | int -%}
                {%- if year >= 1 and 1 <= month <= 12 -%}
                    {%- set next_month = modules.datetime.date(
                        year + month // 12, month % 12 + 1, 1) -%}
                    {%- set last_day = (
                        next_month - modules.datetime.timedelta(days=1)).day -%}
                    {%- if 1 <= day <= last_day -%}
                        {%- set parsed = text -%}
                    {%- endif -%}
                {%- endif -%}
            {%- endif -%}
            {%- if parsed is none -%}
                {{ exceptions.raise_compiler_error(
                    "var " ~ name ~ " must be a date YYYY-MM-DD or null, got "
                    ~ value | tojson
                ) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}
