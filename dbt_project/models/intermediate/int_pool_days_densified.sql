-- One row per pool per calendar day from the pool's first to its last observed
-- day; days without a snapshot are kept as rows whose values are null
-- (is_observed = false). Rolling windows then run as `rows` frames, where
-- N rows are exactly N calendar days (d-N, d], and a missing day cannot
-- stretch a window. Forward (label) windows use the same calendar.

with

daily as (

    select * from {{ ref('int_pool_snapshots_downsampled_to_daily') }}

),

pool_spans as (

    select
        pool_id,
        min(snapshot_date) as first_observed_date,
        max(snapshot_date) as last_observed_date
    from daily
    group by pool_id

),

calendar as (

    select
        pool_id,
        first_observed_date,
        last_observed_date,
        cast(
            unnest(
                generate_series(
                    first_observed_date, last_observed_date, interval 1 day
                )
            ) as date
        ) as snapshot_date
    from pool_spans

),

densified as (

    select
        -- ids
        calendar.pool_id,

        -- strings
        daily.chain,
        daily.project,
        daily.symbol,
        daily.il_risk,
        daily.exposure,

        -- numerics
        daily.apy,
        daily.apy_base,
        daily.apy_reward,
        daily.tvl_usd,

        -- booleans
        daily.is_stablecoin,
        daily.pool_id is not null as is_observed,

        -- dates
        calendar.snapshot_date,
        calendar.first_observed_date,
        calendar.last_observed_date

    from calendar
    left join daily
        on calendar.pool_id = daily.pool_id
        and calendar.snapshot_date = daily.snapshot_date

)

select * from densified
