-- One row per pool per observed day: the forward-looking label, kept apart
-- from the features so the leakage boundary stays testable.
--
-- The future window of day d is the days d+1 .. d+H (H = var horizon_days):
-- today is not part of its own future. apy_future is, by var apy_future_stat,
--   point  = the apy of day d+H exactly (null if that day is missing),
--   mean   = the mean of the observed days among d+1 .. d+H,
--   median = their median.
-- is_apy_kept = 0 when apy_future / apy - 1 < var apy_drop_threshold, else 1.
-- The label is null when
--   * d+H is after the data's last date (the last date of any pool, which
--     is at most var as_of_date): the future is not known yet;
--   * apy <= 0 today: the relative change has no meaning (division by zero,
--     or a sign flip that would turn a drop into a gain);
--   * coverage (observed days among d+1 .. d+H, divided by H) is below var
--     min_future_coverage (mean / median), or day d+H is missing (point);
--   * the pool stops reporting before d+H but has not yet been silent for a
--     full horizon by the data's last date (it may still come back).
-- A dead pool (last observation before d+H, then silent for at least H days
-- while the data goes on) gets 0 when var dead_pool_is_dropped, else null;
-- the coverage rule does not apply to it.
--
-- Incremental: a label of day d reads days d+1 .. d+H, the pool's last
-- observed day and the data's last day. So a refresh from day R rebuilds
--   * every pool's days from R - H (their windows reach the new days),
--   * every pool's days from E - 2H + 1, E the previous build's last day
--     (as the data's end moves, windows pass it and silent pools turn dead),
--   * a pool with new days: its days from L - H + 1, L its last observed day
--     before R (it was silent; its last observed day moves).

{{ config(**incremental_config(['pool_id', 'snapshot_date'])) }}

{% set from_date = refresh_from_date() %}
{% set horizon = var('horizon_days') | int %}
{% set stat = var('apy_future_stat') %}
{% if horizon < 1 %}
    {{ exceptions.raise_compiler_error(
        "var horizon_days must be a positive number of days, got "
        ~ horizon) }}
{% endif %}
{% if stat not in ['point', 'mean', 'median'] %}
    {{ exceptions.raise_compiler_error(
        "var apy_future_stat must be point, mean or median, got '"
        ~ stat ~ "'") }}
{% endif %}

with

{% if from_date %}
all_days as (

    select * from {{ ref('int_pool_days_densified') }}

),

previous_build as (

    select max(snapshot_date) as previous_end_date from {{ this }}

),

rebuild_starts as (

    select
        all_days.pool_id,
        least(
            {{ from_date }} - {{ horizon }},
            coalesce(
                any_value(previous_build.previous_end_date) - 2 * {{ horizon }}
                + 1,
                {{ from_date }}
            ),
            case
                when max(all_days.snapshot_date) >= {{ from_date }}
                    then coalesce(
                        max(all_days.snapshot_date) filter (
                            where all_days.is_observed
                            and all_days.snapshot_date < {{ from_date }}
                        ) - {{ horizon }} + 1,
                        {{ from_date }}
                    )
                else {{ from_date }}
            end
        ) as rebuild_start_date
    from all_days
    cross join previous_build
    group by all_days.pool_id

),

densified as (

    select all_days.*
    from all_days
    inner join rebuild_starts
        on all_days.pool_id = rebuild_starts.pool_id
    where all_days.snapshot_date >= rebuild_starts.rebuild_start_date

),
{% else %}
densified as (

    select * from {{ ref('int_pool_days_densified') }}

),
{% endif %}

data_end as (

    select max(snapshot_date) as data_end_date from densified

),

future_windows as (

    select
        pool_id,
        snapshot_date,
        -- the calendar ends on the pool's last observed day
        max(snapshot_date) over whole_pool as last_observed_date,
        is_observed,
        apy,
        count(apy) over future_window as future_observed_day_count,
        {% if stat == 'point' %}
        first_value(apy) over horizon_day as apy_future
        {% elif stat == 'mean' %}
        avg(apy) over future_window as apy_future
        {% else %}
        {{ median_value('apy') }} over future_window as apy_future
        {% endif %}
    from densified
    window
        future_window as (
            partition by pool_id
            order by snapshot_date
            rows between 1 following and {{ horizon }} following
        ),
        horizon_day as (
            partition by pool_id
            order by snapshot_date
            rows between {{ horizon }} following and {{ horizon }} following
        ),
        whole_pool as (
            partition by pool_id
            rows between unbounded preceding and unbounded following
        )

),

labeled as (

    select
        future_windows.pool_id,
        future_windows.snapshot_date,
        future_windows.apy,
        future_windows.apy_future,
        future_windows.future_observed_day_count / {{ horizon }}
            as future_coverage,
        data_end.data_end_date,
        future_windows.last_observed_date
            < future_windows.snapshot_date + {{ horizon }}
            as is_pool_silent_before_horizon,
        {{ days_between(
            'future_windows.last_observed_date', 'data_end.data_end_date'
        ) }} >= {{ horizon }} as is_pool_dead,
        case
            when future_windows.snapshot_date + {{ horizon }}
                > data_end.data_end_date then null
            when future_windows.apy <= 0 then null
            when future_windows.last_observed_date
                < future_windows.snapshot_date + {{ horizon }}
                then case
                    when {{ days_between(
                        'future_windows.last_observed_date',
                        'data_end.data_end_date'
                    ) }} < {{ horizon }} then null
                    when {{ var('dead_pool_is_dropped') }} then 0
                end
            when future_windows.apy_future is null then null
            {% if stat != 'point' %}
            when future_windows.future_observed_day_count / {{ horizon }}
                < {{ var('min_future_coverage') }} then null
            {% endif %}
            when future_windows.apy_future / future_windows.apy - 1
                < {{ var('apy_drop_threshold') }} then 0
            else 1
        end as is_apy_kept
    from future_windows
    cross join data_end
    where future_windows.is_observed

),

labels as (

    select
        -- ids
        pool_id,

        -- strings: label settings travel with the label
        '{{ stat }}' as apy_future_stat,

        -- numerics
        apy,
        apy_future,
        future_coverage,
        cast(is_apy_kept as integer) as is_apy_kept,
        {{ horizon }} as horizon_days,
        cast({{ var('apy_drop_threshold') }} as double) as apy_drop_threshold,
        cast({{ var('min_future_coverage') }} as double)
            as min_future_coverage,

        -- booleans
        {{ var('dead_pool_is_dropped') }} as dead_pool_is_dropped,
        is_pool_silent_before_horizon and is_pool_dead as is_pool_dead,

        -- dates
        snapshot_date,
        cast(snapshot_date + {{ horizon }} as date) as label_window_end_date

    from labeled

),

final as (

    select *
    from {{ rows_to_write('labels', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
