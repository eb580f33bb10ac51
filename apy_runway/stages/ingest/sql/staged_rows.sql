-- The rows that pass, in the raw contract's columns and types.
-- <contract_columns>: cast(parsed_<column> as <type>) as <column>, in order.
-- <order_by>: `order by parsed_rows.parsed_pool, parsed_rows.parsed_timestamp`,
-- or nothing (--no-sort).

select {contract_columns}
from parsed_rows
anti join verdicts
    on
        parsed_rows.file_index = verdicts.file_index
        and parsed_rows.source_row = verdicts.source_row
where parsed_rows.row_reason is null
{order_by}
