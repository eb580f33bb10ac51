-- One row per pool per observed day: every model feature, point in time.
-- Joins the pool's own history features, the same-day cross-sectional
-- features and the pool's static attributes. Categorical nulls become
-- 'unknown'; numeric features keep their nulls (see the YAML null policy).
--
-- Static attributes (stablecoin, il_risk, exposure): DefiLlama serves them
-- only for today (/pools), so the pool's latest known value in the build is
-- applied to all of its history. They are assumed not to change over time.

with

daily as (

    select * from {{ ref('int_pool_snapshots_downsampled_to_daily') }}

),

rolling_features as (

    select * from {{ ref('int_pool_days_rolling_features') }}

),

cross_sectional as (

    select * from {{ ref('int_pool_days_cross_sectional_features') }}

),

static_attributes as (

    select
        pool_id,
        arg_max(is_stablecoin, snapshot_date)
            filter (where is_stablecoin is not null) as is_stablecoin,
        arg_max(il_risk, snapshot_date)
            filter (where il_risk is not null) as il_risk,
        arg_max(exposure, snapshot_date)
            filter (where exposure is not null) as exposure
    from daily
    group by pool_id

),

joined as (

    select
        -- ids
        daily.pool_id,

        -- strings: not features
        daily.symbol,
        daily.pool_meta,

        -- numeric features
        -- (the exclude lists name the key columns of each joined table)
        rolling_features.* exclude (pool_id, snapshot_date),  -- noqa: RF02
        cross_sectional.* exclude (pool_id, snapshot_date),  -- noqa: RF02

        -- categorical features
        coalesce(daily.chain, 'unknown') as chain,  -- noqa: RF04
        coalesce(daily.project, 'unknown') as project,
        coalesce(static_attributes.il_risk, 'unknown') as il_risk,
        coalesce(static_attributes.exposure, 'unknown') as exposure,
        case
            when static_attributes.is_stablecoin then 'true'
            when not static_attributes.is_stablecoin then 'false'
            else 'unknown'
        end as stablecoin,

        -- dates
        daily.snapshot_date

    from daily
    inner join rolling_features
        on daily.pool_id = rolling_features.pool_id
        and daily.snapshot_date = rolling_features.snapshot_date
    inner join cross_sectional
        on daily.pool_id = cross_sectional.pool_id
        and daily.snapshot_date = cross_sectional.snapshot_date
    left join static_attributes
        on daily.pool_id = static_attributes.pool_id

)

select * from joined
