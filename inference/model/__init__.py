"""The served model: artefact.py (the chain of trust: metadata.json -> spec -> arrays)
and portable.py (the portable model validated and evaluated with numpy alone).
Imports inference.contracts, the standard library and numpy."""
