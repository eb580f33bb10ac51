-- One row per pool per observed day: backward-looking features of the pool's
-- own history (rolling, expanding, changes, age). Every window is computed
-- on the densified calendar, so `rows between N-1 preceding and current row`
-- covers exactly the calendar days (d-N, d]; "n days ago" is exactly day d-n
-- (null when that day is missing). Aggregates ignore the null gap days.
-- Nothing here reads a later day: the leakage test builds with and without
-- an as_of_date cut and compares every column.
--
-- Incremental: each changed pool's days from its first changed day on
-- (refresh_pools) are rebuilt from a lookback of the longest window (90
-- days). The expanding statistics need all of a pool's history, so they
-- carry their state instead: the count,
-- mean and sum of squared deviations of each pool's last day before the
-- refresh (kept in this table), combined with the statistics of the days
-- since (Chan et al.'s parallel update; exact up to floating-point order).

{{ config(**incremental_config(['pool_id', 'snapshot_date'])) }}

-- Window lengths are part of the column names (and of the feature contract in
-- marts/_marts__models.yml), so they are constants here, not vars.
{% set windows = [7, 14, 30, 90] %}
{% set change_days = [1, 7, 30] %}
{% set lookback_days = windows | max - 1 %}
{% set from_date = refresh_from_date() %}
{% set pools = refresh_pools(ref('int_pool_days_densified')) %}

with

densified as (

    {% if from_date %}
    select
        calendar.*,
        refresh_pools.from_date as pool_from_date
    from {{ ref('int_pool_days_densified') }} as calendar
    inner join ({{ pools }}) as refresh_pools
        on
            calendar.pool_id = refresh_pools.pool_id
            and calendar.snapshot_date
            >= refresh_pools.from_date - {{ lookback_days }}
    where calendar.snapshot_date >= {{ from_date }} - {{ lookback_days }}
    {% else %}
    select * from {{ ref('int_pool_days_densified') }}
    {% endif %}

),

{% if from_date %}
-- (sqlfluff renders the two if-blocks apart: prior_state is used in `expanded`)
prior_state as (  -- noqa: ST03

    -- each pool's expanding statistics on its last day before the refresh
    select
        previous.pool_id,
        {{ arg_max('previous.observed_day_count', 'previous.snapshot_date') }}
            as prior_count,
        {{ arg_max('previous.apy_expanding_mean', 'previous.snapshot_date') }}
            as prior_mean,
        {{ arg_max(
            'previous.apy_expanding_squared_deviations',
            'previous.snapshot_date'
        ) }} as prior_squared_deviations
    from {{ this }} as previous
    inner join ({{ pools }}) as refresh_pools
        on
            previous.pool_id = refresh_pools.pool_id
            and previous.snapshot_date < refresh_pools.from_date
    group by previous.pool_id

),
{% endif %}

prepared as (

    select
        *,
        case
            when apy > 0 then apy_reward / apy
        end as apy_reward_share,
        case when is_observed then 1 else 0 end as observed_flag,
        -- the apy the expanding statistics read: every day in a full build,
        -- the days from the refresh date on in an incremental one
        {% if from_date %}
        case when snapshot_date >= pool_from_date then apy end
        {% else %}
        apy
        {% endif %} as expanding_apy
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
        {% if from_date %}
        pool_from_date,
        {% endif %}

        {% for n in windows %}
        avg(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_mean,
        stddev_samp(apy) over rolling_{{ n }}d as apy_rolling_{{ n }}d_std,
        {{ median_value('apy') }} over rolling_{{ n }}d
            as apy_rolling_{{ n }}d_median,
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

        -- expanding over expanding_apy (all of history in a full build; the
        -- days since the refresh date in an incremental one)
        avg(expanding_apy) over expanding as since_mean,
        var_pop(expanding_apy) over expanding
            * count(expanding_apy) over expanding as since_squared_deviations,
        count(expanding_apy) over expanding as since_count

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

expanded as (

    -- the expanding statistics of all history up to the day
    {% if from_date %}
    -- prior state (a) + the days since the refresh date (b):
    -- n = na + nb, mean = ma + (mb - ma) nb / n,
    -- m2 = m2a + m2b + (mb - ma)^2 na nb / n
    -- (the days read for the lookback only are left out here)
    select
        windowed.*,
        coalesce(prior_state.prior_count, 0) as prior_count,
        prior_state.prior_mean,
        prior_state.prior_squared_deviations
    from windowed
    left join prior_state
        on windowed.pool_id = prior_state.pool_id
    where windowed.snapshot_date >= windowed.pool_from_date
    {% else %}
    select
        *,
        0 as prior_count,
        cast(null as double) as prior_mean,
        cast(null as double) as prior_squared_deviations
    from windowed
    {% endif %}

),

combined as (

    select
        *,
        prior_count + since_count as observed_day_count,
        case
            when since_count = 0 then prior_mean
            when prior_count = 0 then since_mean
            else prior_mean + (since_mean - prior_mean)
                * since_count / (prior_count + since_count)
        end as apy_expanding_mean,
        case
            when since_count = 0 then prior_squared_deviations
            when prior_count = 0 then since_squared_deviations
            else prior_squared_deviations + since_squared_deviations
                + (since_mean - prior_mean) * (since_mean - prior_mean)
                * prior_count * since_count / (prior_count + since_count)
        end as apy_expanding_squared_deviations
    from expanded

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

        -- numerics: expanding (the sum of squared deviations is the state a
        -- refresh carries on, not a feature)
        apy_expanding_mean,
        case
            when observed_day_count >= 2
                then sqrt(
                    apy_expanding_squared_deviations / (observed_day_count - 1)
                )
        end as apy_expanding_std,
        apy_expanding_squared_deviations,
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
        {{ days_between('first_observed_date', 'snapshot_date') }}
            as pool_age_days,
        cast(observed_day_count as integer) as observed_day_count,
        {% for n in windows %}
        observed_day_rolling_{{ n }}d_share,
        {% endfor %}

        -- dates
        snapshot_date

    from combined
    where is_observed

),

final as (

    -- day by day: an incremental run reads the newest days, which then sit
    -- together in storage (DuckDB skips the row groups of older days)
    select *
    from {{ rows_to_write('derived', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
