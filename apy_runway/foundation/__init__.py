"""The foundation under training and the data stages: user-facing errors and
progress output (console.py), the project home and its folders (paths.py),
S3 clients and the local S3 server (s3.py), and the dbt runner (dbt.py).

May import the standard library, third-party libraries and `inference`
(for its contracts); never models_py, apy_runway.stages or apy_runway.cli.
"""
