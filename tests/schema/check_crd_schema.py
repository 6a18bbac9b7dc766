#!/usr/bin/env python3
"""Proves that crds/labcluster.yaml and `vmlab validate` agree on structural rules.

The CRD's openAPIV3Schema is checked with an independent validator (Debian's
python3-jsonschema, draft 4, the dialect OpenAPI v3 schemas derive from), seen
the way a Kubernetes API server sees it:
  * strict field validation (kubectl --validate=strict): an unknown field is an
    error, so every object schema that lists properties gets
    additionalProperties: false;
  * the API server's own checks around the CRD schema: apiVersion and kind must
    name this CRD, metadata.name is required, labels and annotations map
    strings to strings.

Two sets of inputs are compared:
  1. The corpus (examples/, tests/fixtures/): each fixture tags with [schema]
     the expected vmlab errors that the CRD schema also enforces. The schema
     must report exactly those fields: no more (vmlab would accept what the API
     server rejects) and no fewer (the tag would be a lie).
  2. Mutations generated from the schema itself: for every field, values at
     and past its range, every enum value and a wrong one, wrong types, null,
     an unknown sibling field and a missing required field. vmlab and the
     schema must flag the same fields for each.

Prints one line per failure and ends with "N passed, N failed".
"""
import argparse
import copy
import glob
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
EXPECT = re.compile(r"^# expect (error|warning) \d+:\d+ (\S+?)( \[schema\])?: ")
VMLAB_LINE = re.compile(r"^(.*?):\d+:\d+: error: (?:(\S+): )?(.*)$")


def field_path(parts):
    """Formats a path like vmlab does: a.b[0]["x.y"]; the root is "-"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = part if PLAIN_KEY.match(part) else f'["{part}"]'
        else:
            out += f".{part}" if PLAIN_KEY.match(part) else f'["{part}"]'
    return out or "-"


def strict(schema):
    """A copy of `schema` where unknown fields are errors, as with strict field validation."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node and \
                "additionalProperties" not in node and \
                not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for child in node.get("properties", {}).values():
            walk(child)
        walk(node.get("items"))

    walk(schema)
    return schema


def structural_problems(schema, path="openAPIV3Schema"):
    """Rules of a structural schema (apiextensions.k8s.io/v1) that a typo would break."""
    problems = []
    if not isinstance(schema, dict):
        return [f"{path}: not a mapping"]
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    for key in schema:
        if key not in {"type", "description", "properties", "items", "required", "enum",
                       "minimum", "maximum", "minLength", "maxLength", "pattern", "format",
                       "default", "nullable", "additionalProperties", "x-kubernetes-list-type",
                       "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields"}:
            problems.append(f"{path}: unexpected keyword {key}")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{path}: required {name} is not a property")
    for name, child in schema.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if "items" in schema:
        problems += structural_problems(schema["items"], f"{path}.items")
    if path == "openAPIV3Schema":
        meta = schema.get("properties", {}).get("metadata", {})
        extra = set(meta.get("properties", {})) - {"name", "generateName"}
        if extra:
            problems.append(f"{path}.metadata: only name and generateName may be restricted, "
                            f"not {sorted(extra)}")
    return problems


def api_server_view(schema, api_version, kind):
    view = strict(schema)
    props = view["properties"]
    view["required"] = sorted(set(view.get("required", [])) | {"apiVersion", "kind", "metadata"})
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    props["metadata"] = {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": schema["properties"]["metadata"]["properties"]["name"],
                       "labels": string_map, "annotations": string_map},
    }
    return view


def schema_error_fields(validator, doc):
    fields = set()
    for error in validator.iter_errors(doc):
        path = list(error.absolute_path)
        if error.validator == "required":
            path.append(re.match(r"'(.+)' is a required property", error.message).group(1))
        elif error.validator == "additionalProperties" and error.validator_value is False:
            allowed = set(error.schema.get("properties", {}))
            fields.update(field_path(path + [key]) for key in error.instance if key not in allowed)
            continue
        fields.add(field_path(path))
    if fields & {"apiVersion", "kind"}:
        # A foreign object is refused for that alone, by the API server and by vmlab.
        fields &= {"apiVersion", "kind"}
    return fields


def vmlab_error_fields(vmlab, path):
    run = subprocess.run([vmlab, "validate", "-q", path], capture_output=True, text=True,
                         timeout=60)
    fields = set()
    for line in run.stderr.splitlines():
        match = VMLAB_LINE.match(line)
        if match:
            fields.add(match.group(2) or "-")
    return run.returncode, fields


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")


def check_corpus(validator, source_dir, report):
    files = sorted(glob.glob(os.path.join(source_dir, "examples", "*.yaml")) +
                   glob.glob(os.path.join(source_dir, "tests", "fixtures", "**", "*.yaml"),
                             recursive=True))
    files = [f for f in files if "/golden/" not in f]
    unloadable = []
    for path in files:
        rel = os.path.relpath(path, source_dir)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        tagged = set()
        for line in text.splitlines():
            match = EXPECT.match(line)
            if match and match.group(1) == "error" and match.group(3):
                tagged.add(match.group(2))
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            report.check(not tagged, f"{rel}: has [schema] expectations but PyYAML cannot load it")
            unloadable.append(f"{rel} ({type(error).__name__})")
            continue
        found = set()
        for doc in docs:
            found |= schema_error_fields(validator, doc)
        report.check(found == tagged,
                     f"{rel}: the CRD schema flags {sorted(found)}, the fixture tags "
                     f"{sorted(tagged)} as [schema]")
    print(f"corpus: {len(files)} files; not loadable by PyYAML, so left to vmlab alone: "
          f"{', '.join(unloadable) or 'none'}")


def leaves(schema, path):
    """(path, schema) of every field below spec."""
    for name, child in schema.get("properties", {}).items():
        yield path + [name], child
        if child.get("type") == "object":
            yield from leaves(child, path + [name])


def set_at(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def drop_at(doc, path):
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def mutations(spec_schema):
    """(description, edit) pairs; edit changes a fresh base document in place."""
    for path, schema in leaves(spec_schema, ["spec"]):
        kind = schema.get("type")
        name = field_path(path)
        if kind == "integer":
            for bound in ("minimum", "maximum"):
                if bound in schema:
                    limit = schema[bound]
                    yield f"{name}={limit}", path, limit
                    yield f"{name}={limit + (1 if bound == 'maximum' else -1)}", path, \
                        limit + (1 if bound == "maximum" else -1)
            yield f"{name}=\"7\"", path, "7"
            yield f"{name}=1.5", path, 1.5
        elif kind == "string":
            for value in schema.get("enum", []):
                yield f"{name}={value}", path, value
            if "enum" in schema:
                yield f"{name}=bogus", path, "bogus"
            yield f"{name}=12345", path, 12345
            yield f"{name}=true", path, True
        elif kind == "boolean":
            yield f"{name}=false", path, False
            yield f"{name}=\"false\"", path, "false"
        elif kind == "object":
            yield f"{name}.bogusField=1", path + ["bogusField"], 1
            yield f"{name}=[]", path, []
        elif kind == "array":
            yield f"{name}=[1]", path, [1]
            yield f"{name}=text", path, "text"
        if kind != "object":
            yield f"{name}=null", path, None


def check_mutations(validator, vmlab, spec_schema, report):
    base = {"apiVersion": "vmlab.io/v1alpha1", "kind": "LabCluster",
            "metadata": {"name": "gen"}, "spec": {"kubernetes": {"version": "1.30.4"}}}
    cases = list(mutations(spec_schema))
    cases.append(("spec.kubernetes.version missing", None, "drop:spec.kubernetes.version"))
    cases.append(("spec.kubernetes missing", None, "drop:spec.kubernetes"))
    cases.append(("spec.kubernetes.version=1.30", ["spec", "kubernetes", "version"], "1.30"))
    cases.append(("metadata.name=Gen", ["metadata", "name"], "Gen"))
    cases.append(("metadata.name too long", ["metadata", "name"], "g" * 21))
    with tempfile.TemporaryDirectory(prefix="vmlab-schema-") as tmp:
        for index, (what, path, value) in enumerate(cases):
            doc = copy.deepcopy(base)
            if isinstance(value, str) and value.startswith("drop:"):
                drop_at(doc, value[5:].split("."))
            else:
                set_at(doc, path, value)
            file = os.path.join(tmp, f"case-{index}.yaml")
            with open(file, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            expected = schema_error_fields(validator, doc)
            code, found = vmlab_error_fields(vmlab, file)
            report.check(found == expected and code == (1 if expected else 0),
                         f"{what}: vmlab flags {sorted(found)} (exit {code}), the CRD schema "
                         f"{sorted(expected)}")
    print(f"mutations: {len(cases)} generated from the schema")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--vmlab", required=True, help="the vmlab binary")
    args = parser.parse_args()

    with open(os.path.join(args.source_dir, "crds", "labcluster.yaml"), encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    report = Report()
    report.check(crd.get("apiVersion") == "apiextensions.k8s.io/v1", "CRD apiVersion")
    report.check(crd.get("kind") == "CustomResourceDefinition", "CRD kind")
    spec = crd["spec"]
    version = spec["versions"][0]
    report.check(crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}",
                 "CRD name is <plural>.<group>")
    schema = version["schema"]["openAPIV3Schema"]
    for problem in structural_problems(schema):
        report.check(False, f"structural schema: {problem}")
    jsonschema.Draft4Validator.check_schema(schema)

    validator = jsonschema.Draft4Validator(
        api_server_view(schema, f"{spec['group']}/{version['name']}", spec["names"]["kind"]))
    check_corpus(validator, args.source_dir, report)
    check_mutations(validator, args.vmlab, schema["properties"]["spec"], report)
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
