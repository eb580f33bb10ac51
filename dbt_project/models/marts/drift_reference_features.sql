-- The model's inputs when it was trained: every featurized pool-day of the
-- newest var drift_reference_days days (30; inference.contracts'
-- DRIFT_REFERENCE_DAYS, held equal by tests/test_contracts.py) up to the
-- newest feature day. No labels: the drift reference describes what the
-- scorer will be fed, and the labelled training set ends a label horizon
-- before the newest features, so its last days are a month stale by
-- construction. Exported to
-- <data dir>/exports/drift_reference_features.parquet; `apy-runway train`
-- builds the drift reference of the portable spec from it.
-- A table rebuilt whole on every training build.

{{ config(post_hook="{{ export_to_parquet('drift_reference_features') }}") }}

{% set days = var('drift_reference_days') | int %}

with

features as (

    select * from {{ ref('int_pool_days_featurized') }}

),

newest_day as (

    select max(snapshot_date) as newest_date from features

),

final as (

    select features.*
    from features
    cross join newest_day
    where features.snapshot_date > newest_day.newest_date - {{ days }}
    order by features.snapshot_date, features.pool_id

)

select * from final
