-- One row per pool: the features of its newest observed day, what the
-- scorer (the Lambda) reads. Pools that stopped reporting keep their last
-- day; the scorer decides by snapshot_date whether a row is fresh enough.
-- Exported to <data dir>/exports/latest_features.parquet after each build.
--
-- Incremental (DuckDB): a pool with days from var refresh_from_date on has
-- its newest day among them; its row is replaced (unique key pool_id). Every
-- other pool's newest day is unchanged. On Spark (no row-level replace on
-- parquet) a table of one row per pool, rebuilt whole.

{{ config(
    post_hook="{{ export_to_parquet('latest_features', 'pool_id') }}",
    **incremental_config(['pool_id'])
) }}

{% set from_date = refresh_from_date() %}

with

features as (

    select * from {{ ref('int_pool_days_featurized') }}
    {% if from_date %}
    where snapshot_date >= {{ from_date }}
    {% endif %}

),

newest_days as (

    select
        pool_id,
        max(snapshot_date) as snapshot_date
    from features
    group by pool_id

),

newest_day_per_pool as (

    select features.*
    from features
    inner join newest_days
        on
            features.pool_id = newest_days.pool_id
            and features.snapshot_date = newest_days.snapshot_date

),

final as (

    select * from newest_day_per_pool
    {{ storage_order('pool_id') }}

)

select * from final
