"""apy-runway: the operator's package, in floors (lowest first).

  foundation/  console output and errors, the project home's paths, S3, HTTP
  landing/     generate, fetch, collect, ingest: inputs into the raw store
  warehouse/   the dbt runner, build, leakage checks
  operations/  train, retrain, promote, publish, score, ledger, backtest
  board/       the static runway board
  cli/         the `apy-runway` parser, run-all, refresh, every command's flags
Below them: inference/ (the Lambda) and models_py/ (training). tests/test_architecture.py
checks that no import runs from a lower floor to a higher one.
"""
