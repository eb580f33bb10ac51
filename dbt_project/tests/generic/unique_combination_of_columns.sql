{% test unique_combination_of_columns(model, combination_of_columns) %}
-- Fails with one row per duplicated key combination. Two passes keep memory
-- bounded at any size (a group-by on a few hundred million wide keys does
-- not fit in a 1GB DuckDB): first the 64-bit hashes of the keys that occur
-- more than once (8 bytes a key), then the exact keys of those rows only
-- (none, usually: DuckDB then skips the second scan). A hash collision can
-- only add a candidate, never hide a duplicate. key_hash: 64 bits on both
-- targets (macros/portable.sql).
{%- set columns = combination_of_columns | join(', ') %}

with

repeated_hashes as (

    select {{ key_hash(combination_of_columns) }} as key_hash
    from {{ model }}
    group by key_hash
    having count(*) > 1

),

candidates as (

    select {{ columns }}
    from {{ model }}
    where
        {{ key_hash(combination_of_columns) }}
        in (select key_hash from repeated_hashes)

)

select
    {{ columns }},
    count(*) as duplicate_count
from candidates
group by {{ columns }}
having count(*) > 1

{% endtest %}
