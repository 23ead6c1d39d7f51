#!/usr/bin/env python3
"""Prints the operations of an OpenAPI document as JSON, for the route-table
check (openapi_test.cc): [{"method": "GET", "path": "/v1/log",
"query": ["from_position", "limit"]}, ...], query parameters sorted, path-level
and operation-level parameters merged, local $refs resolved.

usage: openapi_routes.py SPEC
"""
import json
import sys

import yaml

METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            sys.exit(f"openapi_routes: only local $refs are supported: {ref}")
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: openapi_routes.py SPEC")
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    out = []
    for path, item in doc["paths"].items():
        shared = [resolve(doc, p) for p in item.get("parameters", [])]
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = shared + [resolve(doc, p) for p in op.get("parameters", [])]
            query = sorted({p["name"] for p in params if p.get("in") == "query"})
            out.append({"method": method.upper(), "path": path, "query": query})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
