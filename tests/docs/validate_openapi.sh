#!/usr/bin/env bash
# Validates an OpenAPI document: swagger-cli (@apidevtools/swagger-cli)
# checks it against the OpenAPI 3.0 schema and resolves every $ref; then
# check_openapi.js checks what swagger-cli checks only for Swagger 2.0
# (operationIds unique, path parameters declared, tags declared).
#
# usage: validate_openapi.sh SPEC NPM_PREFIX
#   SPEC        the document (docs/openapi.yaml)
#   NPM_PREFIX  where the validator is installed, in the build tree; the
#               first run (and any run after package-lock.json changes)
#               installs the exact tree pinned by this folder's
#               package-lock.json with `npm ci` (needs the npm registry)
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 SPEC NPM_PREFIX" >&2
  exit 2
fi
spec=$1
prefix=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "validate_openapi: '$tool' not found; tools/setup-deps installs nodejs and npm" >&2
    exit 1
  fi
done
if [[ ! -f $spec ]]; then
  echo "validate_openapi: no such file: $spec" >&2
  exit 1
fi

bin=$prefix/node_modules/.bin/swagger-cli
stamp=$prefix/installed-package-lock.json
if [[ ! -x $bin ]] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  echo "validate_openapi: installing the pinned validator into $prefix (npm ci)"
  mkdir -p "$prefix"
  cp "$here/package.json" "$here/package-lock.json" "$prefix/"
  rm -f "$stamp"
  if ! npm ci --prefix "$prefix" --no-audit --no-fund --ignore-scripts --loglevel=error; then
    echo "validate_openapi: npm ci failed (is the npm registry reachable?)" >&2
    exit 1
  fi
  cp "$here/package-lock.json" "$stamp"
fi

echo "validate_openapi: node $(node --version), swagger-cli $("$bin" --version)"
# swagger-cli exits non-zero and names the offending path when the document
# is invalid.
if ! "$bin" validate "$spec"; then
  echo "validate_openapi: FAILED: $spec is not a valid OpenAPI document" >&2
  exit 1
fi
# What swagger-cli checks only for Swagger 2.0: unique operationIds, path
# parameters matching the templates, declared tags.
if ! NODE_PATH=$prefix/node_modules node "$here/check_openapi.js" "$spec"; then
  echo "validate_openapi: FAILED: $spec is not a consistent OpenAPI document" >&2
  exit 1
fi
echo "validate_openapi: $spec: OK"
