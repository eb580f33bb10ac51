-- One row per pool per observed day: every model feature, point in time.
-- Joins the pool's own history features, the same-day cross-sectional
-- features and the pool's static attributes. Categorical nulls become
-- 'unknown'; numeric features keep their nulls (see the YAML null policy).
--
-- Static attributes (stablecoin, il_risk, exposure): DefiLlama serves them
-- only for today (/pools), so the pool's latest known value in the build is
-- applied to all of its history. They are assumed not to change over time.
--
-- Incremental: each changed pool's days from its first changed day on
-- (refresh_pools; the upstream features carry their own lookback) and every
-- day of a pool whose latest known static attributes changed. The other
-- pools of the days whose cross-sectional features were rebuilt: on DuckDB
-- their cross-sectional columns are updated in place (post-hook
-- update_cross_section: a back-fill of a few pools does not rewrite every
-- pool's year); on Spark those days are rebuilt for every pool.

{{ config(
    post_hook="{{ update_cross_section(ref('int_pool_days_cross_sectional_features')) }}",
    **incremental_config(['pool_id', 'snapshot_date'])
) }}

{% set from_date = refresh_from_date() %}
{% set daily_model = ref('int_pool_snapshots_downsampled_to_daily') %}
{% set pools = refresh_pools(daily_model) %}

with

daily as (

    select * from {{ daily_model }}

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
        {{ arg_max('is_stablecoin', 'snapshot_date') }}
            filter (where is_stablecoin is not null) as is_stablecoin,
        {{ arg_max('il_risk', 'snapshot_date') }}
            filter (where il_risk is not null) as il_risk,
        {{ arg_max('exposure', 'snapshot_date') }}
            filter (where exposure is not null) as exposure
    from daily
    group by pool_id

),

categorized_attributes as (

    select
        pool_id,
        coalesce(il_risk, 'unknown') as il_risk,
        coalesce(exposure, 'unknown') as exposure,
        case
            when is_stablecoin then 'true'
            when not is_stablecoin then 'false'
            else 'unknown'
        end as stablecoin
    from static_attributes

),

{% if from_date %}
refresh_pools as (

    {{ pools }}

),

changed_pools as (

    -- changed pools whose rows before their first changed day carry other
    -- attributes
    select distinct previous.pool_id
    from {{ this }} as previous
    inner join refresh_pools
        on
            previous.pool_id = refresh_pools.pool_id
            and previous.snapshot_date < refresh_pools.from_date
    inner join categorized_attributes as latest
        on previous.pool_id = latest.pool_id
    where
        previous.il_risk != latest.il_risk
        or previous.exposure != latest.exposure
        or previous.stablecoin != latest.stablecoin

),

{% if not cross_section_in_place() %}
-- (sqlfluff renders the if-blocks apart: changed_days is used in days_to_build)
changed_days as (  -- noqa: ST03

    -- the days int_pool_days_cross_sectional_features rebuilt
    select distinct changed.snapshot_date
    from daily as changed
    inner join refresh_pools
        on
            changed.pool_id = refresh_pools.pool_id
            and changed.snapshot_date >= refresh_pools.from_date
    where changed.snapshot_date >= {{ from_date }}

),
{% endif %}

days_to_build as (

    select daily.*
    from daily
    left join refresh_pools
        on daily.pool_id = refresh_pools.pool_id
    where
        daily.snapshot_date >= refresh_pools.from_date
        {% if not cross_section_in_place() %}
        or daily.snapshot_date in (
            select changed_days.snapshot_date from changed_days
        )
        {% endif %}
        or daily.pool_id in (select changed_pools.pool_id from changed_pools)

),
{% else %}
days_to_build as (

    select * from daily

),
{% endif %}

joined as (

    select
        -- ids
        days_to_build.pool_id,

        -- strings: not features
        days_to_build.symbol,
        days_to_build.pool_meta,

        -- numeric features
        -- (all but the key columns of each joined table, and the state the
        -- expanding statistics carry between refreshes)
        {{ star_except('rolling_features', [
            'pool_id', 'snapshot_date', 'apy_expanding_squared_deviations'
        ]) }},  -- noqa: RF02
        {{ star_except(
            'cross_sectional', ['pool_id', 'snapshot_date']
        ) }},  -- noqa: RF02

        -- categorical features
        coalesce(days_to_build.chain, 'unknown') as chain,  -- noqa: RF04
        coalesce(days_to_build.project, 'unknown') as project,
        categorized_attributes.il_risk,
        categorized_attributes.exposure,
        categorized_attributes.stablecoin,

        -- dates
        days_to_build.snapshot_date

    from days_to_build
    inner join rolling_features
        on
            days_to_build.pool_id = rolling_features.pool_id
            and days_to_build.snapshot_date = rolling_features.snapshot_date
    inner join cross_sectional
        on
            days_to_build.pool_id = cross_sectional.pool_id
            and days_to_build.snapshot_date = cross_sectional.snapshot_date
    left join categorized_attributes
        on days_to_build.pool_id = categorized_attributes.pool_id

),

final as (

    -- day by day: an incremental run reads the newest days, which then sit
    -- together in storage (DuckDB skips the row groups of older days)
    select *
    from {{ rows_to_write('joined', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
