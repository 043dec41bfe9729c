// Parses the generated AsyncAPI documents (docs/protocol/asyncapi.*) with the official
// AsyncAPI parser, as AsyncAPI tooling would, and exits non-zero when it reports an error.
// `make test` runs it after `npm ci` here (node_modules/ is git-ignored).
//
//     node scripts/asyncapi_check/check.mjs [document ...]
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const docsDir = join(root, "docs", "protocol");
const documents = process.argv.length > 2
  ? process.argv.slice(2).map((path) => resolve(path))
  : readdirSync(docsDir)
      .filter((name) => /^asyncapi\.(json|ya?ml)$/.test(name))
      .map((name) => join(docsDir, name));

if (documents.length === 0) {
  console.error(`asyncapi: no asyncapi.json/.yaml in ${relative(root, docsDir)}`);
  process.exit(1);
}

const severity = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([k, v]) => [v, k]));
const parser = new Parser();
let failed = false;
for (const path of documents) {
  const name = relative(root, path);
  const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), { source: path });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  // warnings are printed too, so they are seen, but only errors fail the check
  for (const d of diagnostics.filter((d) => d.severity <= DiagnosticSeverity.Warning)) {
    const where = d.path.length ? d.path.join(".") : "(document)";
    console.error(`${name}: ${severity[d.severity].toLowerCase()}: ${d.code}: ${d.message} at ${where}`);
  }
  if (errors.length > 0 || document === undefined) {
    failed = true;
    console.error(`${name}: ${errors.length} error(s)`);
  } else {
    console.log(`${name}: valid AsyncAPI ${document.version()}`);
  }
}
process.exit(failed ? 1 : 0);
