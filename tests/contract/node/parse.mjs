// Parse docs/asyncapi.yaml with the stock AsyncAPI parser; print its diagnostics and every
// message's dereferenced payload schema as JSON (for ajv.mjs).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"), { source: path });
const out = {
  errors: diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message} at ${d.path.join("/")}`),
  warnings: diagnostics.filter((d) => d.severity === 1).map((d) => `${d.code}: ${d.message} at ${d.path.join("/")}`),
  messages: {},
};
if (document) {
  for (const m of document.components().messages().all()) {
    out.messages[m.id()] = m.payload().json();
  }
}
process.stdout.write(JSON.stringify(out));
