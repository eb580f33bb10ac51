-- One row per pool per observed day: backward-looking features of the pool's
-- own history (rolling, expanding, changes, age). Every window is computed
-- on the densified calendar, so `rows between N-1 preceding and current row`
-- covers exactly the calendar days (d-N, d]; "n days ago" is exactly day d-n
-- (null when that day is missing). Aggregates ignore the null gap days.
-- Nothing here reads a later day: the leakage test builds with and without
-- an as_of_date cut and compares every column.

-- Window lengths are part of the column names (and of the feature contract in
-- marts/_marts__models.yml), so they are constants here, not vars.
{% set windows = [7, 14, 30, 90] %}
{% set change_days = [1, 7, 30] %}

with

densified as (

    select * from {{ ref('int_pool_days_densified') }}

),

prepared as (

    select
        *,
        case
            when apy > 0 then apy_reward / apy
        end as apy_reward_share,
        case when is_observed then 1 else 0 end as observed_flag
    from densified

),

windowed as (

    select
        pool_id,
        snapshot_date,
        first_observed_date,
        is_observed,
        apy,
        apy_base,
        apy_reward,
        tvl_usd,
        apy_reward_share,

        {% for n in windows %}
        avg(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_mean,
        stddev_samp(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_std,
        median(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_median,
        min(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_min,
        max(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_max,
        avg(apy_base) over rolling_{{ n }}d as apy_base_rolling_{{ n }}d_mean,
        stddev_samp(apy_base) over rolling_{{ n }}d
            as apy_base_rolling_{{ n }}d_std,
        sum(observed_flag) over rolling_{{ n }}d / {{ n }}
            as observed_day_rolling_{{ n }}d_share,
        {% endfor %}

        {% for n in change_days %}
        first_value(apy) over days_ago_{{ n }}d as apy_{{ n }}d_ago,
        first_value(tvl_usd) over days_ago_{{ n }}d as tvl_usd_{{ n }}d_ago,
        {% if n > 1 %}
        first_value(apy_reward_share) over days_ago_{{ n }}d
            as apy_reward_share_{{ n }}d_ago,
        {% endif %}
        {% endfor %}

        avg(apy) over expanding as apy_expanding_mean,
        stddev_samp(apy) over expanding as apy_expanding_std,
        sum(observed_flag) over expanding as observed_day_count

    from prepared
    window
        {% for n in windows %}
        rolling_{{ n }}d as (
            partition by pool_id
            order by snapshot_date
            rows between {{ n - 1 }} preceding and current row
        ),
        {% endfor %}
        {% for n in change_days %}
        days_ago_{{ n }}d as (
            partition by pool_id
            order by snapshot_date
            rows between {{ n }} preceding and {{ n }} preceding
        ),
        {% endfor %}
        expanding as (
            partition by pool_id
            order by snapshot_date
            rows between unbounded preceding and current row
        )

),

derived as (

    select
        -- ids
        pool_id,

        -- numerics: the day's values
        apy,
        apy_base,
        apy_reward,
        tvl_usd,
        case when tvl_usd >= 0 then ln(1 + tvl_usd) end as tvl_usd_log,
        apy_reward_share,

        -- numerics: expanding
        apy_expanding_mean,
        apy_expanding_std,
        case
            when apy_expanding_mean > 0 then apy / apy_expanding_mean - 1
        end as apy_relative_to_expanding_mean,

        -- numerics: rolling
        {% for n in windows %}
        apy_rolling_{{ n }}d_mean,
        apy_rolling_{{ n }}d_std,
        apy_rolling_{{ n }}d_median,
        apy_rolling_{{ n }}d_min,
        apy_rolling_{{ n }}d_max,
        case
            when apy_rolling_{{ n }}d_mean > 0
                then apy / apy_rolling_{{ n }}d_mean - 1
        end as apy_relative_to_rolling_{{ n }}d_mean,
        apy_base_rolling_{{ n }}d_mean,
        apy_base_rolling_{{ n }}d_std,
        {% endfor %}

        -- numerics: changes against exactly day d-n
        {% for n in change_days %}
        apy - apy_{{ n }}d_ago as apy_change_{{ n }}d,
        case
            when tvl_usd_{{ n }}d_ago > 0
                then tvl_usd / tvl_usd_{{ n }}d_ago - 1
        end as tvl_usd_change_{{ n }}d,
        {% if n > 1 %}
        apy_reward_share - apy_reward_share_{{ n }}d_ago
            as apy_reward_share_change_{{ n }}d,
        {% endif %}
        {% endfor %}

        -- numerics: history length and coverage
        datediff('day', first_observed_date, snapshot_date) as pool_age_days,
        cast(observed_day_count as integer) as observed_day_count,
        {% for n in windows %}
        observed_day_rolling_{{ n }}d_share,
        {% endfor %}

        -- dates
        snapshot_date

    from windowed
    where is_observed

)

select * from derived
