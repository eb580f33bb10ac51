"""dbt's `adapter` context object as sqlfluff's jinja templater sees it (lint
only: sqlfluff renders the models without dbt). The SQL is linted as the
DuckDB target renders it: `dispatch` finds the `duckdb__` implementation of a
macro (then `default__`), as dbt does on the dev target."""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name, macro_namespace=None):
    for prefix in ("duckdb__", "default__"):
        macro = context.resolve_or_missing(prefix + macro_name)
        if callable(macro):
            return macro
    raise LookupError(f"no duckdb__ or default__ implementation of macro {macro_name}")


def quote(identifier):
    return f'"{identifier}"'
