-- One row per source and confidence bin (1 / 2 / 3): the hit rate of the
-- matured predictions shown in that bin (the bin recomputed by the ONE rule).
with

outcomes as (
    select * from {{ ref('prediction_outcomes') }}
),

final as (
    select
        -- strings
        source,
        -- numerics
        binned_confidence,
        count(*) as served_rows,
        count(is_hit) as matured_rows,
        avg(case when is_hit then 1.0 when not is_hit then 0.0 end)
            as hit_rate,
        avg(p_keep) as mean_p_keep
    from outcomes
    group by source, binned_confidence
)

select * from final
