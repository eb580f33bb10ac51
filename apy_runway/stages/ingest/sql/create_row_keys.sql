-- The narrow keys of every input row: only these are materialised; the rest is
-- re-read from the inputs when the two output files are written.

create table row_keys (
    file_index integer,
    source_row bigint,
    row_reason varchar,
    parsed_pool varchar,
    parsed_timestamp timestamptz,
    value_hash ubigint
)
