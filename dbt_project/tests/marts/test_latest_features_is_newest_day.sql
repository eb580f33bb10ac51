-- Fails with every pool whose latest_features row is not its newest observed
-- day, and with every observed pool missing from latest_features.

with

daily as (

    select * from {{ ref('int_pool_snapshots_downsampled_to_daily') }}

),

latest_features as (

    select * from {{ ref('latest_features') }}

),

newest_days as (

    select
        pool_id,
        max(snapshot_date) as newest_date
    from daily
    group by pool_id

),

mismatches as (

    select
        newest_days.pool_id,
        newest_days.newest_date,
        latest_features.snapshot_date
    from newest_days
    left join latest_features
        on newest_days.pool_id = latest_features.pool_id
    where latest_features.snapshot_date is distinct from newest_days.newest_date

)

select * from mismatches
