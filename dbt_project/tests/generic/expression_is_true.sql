{% test expression_is_true(model, expression, where=none) %}
-- Fails with every row where the boolean expression is false or null.
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% if where %}and ({{ where }}){% endif %}
{% endtest %}
