-- One row per pool per snapshot hour, typed and renamed to snake_case.
-- Ingest already quarantined bad rows and kept the latest snapshot per hour;
-- the uniqueness test below guards that promise. `as_of_date` cuts the history
-- here, so every downstream model is built as if the data ended that day.

with

source as (

    select * from {{ source('defillama', 'pool_snapshots') }}

),

renamed as (

    select
        -- ids
        cast(pool as varchar) as pool_id,

        -- strings
        cast(chain as varchar) as chain,
        cast(project as varchar) as project,
        cast(symbol as varchar) as symbol,
        cast(poolMeta as varchar) as pool_meta,
        cast(ilRisk as varchar) as il_risk,
        cast(exposure as varchar) as exposure,

        -- numerics
        cast(tvlUsd as double) as tvl_usd,
        cast(apy as double) as apy,
        cast(apyBase as double) as apy_base,
        cast(apyReward as double) as apy_reward,

        -- booleans
        cast(stablecoin as boolean) as is_stablecoin,

        -- dates and timestamps (the profile pins TimeZone = UTC)
        cast(cast("timestamp" as timestamptz) as date) as snapshot_date,
        date_trunc('hour', cast("timestamp" as timestamptz)) as snapshot_hour,
        cast("timestamp" as timestamptz) as snapshot_at

    from source

),

cut_at_as_of_date as (

    select * from renamed
    {% if var('as_of_date') %}
    where snapshot_date <= cast('{{ var("as_of_date") }}' as date)
    {% endif %}

)

select * from cut_at_as_of_date
