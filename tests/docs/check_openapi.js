// Checks of an OpenAPI 3.0 document that schema validation does not make
// (swagger-parser checks Swagger 2.0 documents semantically, OpenAPI 3
// documents only against the schema):
// - operationIds are unique;
// - every {name} in a path template is declared as a required path
//   parameter of each of its operations, and every path parameter appears
//   in the template;
// - parameters are unique per (name, in) within an operation;
// - every tag an operation uses is declared;
// - every example of a parameter, request body or response (media type
//   `example` and `examples`) is valid against its schema, so the examples
//   in the document cannot drift from the schemas.
//
// usage: node check_openapi.js SPEC   (NODE_PATH must reach swagger-parser)

"use strict";

const SwaggerParser = require("@apidevtools/swagger-parser");
const Ajv = require("ajv");

// OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4/5; Ajv knows its
// `nullable`. Formats (uuid, int64, date-time) are documentation here, and
// OpenAPI's own keywords (example, ...) are not JSON Schema: not strict.
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
const compiled = new Map();

function checkExample(errors, where, schema, value) {
  if (!schema) return;
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(value)) {
    let why = validate.errors.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    if (why.length > 500) why = why.slice(0, 500) + " ...";
    errors.push(`${where}: example does not match its schema: ${why}`);
  }
}

function checkMediaTypes(errors, where, content) {
  let n = 0;
  for (const [type, media] of Object.entries(content || {})) {
    if (media.example !== undefined) {
      checkExample(errors, `${where} ${type}`, media.schema, media.example);
      n++;
    }
    for (const [name, ex] of Object.entries(media.examples || {})) {
      if (ex.value !== undefined) {
        checkExample(errors, `${where} ${type} example '${name}'`, media.schema, ex.value);
        n++;
      }
    }
  }
  return n;
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node check_openapi.js SPEC");
    process.exit(2);
  }
  // Resolves every $ref (and fails on a dangling one).
  const api = await SwaggerParser.dereference(file);
  const errors = [];
  const operationIds = new Map();
  const declaredTags = new Set((api.tags || []).map((t) => t.name));
  let examples = 0;

  for (const [path, item] of Object.entries(api.paths || {})) {
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const where = `${method.toUpperCase()} ${path}`;

      if (op.operationId) {
        if (operationIds.has(op.operationId)) {
          errors.push(`${where}: operationId '${op.operationId}' is also used by ${operationIds.get(op.operationId)}`);
        } else {
          operationIds.set(op.operationId, where);
        }
      }

      // Operation parameters override path-item ones with the same name and location.
      const params = new Map();
      for (const p of item.parameters || []) params.set(`${p.in}:${p.name}`, p);
      const seen = new Set();
      for (const p of op.parameters || []) {
        const key = `${p.in}:${p.name}`;
        if (seen.has(key)) errors.push(`${where}: parameter '${p.name}' (in ${p.in}) is declared twice`);
        seen.add(key);
        params.set(key, p);
      }
      for (const name of templated) {
        const p = params.get(`path:${name}`);
        if (!p) errors.push(`${where}: path template parameter '{${name}}' is not declared`);
        else if (p.required !== true) errors.push(`${where}: path parameter '${name}' must be required: true`);
      }
      for (const p of params.values()) {
        if (p.in === "path" && !templated.includes(p.name)) {
          errors.push(`${where}: path parameter '${p.name}' does not appear in the path`);
        }
      }

      for (const t of op.tags || []) {
        if (!declaredTags.has(t)) errors.push(`${where}: tag '${t}' is not declared in the top-level tags`);
      }
      if (!op.responses || Object.keys(op.responses).length === 0) {
        errors.push(`${where}: no responses`);
      }

      for (const p of params.values()) {
        if (p.example !== undefined) {
          checkExample(errors, `${where} parameter '${p.name}'`, p.schema, p.example);
          examples++;
        }
      }
      if (op.requestBody) examples += checkMediaTypes(errors, `${where} request body`, op.requestBody.content);
      for (const [status, resp] of Object.entries(op.responses || {})) {
        examples += checkMediaTypes(errors, `${where} response ${status}`, resp.content);
      }
    }
  }

  // Every component schema must compile (e.g. `nullable` needs a `type`).
  for (const [name, schema] of Object.entries((api.components && api.components.schemas) || {})) {
    try {
      if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
    } catch (e) {
      errors.push(`components.schemas.${name}: ${e.message}`);
    }
  }

  if (errors.length) {
    for (const e of errors) console.error(`check_openapi: ${e}`);
    console.error(`check_openapi: ${errors.length} problem(s) in ${file}`);
    process.exit(1);
  }
  console.log(
    `check_openapi: ${file}: ${operationIds.size} operations, ids unique, path parameters consistent, ` +
      `${examples} examples valid`,
  );
}

main().catch((e) => {
  console.error(`check_openapi: ${e.message || e}`);
  process.exit(1);
});
