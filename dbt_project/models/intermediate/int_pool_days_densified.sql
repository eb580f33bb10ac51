-- One row per pool per calendar day from the pool's first to its last observed
-- day; days without a snapshot are kept as rows whose values are null
-- (is_observed = false). Rolling windows then run as `rows` frames, where
-- N rows are exactly N calendar days (d-N, d], and a missing day cannot
-- stretch a window. Forward (label) windows use the same calendar.
--
-- Incremental: each changed pool (refresh_pools) gets its calendar rebuilt
-- from its first changed day, or, for a pool coming back after a gap, from
-- the day after its last observation before it (the gap's rows are new).
-- A row carries nothing that later data changes (the pool's last observed day
-- is computed where it is needed), so older rows stay as they are.

{{ config(**incremental_config(['pool_id', 'snapshot_date'])) }}

{% set from_date = refresh_from_date() %}
{% set pools = refresh_pools(ref('int_pool_snapshots_downsampled_to_daily')) %}

with

daily as (

    select * from {{ ref('int_pool_snapshots_downsampled_to_daily') }}

),

pool_spans as (

    select
        daily.pool_id,
        min(daily.snapshot_date) as first_observed_date,
        max(daily.snapshot_date) as last_observed_date,
        {% if from_date %}
        -- the calendar restarts the day after the last observation before
        -- the pool's first changed day (a gap's days are new rows), or there
        greatest(
            min(daily.snapshot_date),
            least(
                refresh_pools.from_date,
                max(daily.snapshot_date) filter (
                    where daily.snapshot_date < refresh_pools.from_date
                ) + 1
            )
        ) as calendar_start_date
        {% else %}
        min(daily.snapshot_date) as calendar_start_date
        {% endif %}
    from daily
    {% if from_date %}
    inner join ({{ pools }}) as refresh_pools
        on daily.pool_id = refresh_pools.pool_id
    group by daily.pool_id, refresh_pools.from_date
    having max(daily.snapshot_date) >= refresh_pools.from_date
    {% else %}
    group by daily.pool_id
    {% endif %}

),

calendar as (

    select
        pool_id,
        first_observed_date,
        {{ day_series('calendar_start_date', 'last_observed_date') }}
            as snapshot_date
    from pool_spans

),

observed_days as (

    -- the days before the refresh date in a rebuilt calendar are gap days
    select * from daily
    {% if from_date %}
    where snapshot_date >= {{ from_date }}
    {% endif %}

),

densified as (

    select
        -- ids
        calendar.pool_id,

        -- strings
        observed_days.chain,
        observed_days.project,
        observed_days.symbol,
        observed_days.il_risk,
        observed_days.exposure,

        -- numerics
        observed_days.apy,
        observed_days.apy_base,
        observed_days.apy_reward,
        observed_days.tvl_usd,

        -- booleans
        observed_days.is_stablecoin,
        observed_days.pool_id is not null as is_observed,

        -- dates
        calendar.snapshot_date,
        calendar.first_observed_date

    from calendar
    left join observed_days
        on
            calendar.pool_id = observed_days.pool_id
            and calendar.snapshot_date = observed_days.snapshot_date

),

final as (

    -- day by day: an incremental run reads the newest days, which then sit
    -- together in storage (DuckDB skips the row groups of older days)
    select *
    from {{ rows_to_write('densified', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
