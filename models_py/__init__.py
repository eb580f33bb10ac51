"""Training: the floor above serving and the foundation.

May import the standard library, third-party libraries (scikit-learn, pandas,
matplotlib, jinja2), `inference` (contracts, artefact helpers) and
`apy_runway.foundation`; never apy_runway.stages or apy_runway.cli.

  config.py         model settings (label settings come from the training set's columns)
  data.py           load and validate the exported training set; the model matrix
  splits.py         date splits and walk-forward folds, purged by the label window
  pipelines.py      one scikit-learn Pipeline per model
  evaluate.py       metrics, by-pool bootstrap CI, cut-points, hit rate per bin
  training.py       fit and compare every model; choose the production model
  run_folder.py     runs/<run_id>/: model.joblib + metadata.json, hash check, latest link
  report.py         report.md (prose in templates/report.md.j2) and its plots
  explore_labels.py retrain under each label variant (label_variants.md)
  train.py          the `apy-runway train` command
"""
