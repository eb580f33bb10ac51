-- One row per pool per snapshot hour, typed and renamed to snake_case.
-- Ingest quarantined bad rows and keeps one row per pool and hour within a
-- landed file; across files the most recently landed one wins: ingest lists
-- every stored row a later file replaced (superseded_rows), and they are left
-- out here. The uniqueness test below guards that promise. `as_of_date` cuts
-- the history here, so every downstream model is built as if the data ended
-- that day. snapshot_date is the raw store's partition (the UTC day of the
-- timestamp), so a filter on it reads only those days' files.

-- the raw contract's field name is a keyword: quoted the target's way
{% set snapshot_time = adapter.quote('timestamp') %}

with

source as (

    select * from {{ source('defillama', 'pool_snapshots') }}

),

superseded_rows as (

    select * from {{ source('defillama', 'superseded_rows') }}

),

renamed as (

    select
        -- ids
        cast(pool as string) as pool_id,

        -- strings
        cast(chain as string) as chain,
        cast(project as string) as project,
        cast(symbol as string) as symbol,
        cast(poolMeta as string) as pool_meta,
        cast(ilRisk as string) as il_risk,
        cast(exposure as string) as exposure,

        -- numerics
        cast(tvlUsd as double) as tvl_usd,
        cast(apy as double) as apy,
        cast(apyBase as double) as apy_base,
        cast(apyReward as double) as apy_reward,
        cast(landing_order as bigint) as landing_order,

        -- booleans
        cast(stablecoin as boolean) as is_stablecoin,

        -- dates and timestamps (each target pins its session time zone to UTC)
        snapshot_date,
        date_trunc(
            'hour', cast({{ snapshot_time }} as {{ type_timestamp_utc() }})
        ) as snapshot_hour,
        cast({{ snapshot_time }} as {{ type_timestamp_utc() }}) as snapshot_at

    from source

),

current_rows as (

    select renamed.*
    from renamed
    where not exists (
        select 1
        from superseded_rows
        where
            renamed.pool_id = superseded_rows.pool
            and renamed.snapshot_hour = superseded_rows.snapshot_hour
            and renamed.landing_order = superseded_rows.landing_order
    )

),

cut_at_as_of_date as (

    select * from current_rows
    {% if var('as_of_date') %}
    where snapshot_date <= cast('{{ var("as_of_date") }}' as date)
    {% endif %}

)

select * from cut_at_as_of_date
