-- One row per served (or backtest-replayed) prediction: source, pool, hour.
-- depends_on: {{ source('ledger', 'served_predictions') }}
with

served as (
    {{ ledger_rows() }}
),

final as (
    select
        -- ids
        cast(pool_id as varchar) as pool_id,
        cast(model_id as varchar) as model_id,
        -- strings
        cast(source as varchar) as source,
        cast(predicted_class as varchar) as predicted_class,
        cast(apy_future_stat as varchar) as apy_future_stat,
        -- numerics
        cast(p_keep as double) as p_keep,
        cast(binned_confidence as integer) as served_binned_confidence,
        cast(cutpoint_low as double) as cutpoint_low,
        cast(cutpoint_high as double) as cutpoint_high,
        cast(horizon_days as integer) as horizon_days,
        cast(apy_drop_threshold as double) as apy_drop_threshold,
        cast(min_future_coverage as double) as min_future_coverage,
        -- booleans
        cast(dead_pool_is_dropped as boolean) as dead_pool_is_dropped,
        -- dates
        cast(feature_date as date) as feature_date,
        -- timestamps (as served: text in UTC)
        cast(hour as varchar) as scored_hour,
        reasons
    from served
)

select * from final
