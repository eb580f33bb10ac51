-- Fails when training_set is empty or holds only one class: a model cannot
-- be trained on it (too little history for the horizon, or a threshold that
-- labels every day alike). One row with the counts when it fails.

with

training_set as (

    select * from {{ ref('training_set') }}

),

counted as (

    select
        count(*) as row_count,
        count(distinct is_apy_kept) as class_count
    from training_set

)

select * from counted
where row_count = 0 or class_count < 2
