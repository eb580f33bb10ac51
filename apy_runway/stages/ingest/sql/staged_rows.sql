-- The rows that pass, in the raw contract's columns and types.
-- <contract_columns>: cast(parsed_<column> as <type>) as <column>, in order.
-- <order_by>: `order by parsed_pool, parsed_timestamp`, or nothing (--no-sort).

select {contract_columns}
from parsed_rows
anti join verdicts using (file_index, source_row)
where row_reason is null
{order_by}
