"""The serving floor: the inference Lambda and the contracts everyone shares.

Lowest floor of the house. Modules here import only the standard library,
numpy, boto3/botocore and each other (scikit-learn and joblib only inside
artefact.load_verified_model, until the model is served as plain arrays);
never apy_runway or models_py. contracts.py imports the standard library only.

  contracts.py    the one home of shared facts (raw contract, keys, classes, bins, S3 layout)
  settings.py     the Lambda's settings, built from the environment once
  artefact.py     model spec from metadata.json, sha256 / size checks, loading
  validation.py   HTTP bodies and feature rows, errors naming row and field
  scoring.py      probabilities and DefiLlama's shown fields (pure)
  publication.py  the hourly predictions document and lookups (pure)
  service.py      S3 I/O of the core, taking settings and a client as arguments
  handler.py      Lambda entry points: routes, caches, JSON logs (thin)

serverless.yml packages inference/*.py only; the libraries come from the layer
built by createlayer.sh from inference/requirements.txt. No pandas here.
"""
