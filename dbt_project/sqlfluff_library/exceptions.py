"""dbt's `exceptions` context object as sqlfluff's jinja templater sees it
(lint only: sqlfluff renders the models without dbt)."""


def raise_compiler_error(message):
    return ""
