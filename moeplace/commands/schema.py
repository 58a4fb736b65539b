"""`moeplace schema`: the JSON Schemas of moeplace's file formats."""

from __future__ import annotations

import json

import click

from moeplace.console import Console
from moeplace.errors import InputError


def _plan() -> dict:
    from moeplace.placement.plan import plan_schema

    return plan_schema()


def _manifest() -> dict:
    from moeplace.launch.manifest import Manifest

    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


SCHEMAS = {"plan": _plan, "manifest": _manifest}


def schema_text(name: str) -> str:
    if name not in SCHEMAS:
        raise InputError(f"unknown schema {name!r} (known: {', '.join(SCHEMAS)})", field="NAME")
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True) + "\n"


@click.command()
@click.argument("name", metavar="NAME")
def schema(name: str) -> None:
    """Print the JSON Schema of a file format: plan or manifest.

    \b
    Examples:
      moeplace schema plan > plan.schema.json
      moeplace schema manifest
    """
    Console().line(schema_text(name).rstrip("\n"))
