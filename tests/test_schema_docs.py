"""The JSON Schemas committed in docs/ are the ones the code exports."""

import pytest

from moeplace.commands.schema import SCHEMAS, schema_text
from tests.conftest import REPO


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_current(name):
    committed = (REPO / "docs" / f"{name}.schema.json").read_text()
    assert committed == schema_text(name), f"regenerate: moeplace schema {name} > docs/{name}.schema.json"
