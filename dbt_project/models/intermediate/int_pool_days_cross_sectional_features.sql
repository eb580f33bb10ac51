-- One row per pool per observed day: where the pool's apy stands among the
-- pools observed on the same day, within its project and within its chain.
-- Only same-day rows are compared, so a day's values never depend on a later
-- day. A pool alone in its group that day gets null (no peers to rank).
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

grouped as (

    select
        pool_id,
        snapshot_date,
        apy,
        coalesce(project, 'unknown') as project_group,
        coalesce(chain, 'unknown') as chain_group
    from daily

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
        apy
    from grouped
    window
        {% for group in groups %}
        same_day_{{ group }} as (
            partition by snapshot_date, {{ group }}_group
            rows between unbounded preceding and unbounded following
        ){{ ',' if not loop.last }}
        {% endfor %}

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
