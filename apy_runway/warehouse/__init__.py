"""The warehouse: dbt over the raw store.

dbt.py (the one dbt runner), build.py (full and incremental builds, exports),
leakage.py (the point-in-time check). May import landing (the raw store's state),
foundation, inference and libraries; never operations, board or cli.
"""
