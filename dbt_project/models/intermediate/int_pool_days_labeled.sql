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

densified as (

    select * from {{ ref('int_pool_days_densified') }}

),

data_end as (

    select max(snapshot_date) as data_end_date from densified

),

future_windows as (

    select
        pool_id,
        snapshot_date,
        last_observed_date,
        is_observed,
        apy,
        count(apy) over future_window as future_observed_day_count,
        {% if stat == 'point' %}
        first_value(apy) over horizon_day as apy_future
        {% elif stat == 'mean' %}
        avg(apy) over future_window as apy_future
        {% else %}
        median(apy) over future_window as apy_future
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
        datediff(
            'day', future_windows.last_observed_date, data_end.data_end_date
        ) >= {{ horizon }} as is_pool_dead,
        case
            when future_windows.snapshot_date + {{ horizon }}
                > data_end.data_end_date then null
            when future_windows.apy <= 0 then null
            when future_windows.last_observed_date
                < future_windows.snapshot_date + {{ horizon }}
                then case
                    when datediff(
                        'day',
                        future_windows.last_observed_date,
                        data_end.data_end_date
                    ) < {{ horizon }} then null
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

final as (

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
        cast(snapshot_date + {{ horizon }} as date) as label_window_end_date,
        data_end_date

    from labeled

)

select * from final
