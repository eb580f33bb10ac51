-- Fails with every label whose future window d+1 .. d+H reaches past the
-- data's last date, and with every label in the last H days of a pool still
-- reporting on that date: those futures are not known yet.

with

labels as (

    select * from {{ ref('int_pool_days_labeled') }}

),

data_end as (

    select max(snapshot_date) as data_end_date from labels

),

pool_spans as (

    select
        pool_id,
        max(snapshot_date) as last_observed_date
    from labels
    group by pool_id

),

violations as (

    select labels.*
    from labels
    inner join pool_spans
        on labels.pool_id = pool_spans.pool_id
    cross join data_end
    where labels.is_apy_kept is not null
        and (
            labels.snapshot_date + labels.horizon_days > data_end.data_end_date
            or (
                pool_spans.last_observed_date = data_end.data_end_date
                and labels.snapshot_date
                > pool_spans.last_observed_date - labels.horizon_days
            )
        )

)

select * from violations
