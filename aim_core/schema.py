"""The JSON Schema (2020-12) of a workstream file, generated from the attrs models.

Generated, not written by hand, so the schema and the loader can't disagree.
Unknown fields are allowed (aim warns about them) so existing pipeline files
keep validating.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

import attrs

from aim_core.models import CapabilityPayload, Verify, Workstream

SCHEMA_ID = "https://aim.dev/schemas/workstream-1.json"


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        inner = (
            _type_schema(args[0], defs)
            if len(args) == 1
            else {"anyOf": [_type_schema(a, defs) for a in args]}
        )
        return {"anyOf": [inner, {"type": "null"}]}
    if attrs.has(tp):
        defs.setdefault(tp.__name__, None)
        defs[tp.__name__] = _class_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is tuple or origin is list:
        item = get_args(tp)[0]
        items = _type_schema(item, defs)
        if get_origin(item) is tuple:  # an argument list: the program at least
            items = {**items, "minItems": 1}
        return {"type": "array", "items": items}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    return {}


def _class_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    attrs.resolve_types(cls)
    props: dict[str, Any] = {}
    required = []
    for f in attrs.fields(cls):
        s = _type_schema(f.type, defs)
        meta = f.metadata
        extra = dict(meta.get("schema", {}))
        if extra:
            # constraints apply to the value, not to null
            if "anyOf" in s and len(s["anyOf"]) == 2:
                s["anyOf"][0] = {**s["anyOf"][0], **extra}
            else:
                s = {**s, **extra}
        if meta.get("description"):
            s = {"description": meta["description"], **s}
        props[f.name] = s
        if f.default is attrs.NOTHING:
            required.append(f.name)
    out: dict[str, Any] = {
        "type": "object",
        "description": (cls.__doc__ or "").strip().splitlines()[0],
        "properties": props,
        # unknown fields are warned about, except in `verify`: an unknown check is an error
        "additionalProperties": cls is not Verify,
    }
    if required:
        out["required"] = required
    return out


def workstream_schema() -> dict[str, Any]:
    """The JSON Schema of one workstream file."""
    defs: dict[str, Any] = {}
    _type_schema(CapabilityPayload, defs)
    body = _class_schema(Workstream, defs)
    body["anyOf"] = [{"required": ["capability"]}, {"required": ["tool"]}]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "aim workstream",
        **body,
        "$defs": defs,
    }
