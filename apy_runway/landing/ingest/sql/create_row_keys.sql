-- The narrow keys of every row of the landed unit: only these are
-- materialised; the rest is re-read from the inputs when the staged and the
-- quarantined rows are written.

create or replace table row_keys (
    file_index integer,
    source_row bigint,
    row_reason varchar,
    parsed_pool varchar,
    parsed_timestamp timestamptz,
    value_hash ubigint
)
