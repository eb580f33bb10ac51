-- The typed values of one input + the per-row quarantine reason (null = the
-- row itself is fine). Reasons are checked in this order; the first wins.
-- <parsed_source>: the typed parse of one input (readers.parse_sql).
-- <min_timestamp>, <max_timestamp>: the plausible snapshot times (timestamptz
-- literals: contracts.RAW_MIN_TIMESTAMP, the ingest's time + a day).
-- <apy_min>, <apy_max>, <tvl_max>: contracts.RAW_APY_RANGE, RAW_TVL_RANGE.

select
    * exclude (
        has_tvl, has_apy, has_apy_base, has_apy_reward, is_epoch_without_unit
    ),
    case
        when is_epoch_without_unit then 'epoch_timestamp_without_unit'
        when
            parsed_timestamp is null or not isfinite(parsed_timestamp)
            then 'unparseable_timestamp'
        when
            parsed_timestamp < {min_timestamp}
            or parsed_timestamp > {max_timestamp}
            then 'timestamp_out_of_range'
        when parsed_pool is null then 'missing_pool_id'
        when not has_apy then 'missing_apy'
        when
            parsed_apy is null
            or (has_apy_base and parsed_apybase is null)
            or (has_apy_reward and parsed_apyreward is null)
            then 'non_numeric_apy'
        when
            not isfinite(parsed_apy)
            or not isfinite(coalesce(parsed_apybase, 0))
            or not isfinite(coalesce(parsed_apyreward, 0))
            then 'non_finite_apy'
        when
            parsed_apy not between {apy_min} and {apy_max}
            or parsed_apybase not between {apy_min} and {apy_max}
            or parsed_apyreward not between {apy_min} and {apy_max}
            then 'apy_out_of_range'
        when
            has_tvl and (parsed_tvlusd is null or not isfinite(parsed_tvlusd))
            then 'non_numeric_tvl'
        when parsed_tvlusd < 0 then 'negative_tvl'
        when parsed_tvlusd > {tvl_max} then 'tvl_out_of_range'
    end as row_reason
from ({parsed_source}) as parsed
