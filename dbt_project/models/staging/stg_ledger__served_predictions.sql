-- One row per served (or backtest-replayed) prediction: source, pool, hour.
-- depends_on: {{ source('ledger', 'served_predictions') }}
with

served as (
    {{ ledger_rows() }}
),

final as (
    select
        -- ids
        pool_id,
        model_id,
        -- strings
        source,
        predicted_class,
        apy_future_stat,
        -- numerics
        p_keep,
        binned_confidence as served_binned_confidence,
        cutpoint_low,
        cutpoint_high,
        horizon_days,
        apy_drop_threshold,
        min_future_coverage,
        -- booleans
        dead_pool_is_dropped,
        -- dates
        feature_date,
        -- timestamps (as served: text in UTC)
        hour as scored_hour,
        reasons
    from served
)

select * from final
