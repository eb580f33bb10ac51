-- One row per served (or backtest-replayed) prediction: source, pool, hour,
-- with its realised label from the label model once matured.
with

served as (
    select * from {{ ref('stg_ledger__served_predictions') }}
),

labels as (
    select * from {{ ref('int_pool_days_labeled') }}
),

-- the label answering the question the prediction answered: same pool and
-- feature day, same horizon, drop threshold and statistic
joined as (
    select
        served.*,
        labels.is_apy_kept,
        labels.label_window_end_date
    from served
    left join labels
        on
            served.pool_id = labels.pool_id
            and served.feature_date = labels.snapshot_date
            and served.horizon_days = labels.horizon_days
            and served.apy_drop_threshold = labels.apy_drop_threshold
            and served.apy_future_stat = labels.apy_future_stat
),

binned as (
    select
        *,
        {{ predicted_probability('p_keep') }} as predicted_probability
    from joined
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
        predicted_probability,
        {{ confidence_bin(
            'predicted_probability', 'cutpoint_low', 'cutpoint_high'
        ) }} as binned_confidence,
        served_binned_confidence,
        cutpoint_low,
        cutpoint_high,
        is_apy_kept,
        horizon_days,
        apy_drop_threshold,
        -- booleans
        is_apy_kept is not null as is_matured,
        case
            when is_apy_kept is null then null
            when p_keep > 0.5 then is_apy_kept = 1
            else is_apy_kept = 0
        end as is_hit,
        -- dates
        feature_date,
        cast(
            {{ dbt.date_trunc('month', 'feature_date') }} as date
        ) as prediction_month,
        label_window_end_date,
        -- timestamps (as served: text in UTC)
        scored_hour,
        reasons
    from binned
)

select * from final
