-- One row per pool per observed day: where the pool's apy stands among the
-- pools observed on the same day, within its project and within its chain.
-- Only same-day rows are compared, so a day's values never depend on a later
-- day. A pool alone in its group that day gets null (no peers to rank).

{% set groups = ['project', 'chain'] %}

with

daily as (

    select * from {{ ref('int_pool_snapshots_downsampled_to_daily') }}

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
        median(apy) over same_day_{{ group }} as {{ group }}_apy_median,
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

final as (

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

)

select * from final
