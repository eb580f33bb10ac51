"""apy-runway: the CLI package, in floors (lowest first; no module imports a
floor above its own, and no importlib hides an edge: tests/test_architecture.py
walks every import, including those inside functions).

  inference/               serving: contracts.py (standard library only), then the Lambda's code
  apy_runway/foundation/   errors and progress output, paths, S3 helpers, the dbt runner
  models_py/               training: split, folds, models, evaluation, the run folder
  apy_runway/stages/       the data stages: generate, fetch, ingest, build, publish, score,
                           check-leakage
  apy_runway/cli.py        the `apy-runway` command, wiring the stages (run_all.py chains them)
"""
