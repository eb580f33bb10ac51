-- Fails (one row) when drift_reference_features is empty: training would
-- have no reference to store for the hourly drift check.

with

reference_rows as (

    select count(*) as n_rows from {{ ref('drift_reference_features') }}

)

select n_rows from reference_rows
where n_rows = 0
