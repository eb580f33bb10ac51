-- The landed /chart unit's rows that a stored snapshot row outranks. Per
-- pool and UTC hour a row of a snapshot file (a collected /pools hour, a CSV
-- or parquet export) outranks a /chart row, an end-of-day back-fill, whatever
-- the landing order: the /chart row is rejected (reason `outranked`) and the
-- snapshot row stays. Only the partitions (UTC days) the unit touches are
-- read, and of them only the rows of its pools; snapshot_files holds the
-- landing orders of the store's snapshot files.
-- <stored_files>: list literal of the store's files in those partitions.
-- <superseded_list>: the store's list of rows already superseded.

insert into verdicts

with

stored as (
    select
        pool,
        timestamp,
        landing_order
    from read_parquet(
        {stored_files},
        hive_partitioning = true,
        hive_types = { 'snapshot_date': date }
    )
    where pool in (
        select row_keys.parsed_pool from row_keys
        where row_keys.row_reason is null
    )
),

already_superseded as (
    select * from read_parquet({superseded_list})
),

snapshot_hours as (
    select distinct
        stored.pool,
        date_trunc('hour', stored.timestamp) as snapshot_hour
    from stored
    semi join snapshot_files
        on stored.landing_order = snapshot_files.landing_order
    anti join already_superseded
        on
            stored.pool = already_superseded.pool
            and date_trunc('hour', stored.timestamp)
            = already_superseded.snapshot_hour
            and stored.landing_order = already_superseded.landing_order
),

outranked as (
    select
        row_keys.file_index,
        row_keys.source_row,
        'outranked' as reason
    from row_keys
    semi join snapshot_hours
        on
            row_keys.parsed_pool = snapshot_hours.pool
            and date_trunc('hour', row_keys.parsed_timestamp)
            = snapshot_hours.snapshot_hour
    anti join verdicts
        on
            row_keys.file_index = verdicts.file_index
            and row_keys.source_row = verdicts.source_row
    where row_keys.row_reason is null
)

select * from outranked
