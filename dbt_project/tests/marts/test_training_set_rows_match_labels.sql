-- Fails when training_set does not hold exactly the labeled pool-days:
-- every non-null label appears once, with the same value, and nothing else.

with

labels as (

    select * from {{ ref('int_pool_days_labeled') }}
    where is_apy_kept is not null

),

training_set as (

    select * from {{ ref('training_set') }}

),

compared as (

    select
        coalesce(labels.pool_id, training_set.pool_id) as pool_id,
        coalesce(labels.snapshot_date, training_set.snapshot_date)
            as snapshot_date,
        labels.is_apy_kept as label_in_labels,
        training_set.is_apy_kept as label_in_training_set
    from labels
    full outer join training_set
        on labels.pool_id = training_set.pool_id
        and labels.snapshot_date = training_set.snapshot_date

)

select * from compared
where label_in_labels is distinct from label_in_training_set
