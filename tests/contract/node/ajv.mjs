// Compile every message payload of docs/asyncapi.yaml (as the stock parser dereferences it)
// with ajv, then validate the cases read from stdin: [{message, payload}, ...]. Prints
// {compiled: [ids], results: [{message, valid, errors}]}.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const path = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"), { source: path });
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length) {
  process.stderr.write(`the parser found ${errors.length} errors\n`);
  process.exit(2);
}
// ajv defaults (strictSchema: an unknown keyword is an error); type lists are plain JSON
// Schema; the parser adds x-parser-schema-id to every schema.
const ajv = new Ajv({ allowUnionTypes: true, allErrors: true });
addFormats(ajv);
ajv.addKeyword("x-parser-schema-id");
const validators = {};
for (const m of document.components().messages().all()) {
  validators[m.id()] = ajv.compile(m.payload().json());
}
const cases = JSON.parse(readFileSync(0, "utf8"));
const results = cases.map(({ message, payload }) => {
  const validate = validators[message];
  const valid = validate(payload);
  return { message, valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
});
process.stdout.write(JSON.stringify({ compiled: Object.keys(validators), results }));
