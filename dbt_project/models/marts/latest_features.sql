-- One row per pool: the features of its newest observed day, what the
-- scorer (the Lambda) reads. Pools that stopped reporting keep their last
-- day; the scorer decides by snapshot_date whether a row is fresh enough.
-- Exported to <data dir>/exports/latest_features.parquet after each build.

{{ config(post_hook="{{ export_to_parquet('latest_features') }}") }}

with

features as (

    select * from {{ ref('int_pool_days_featurized') }}

),

newest_day_per_pool as (

    select * from features
    qualify row_number() over (
        partition by pool_id
        order by snapshot_date desc
        rows between unbounded preceding and unbounded following
    ) = 1

),

final as (

    select * from newest_day_per_pool
    order by pool_id

)

select * from final
