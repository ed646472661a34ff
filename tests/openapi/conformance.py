"""Twilio's OpenAPI document for Video v1 (twilio_video_v1.json beside this file, from
twilio/twilio-oai, Apache 2.0) as a check of roomd's answers: an operation's response, by its
status, must have exactly the properties of the document's schema, each of the right type
(nullable where the document says so), enum, pattern and format. Used by the browser suite and
the SDK smoke test on real answers.
"""
import datetime
import json
import os
import re

SPEC = json.load(open(os.path.join(os.path.dirname(__file__), "twilio_video_v1.json")))


def _resolve(schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = SPEC["components"]["schemas"][name]
    return schema


def _problems(value, schema, where):
    schema = _resolve(schema)
    if value is None:
        return [] if schema.get("nullable") or not schema else [f"{where}: null, not nullable"]
    kind = schema.get("type")
    out = []
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: {value!r} is not a string"]
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} not in {schema['enum']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                out.append(f"{where}: {value!r} is not Twilio's date-time")
        if schema.get("format") == "uri" and not re.match(r"^https?://", value):
            out.append(f"{where}: {value!r} is not a URI")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{where}: {value!r} is not an integer")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{where}: {value!r} is not a boolean")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not an array"]
        for i, item in enumerate(value):
            out += _problems(item, schema.get("items", {}), f"{where}[{i}]")
    elif kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        props = schema.get("properties")
        if props is not None:
            missing = sorted(set(props) - set(value))
            extra = sorted(set(value) - set(props))
            if missing:
                out.append(f"{where}: missing {missing}")
            if extra:
                out.append(f"{where}: not in the schema {extra}")
            for key, sub in props.items():
                if key in value:
                    out += _problems(value[key], sub, f"{where}.{key}")
    return out


def problems(method, path, status, body):
    """What is wrong with `body` as the `status` answer of `method path` (a path template of
    the document, e.g. /v1/Recordings/{Sid}); [] when it conforms."""
    op = SPEC["paths"][path][method.lower()]
    response = op["responses"].get(str(status))
    if response is None:
        return [f"{op['operationId']}: status {status} not among {sorted(op['responses'])}"]
    content = response.get("content")
    if content is None:
        return [] if body in (None, b"", "") else [f"{op['operationId']}: a body where none is due"]
    schema = content["application/json"]["schema"]
    return [f"{op['operationId']}: {p}" for p in _problems(body, schema, "body")]
