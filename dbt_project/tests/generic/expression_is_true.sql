{% test expression_is_true(model, expression) %}
-- Fails with every row where the boolean expression is false or null. To check
-- only some rows, use dbt's test config `where:` (dbt filters `model` itself).
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
