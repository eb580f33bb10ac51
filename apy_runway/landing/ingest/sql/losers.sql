-- The stored rows a newly landed unit replaces. Per (pool, UTC hour) the row
-- of the most recently landed file wins, so every current row of an earlier
-- file that shares pool and hour with a new row loses (reason `superseded`).
-- Only the partitions (UTC days) the new unit touches are read, and of them
-- only the rows of its pools (a back-fill of a few pools' year skips the
-- other pools' row groups).
-- <stored_files>: list literal of the store's files in those partitions.
-- <superseded_list>: the store's list of rows already superseded.
-- <new_files>: list literal of the new unit's staged files.

create or replace table losers as

with

stored as (
    select *
    from read_parquet(
        {stored_files},
        hive_partitioning = true,
        hive_types = { 'snapshot_date': date }
    )
    where pool in (
        select new_rows.pool from read_parquet({new_files}) as new_rows
    )
),

already_superseded as (
    select * from read_parquet({superseded_list})
),

current_rows as (
    select stored.*
    from stored
    anti join already_superseded
        on
            stored.pool = already_superseded.pool
            and date_trunc('hour', stored.timestamp)
            = already_superseded.snapshot_hour
            and stored.landing_order = already_superseded.landing_order
),

new_keys as (
    select distinct
        new_rows.pool,
        date_trunc('hour', new_rows.timestamp) as snapshot_hour
    from read_parquet({new_files}) as new_rows
)

select
    current_rows.*,
    date_trunc('hour', current_rows.timestamp) as snapshot_hour
from current_rows
semi join new_keys
    on
        current_rows.pool = new_keys.pool
        and date_trunc('hour', current_rows.timestamp)
        = new_keys.snapshot_hour
