-- Every rejected row of the landed unit with its reason: the row's own
-- reason, or, when another row of the pool in the same UTC hour wins,
--   exact_duplicate     the same values as a later row of the same file;
--   superseded_in_hour  a row of the same file with a later timestamp (ties:
--                       the later row);
--   superseded          a row of a later-landed file of the unit (the rule
--                       that also decides between the unit and the store).

create or replace table verdicts as

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

-- identical values: the last copy stays, earlier copies are duplicates
copies_ranked as (
    select
        *,
        row_number() over copies as copy_rank,
        first_value(file_index) over (
            copies rows between unbounded preceding and unbounded following
        ) as winner_file_index
    from contenders
    window copies as (
        partition by parsed_pool, parsed_timestamp, value_hash
        order by file_index desc, source_row desc
    )
),

-- one row per pool per UTC hour: the later landed file, then the latest
-- timestamp, then the later row
hours_ranked as (
    select
        *,
        row_number() over hours as hour_rank,
        first_value(file_index) over (
            hours rows between unbounded preceding and unbounded following
        ) as winner_file_index
    from copies_ranked
    where copy_rank = 1
    window hours as (
        partition by parsed_pool, parsed_hour
        order by file_index desc, parsed_timestamp desc, source_row desc
    )
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
        case
            when file_index = winner_file_index then 'exact_duplicate'
            else 'superseded'
        end as reason
    from copies_ranked
    where copy_rank > 1
    union all
    select
        file_index,
        source_row,
        case
            when file_index = winner_file_index then 'superseded_in_hour'
            else 'superseded'
        end as reason
    from hours_ranked
    where hour_rank > 1
)

select * from rejected
