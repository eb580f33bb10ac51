-- One row per source and prediction month: served ROC AUC, Brier and ECE
-- over the matured predictions (the same definitions as models_py: AUC by
-- mid-ranks, ECE over 10 equal-width bins of p_keep).
with

outcomes as (
    select * from {{ ref('prediction_outcomes') }}
),

matured as (
    select
        source,
        prediction_month,
        p_keep,
        is_apy_kept as kept_label
    from outcomes
    where is_matured
),

ranked as (
    select
        *,
        rank() over (
            partition by source, prediction_month order by p_keep
        ) as value_rank,
        count(*) over (
            partition by source, prediction_month, p_keep
        ) as tied_rows
    from matured
),

scored as (
    select
        source,
        prediction_month,
        count(*) as matured_rows,
        sum(kept_label) as kept_rows,
        count(*) - sum(kept_label) as dropped_rows,
        avg((p_keep - kept_label) * (p_keep - kept_label)) as brier_score,
        sum(
            case
                when kept_label = 1
                    then value_rank + (tied_rows - 1) / 2.0
                else 0
            end
        ) as kept_rank_sum
    from ranked
    group by source, prediction_month
),

calibration_bins as (
    select
        source,
        prediction_month,
        least(cast(floor(p_keep * 10) as integer), 9) as calibration_bin,
        count(*) as bin_rows,
        avg(p_keep) as mean_p_keep,
        avg(kept_label) as observed_keep_rate
    from matured
    group by source, prediction_month, calibration_bin
),

calibration as (
    select
        source,
        prediction_month,
        sum(bin_rows * abs(observed_keep_rate - mean_p_keep))
        / sum(bin_rows) as expected_calibration_error
    from calibration_bins
    group by source, prediction_month
),

served as (
    select
        source,
        prediction_month,
        count(*) as served_rows,
        count(distinct pool_id) as pools
    from outcomes
    group by source, prediction_month
),

final as (
    select
        -- strings
        served.source,
        -- numerics
        served.served_rows,
        served.pools,
        coalesce(scored.matured_rows, 0) as matured_rows,
        case
            when scored.kept_rows > 0 and scored.dropped_rows > 0
                then
                    (
                        scored.kept_rank_sum
                        - scored.kept_rows * (scored.kept_rows + 1) / 2.0
                    )
                    / (
                        cast(scored.kept_rows as double) * scored.dropped_rows
                    )
        end as roc_auc,
        scored.brier_score,
        calibration.expected_calibration_error,
        -- dates
        served.prediction_month
    from served
    left join scored
        on
            served.source = scored.source
            and served.prediction_month = scored.prediction_month
    left join calibration
        on
            served.source = calibration.source
            and served.prediction_month = calibration.prediction_month
)

select * from final
