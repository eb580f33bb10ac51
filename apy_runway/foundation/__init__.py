"""The foundation under every command: user-facing errors and progress output
(console.py), the project home and its folders (paths.py), S3 clients and the
local S3 server (s3.py), the HTTP client fetch and collect share (http.py), the
defaults the flags show (defaults.py: standard library only, read by --help).

May import the standard library, third-party libraries and `inference` (for its
contracts); never landing, warehouse, operations, board or cli.
"""
