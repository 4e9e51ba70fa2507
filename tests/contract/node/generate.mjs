// Generate TypeScript models from docs/asyncapi.yaml with the stock code generator (Modelina);
// prints {models: [names], errors}.
import { readFileSync } from "node:fs";
import { TypeScriptGenerator } from "@asyncapi/modelina";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const { document } = await new Parser().parse(readFileSync(path, "utf8"), { source: path });
const models = await new TypeScriptGenerator({ modelType: "interface" }).generate(document);
process.stdout.write(JSON.stringify({ models: models.map((m) => m.modelName),
  code: models.map((m) => m.result).join("\n") }));
