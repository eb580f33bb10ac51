"""The serving floor: the inference Lambda and the contracts everyone shares.

Lowest floor of the house. Modules here import only the standard library,
numpy, orjson, boto3/botocore and each other; never scikit-learn, scipy,
joblib or pickle (the model is served as plain arrays), never apy_runway or
models_py. contracts.py imports the standard library only.

  contracts.py    the one home of shared facts (raw contract, keys, classes, bins, S3 layout)
  settings.py     the Lambda's settings, built from the environment once
  artefact.py     the chain of trust: metadata.json -> spec (size, sha256, HMAC) -> arrays
  portable.py     the portable model (JSON spec + .npz), validated and evaluated with numpy
  features.py     the binary features file publish writes and the hourly run reads
  reasons.py      top-3 contributions per prediction and their phrases
  validation.py   HTTP bodies and feature rows, errors naming row and field
  scoring.py      probabilities and DefiLlama's shown fields (pure)
  publication.py  the hourly predictions document and lookups (pure)
  service.py      S3 I/O of the core, taking settings and a client as arguments
  handler.py      Lambda entry points: routes, caches, JSON logs (thin)

serverless.yml packages inference/*.py only; numpy and orjson come from the
layer createlayer.sh builds from inference/requirements.lock, boto3 from the
runtime. No pandas here.
"""
