-- One input's keys. value_hash is a 64-bit hash of every contract value: equal
-- hashes at the same pool and timestamp are exact duplicates (a collision
-- could only relabel a superseded row as a duplicate; the kept row is the
-- same either way).
-- <flagged_source>: flag_rows.sql over one input.
-- <parsed_values>: the parsed_<column> of every raw contract column.

insert into row_keys
select
    file_index,
    source_row,
    row_reason,
    parsed_pool,
    parsed_timestamp,
    case when row_reason is null then hash({parsed_values}) end as value_hash
from ({flagged_source}) as flagged
