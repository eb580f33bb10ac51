"""The runway board: a static site over the warehouse, the ledger and the hourly document.

build.py reads the inputs and writes data/board/; data.py shapes them (pure);
site/ holds the pages, scripts and the vendored chart library. May import
operations, warehouse, foundation, models_py, inference and libraries; never cli.
"""
