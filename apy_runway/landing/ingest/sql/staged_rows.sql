-- The rows of the landed unit that pass, in the raw store's columns: the raw
-- contract, the landing order of the file each row came from, and the UTC
-- day (the partition the row is written to).
-- <contract_columns>: cast(parsed_<column> as <type>) as <column>, in order.

select
    {contract_columns},
    cast(parsed_rows.file_index as bigint) as landing_order,
    cast(parsed_rows.parsed_timestamp as date) as snapshot_date
from parsed_rows
anti join verdicts
    on
        parsed_rows.file_index = verdicts.file_index
        and parsed_rows.source_row = verdicts.source_row
where parsed_rows.row_reason is null
