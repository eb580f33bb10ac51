"""Landing: inputs into the append-only raw store.

generate.py (the embedded demo data), fetch.py (DefiLlama's /chart and /pools),
collect.py (one /pools reply per hour), ingest/ (readers, row classification SQL, the
raw store and its manifest). May import foundation, inference, the standard library
and third-party libraries; never warehouse, operations, board or cli.
"""
