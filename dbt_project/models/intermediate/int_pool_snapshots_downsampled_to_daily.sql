-- One row per pool per UTC day that has at least one snapshot.
-- var('daily_downsampling'):
--   last   -> the values of the day's last snapshot (DefiLlama's /chart)
--   mean   -> the mean of the day's snapshots
--   median -> the median of the day's snapshots
-- Strings and static attributes always come from the day's last snapshot.
--
-- Incremental: a day depends on its own snapshots only, so a refresh rebuilds
-- the days of each changed pool from its first changed day on (refresh_pools;
-- no lookback) and replaces them by (pool_id, snapshot_date).

{{ config(**incremental_config(['pool_id', 'snapshot_date'])) }}

{% set from_date = refresh_from_date() %}
{% set pools = refresh_pools(ref('stg_defillama__pool_snapshots')) %}
{% set mode = var('daily_downsampling') %}
{% set measures = ['apy', 'apy_base', 'apy_reward', 'tvl_usd'] %}
{% if mode not in ['last', 'mean', 'median'] %}
    {{ exceptions.raise_compiler_error(
        "var daily_downsampling must be last, mean or median, got '"
        ~ mode ~ "'") }}
{% endif %}

with

snapshots as (

    select staged.*
    from {{ ref('stg_defillama__pool_snapshots') }} as staged
    {% if from_date %}
    -- the changed pools' days from their first changed day (the date
    -- literal lets the raw store's day folders be skipped)
    inner join ({{ pools }}) as refresh_pools
        on
            staged.pool_id = refresh_pools.pool_id
            and staged.snapshot_date >= refresh_pools.from_date
    where staged.snapshot_date >= {{ from_date }}
    {% endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by pool_id, snapshot_date
            order by snapshot_at desc
        ) as recency_rank
    from snapshots

),

aggregated as (

    select
        pool_id,
        snapshot_date,
        {% if mode != 'last' %}
        {% for column in measures %}
        {% if mode == 'median' %}
        {{ median_value(column) }} as {{ column }},
        {% else %}
        mean({{ column }}) as {{ column }},
        {% endif %}
        {% endfor %}
        {% endif %}
        count(*) as snapshot_count,
        max(snapshot_at) as last_snapshot_at
    from snapshots
    group by pool_id, snapshot_date

),

last_of_day as (

    select * from ranked
    where recency_rank = 1

),

joined as (

    select
        -- ids
        aggregated.pool_id,

        -- strings
        last_of_day.chain,
        last_of_day.project,
        last_of_day.symbol,
        last_of_day.pool_meta,
        last_of_day.il_risk,
        last_of_day.exposure,

        -- numerics: `last` keeps the last snapshot's values as they are
        -- (nulls included), the aggregates ignore null snapshots
        {% for column in measures %}
        {{ 'last_of_day' if mode == 'last' else 'aggregated' }}.{{ column }},
        {% endfor %}
        aggregated.snapshot_count,

        -- booleans
        last_of_day.is_stablecoin,

        -- dates and timestamps
        aggregated.snapshot_date,
        aggregated.last_snapshot_at

    from aggregated
    inner join last_of_day
        on aggregated.pool_id = last_of_day.pool_id
        and aggregated.snapshot_date = last_of_day.snapshot_date

),

final as (

    -- day by day: an incremental run reads the newest days, which then sit
    -- together in storage (DuckDB skips the row groups of older days)
    select *
    from {{ rows_to_write('joined', ['pool_id', 'snapshot_date']) }}
    {{ storage_order('snapshot_date, pool_id') }}

)

select * from final
