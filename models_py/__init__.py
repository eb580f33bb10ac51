"""Training: split, fold, fit, evaluate, export and write the run folder.

May import the standard library, third-party libraries (scikit-learn, pandas,
matplotlib, jinja2) and `inference`; never apy_runway. It parses no arguments
and knows no project home: callers hand it paths, and its progress goes to
`logging` (errors.TrainingError is the user-fixable error). Files: config,
data, splits, pipelines, recipe, calibration, training, backtest, ablation,
evaluate, export (the portable model), run_folder, report (+ templates/).
"""
