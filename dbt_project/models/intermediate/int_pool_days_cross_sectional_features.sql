-- One row per pool per observed day: where the pool's apy stands among the
-- pools observed on the same day, within its project and within its chain,
-- and the market regime of the day (the share of the day's pools whose apy
-- fell by more than the label's threshold over 30 days, and their median
-- relative change: each pool's change looks back only). Only same-day rows
-- are compared, so a day's values never depend on a later day. A pool alone
-- in its group that day gets null (no peers to rank).
--
-- Incremental: a late row changes the ranks and medians of every pool of its
-- day, so a refresh rebuilds every pool of the days the changed pools have
-- rows on from their first changed day (refresh_pools; a day depends on that
-- day only: no lookback).

{{ config(**incremental_config(['pool_id', 'snapshot_date'])) }}

{% set groups = ['project', 'chain'] %}
{% set from_date = refresh_from_date() %}
{% set daily_model = ref('int_pool_snapshots_downsampled_to_daily') %}
{% set pools = refresh_pools(daily_model) %}

with

daily as (

    select * from {{ daily_model }}
    {% if from_date %}
    where
        snapshot_date >= {{ from_date }}
        -- the days the changed pools have rows on, from their first one
        and snapshot_date in (
            select changed.snapshot_date
            from {{ daily_model }} as changed
            inner join ({{ pools }}) as refresh_pools
                on
                    changed.pool_id = refresh_pools.pool_id
                    and changed.snapshot_date >= refresh_pools.from_date
            where changed.snapshot_date >= {{ from_date }}
        )
    {% endif %}

),

relative_changes as (

    -- each pool's apy against its own apy 30 days before (looks back only)
    select
        pool_id,
        snapshot_date,
        case
            when apy - apy_change_30d > 0
                then apy / (apy - apy_change_30d) - 1
        end as relative_change_30d
    from {{ ref('int_pool_days_rolling_features') }}
    {% if from_date %}
    where snapshot_date >= {{ from_date }}
    {% endif %}

),

grouped as (

    select
        daily.pool_id,
        daily.snapshot_date,
        daily.apy,
        relative_changes.relative_change_30d,
        coalesce(daily.project, 'unknown') as project_group,
        coalesce(daily.chain, 'unknown') as chain_group
    from daily
    left join relative_changes
        on
            daily.pool_id = relative_changes.pool_id
            and daily.snapshot_date = relative_changes.snapshot_date

),

ranked as (

    select
        pool_id,
        snapshot_date,
        {% for group in groups %}
        -- ranking functions take no frame; the aggregates carry theirs
        percent_rank() over (
            partition by snapshot_date, {{ group }}_group
            order by apy
        ) as apy_{{ group }}_percent_rank_raw,
        count(*) over same_day_{{ group }} as {{ group }}_pool_count,
        {{ median_value('apy') }} over same_day_{{ group }}
            as {{ group }}_apy_median,
        {% endfor %}
        -- the market of the day: every pool observed that day
        avg(
            case
                when relative_change_30d is not null
                    then cast(
                        relative_change_30d < {{ var('apy_drop_threshold') }}
                        as double
                    )
            end
        ) over same_day as market_apy_drop_share_30d,
        {{ median_value('relative_change_30d') }} over same_day
            as market_apy_change_30d_median,
        apy
    from grouped
    window
        {% for group in groups %}
        same_day_{{ group }} as (
            partition by snapshot_date, {{ group }}_group
            rows between unbounded preceding and unbounded following
        ),
        {% endfor %}
        same_day as (
            partition by snapshot_date
            rows between unbounded preceding and unbounded following
        )

),

cross_sectional as (

    select
        -- ids
        pool_id,

        -- numerics
        {% for group in groups %}
        case
            when {{ group }}_pool_count >= 2
                then apy_{{ group }}_percent_rank_raw
        end as apy_{{ group }}_percent_rank,
        case
            when {{ group }}_apy_median > 0
                and {{ group }}_pool_count >= 2
                then apy / {{ group }}_apy_median
        end as apy_{{ group }}_median_ratio,
        {{ group }}_pool_count,
        {% endfor %}
        market_apy_drop_share_30d,
        market_apy_change_30d_median,

        -- dates
        snapshot_date

    from ranked

),

final as (

    -- day by day: see int_pool_days_rolling_features
    select *
    from {{ rows_to_write('cross_sectional', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
