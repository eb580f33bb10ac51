-- One row per pool per observed day that has a label: the features of day d
-- beside the label of its future window d+1 .. d+H and the label settings.
-- Exported to <data dir>/exports/training_set.parquet after each build.
-- A table rebuilt whole on every training build (a label that turns null
-- takes its row out): `apy-runway train` builds it when the data moved.

{{ config(post_hook="{{ export_to_parquet('training_set') }}") }}

with

features as (

    select * from {{ ref('int_pool_days_featurized') }}

),

labels as (

    select * from {{ ref('int_pool_days_labeled') }}

),

labeled_features as (

    select
        features.*,
        labels.is_apy_kept,
        labels.apy_future,
        labels.future_coverage,
        labels.label_window_end_date,
        labels.horizon_days,
        labels.apy_drop_threshold,
        labels.apy_future_stat,
        labels.min_future_coverage,
        labels.dead_pool_is_dropped
    from features
    inner join labels
        on features.pool_id = labels.pool_id
        and features.snapshot_date = labels.snapshot_date
    where labels.is_apy_kept is not null

),

final as (

    select * from labeled_features
    order by snapshot_date, pool_id

)

select * from final
