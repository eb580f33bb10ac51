-- One row per pool: the features of its newest observed day, what the
-- scorer (the Lambda) reads. Pools that stopped reporting keep their last
-- day; the scorer decides by snapshot_date whether a row is fresh enough.
-- Exported to <data dir>/exports/latest_features.parquet after each build.
--
-- Incremental: a pool with days from var refresh_from_date on has its newest
-- day among them; its row is replaced (unique key pool_id). Every other
-- pool's newest day is unchanged.

{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='pool_id',
    on_schema_change='fail',
    post_hook="{{ export_to_parquet('latest_features', 'pool_id') }}",
) }}

{% set from_date = refresh_from_date() %}

with

features as (

    select * from {{ ref('int_pool_days_featurized') }}
    {% if from_date %}
    where snapshot_date >= {{ from_date }}
    {% endif %}

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
