-- The landed unit's rejected rows as their input text, with the reason and
-- where they came from.
-- <text_columns>: input_rows.<column> of every raw contract column.
-- <ingested_at>: the ingest's start time as a timestamptz literal.

select
    {text_columns},
    input_rows.extra_fields,
    verdicts.reason,
    input_rows.source_file,
    input_rows.source_row,
    cast(input_rows.file_index as bigint) as landing_order,
    {ingested_at} as ingested_at
from input_rows
inner join verdicts
    on
        input_rows.file_index = verdicts.file_index
        and input_rows.source_row = verdicts.source_row
order by input_rows.file_index, input_rows.source_row
