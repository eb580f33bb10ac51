-- Every rejected row with its reason: the row's own reason, or
--   exact_duplicate     the same values as a later input row (the later stays);
--   superseded_in_hour  another row of the pool in the same UTC hour wins: the
--                       latest timestamp, ties -> the later input row.

create table verdicts as

with

valid as (
    select
        *,
        date_trunc('hour', parsed_timestamp) as parsed_hour
    from row_keys
    where row_reason is null
),

-- one hash aggregate over all rows finds the few crowded hours; only their
-- rows are ranked (exact duplicates always share pool and hour)
crowded_hours as (
    select
        parsed_pool,
        parsed_hour
    from valid
    group by parsed_pool, parsed_hour
    having count(*) > 1
),

contenders as (
    select valid.*
    from valid
    semi join crowded_hours
        on
            valid.parsed_pool = crowded_hours.parsed_pool
            and valid.parsed_hour = crowded_hours.parsed_hour
),

-- identical values: the last input copy stays, earlier copies are duplicates
copies_ranked as (
    select
        *,
        row_number() over (
            partition by parsed_pool, parsed_timestamp, value_hash
            order by file_index desc, source_row desc
        ) as copy_rank
    from contenders
),

-- one row per pool per UTC hour: the latest timestamp, then the later input
hours_ranked as (
    select
        *,
        row_number() over (
            partition by parsed_pool, parsed_hour
            order by parsed_timestamp desc, file_index desc, source_row desc
        ) as hour_rank
    from copies_ranked
    where copy_rank = 1
),

rejected as (
    select
        file_index,
        source_row,
        row_reason as reason
    from row_keys
    where row_reason is not null
    union all
    select
        file_index,
        source_row,
        'exact_duplicate' as reason
    from copies_ranked
    where copy_rank > 1
    union all
    select
        file_index,
        source_row,
        'superseded_in_hour' as reason
    from hours_ranked
    where hour_rank > 1
)

select * from rejected
