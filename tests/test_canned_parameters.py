"""Every canned query declares each parameter it uses, with a type the web forms can check."""

import re

import pytest

from nngraph.queries import canned, parameters_of, typed_value


@pytest.mark.parametrize("name", sorted(canned()))
def test_declared_parameters_are_the_used_ones(name):
    query = canned()[name]
    body = "\n".join(line for line in query["text"].splitlines() if not line.startswith("//"))
    assert {p["name"] for p in parameters_of(query)} == set(re.findall(r"\$(\w+)", body))


def test_values_are_typed_from_text():
    limit = {"name": "limit", "type": "integer", "about": ""}
    assert typed_value(limit, "12") == 12
    with pytest.raises(ValueError, match="limit: expected an integer, got 'x'"):
        typed_value(limit, "x")
    assert typed_value({"name": "model", "type": "string or null", "about": ""}, "") is None
    assert typed_value({"name": "version", "type": "tag", "about": ""}, "s0-x1-e01") == "s0-x1-e01"
