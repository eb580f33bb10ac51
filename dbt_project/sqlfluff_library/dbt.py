"""Lint-time stand-ins for dbt's cross-database macros (`dbt.date_trunc`),
rendered as the DuckDB SQL they compile to."""


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"
