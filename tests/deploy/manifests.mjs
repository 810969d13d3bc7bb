// Renders deploy/kustomize with a real kustomize and checks every object it
// produces against the Kubernetes schemas, in two passes:
//   1. schema: the JSON schemas of the `kubernetes-models` package (types,
//      required fields, enums, formats), through each model's validate();
//   2. known fields: the same package's TypeScript declarations, with the
//      TypeScript compiler's excess-property check (the JSON schemas allow
//      unknown fields; a typo such as `readinesProbe` would pass them, and the
//      API server would drop the field).
// An object whose apiVersion/kind has no model fails: every object is checked.

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import ts from "typescript";
import YAML from "yaml";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "..", "..");
export const KUSTOMIZE_DIR = path.join(ROOT, "deploy", "kustomize");

// What `kubectl apply -k` users point at: the base and every overlay.
export function kustomizations() {
  const overlays = fs
    .readdirSync(path.join(KUSTOMIZE_DIR, "overlays"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => `overlays/${d.name}`)
    .sort();
  return ["base", ...overlays];
}

// The kustomize the test renders with: `kubectl kustomize` when kubectl embeds
// kustomize v5 or later (kubectl >= 1.27). Older kustomize (Debian 12's
// kubectl 1.20 embeds v2.0.3) rejects the manifests' `resources: [dir]`,
// `patches:` and `envs:`.
export function kustomizeVersion() {
  const out = execFileSync("kubectl", ["version", "--client", "-o", "json"], {
    encoding: "utf8",
  });
  return JSON.parse(out).kustomizeVersion ?? "";
}

export function render(kustomization) {
  const yaml = execFileSync("kubectl", ["kustomize", path.join(KUSTOMIZE_DIR, kustomization)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return parseDocuments(yaml);
}

export function parseDocuments(text) {
  const docs = YAML.parseAllDocuments(text);
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`YAML: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj !== null) objects.push(obj);
  }
  return objects;
}

export function describe(obj) {
  return `${obj?.apiVersion}/${obj?.kind} ${obj?.metadata?.name ?? "(no name)"}`;
}

// The module of a model: kubernetes-models for the built-in API groups,
// @kubernetes-models/cert-manager for cert-manager.io. Null when none is known.
function modelModule(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z]+$/.test(kind)) {
    return null;
  }
  const parts = apiVersion.split("/");
  if (parts.length === 1) return { module: `kubernetes-models/v1/${kind}`, kind };
  const [group, version] = parts;
  if (group === "cert-manager.io") {
    return { module: `@kubernetes-models/cert-manager/${group}/${version}/${kind}`, kind };
  }
  if (group.includes(".") && !group.endsWith(".k8s.io")) return null;
  return { module: `kubernetes-models/${group}/${version}/${kind}`, kind };
}

// Pass 1. Returns a list of error strings (empty: valid).
export async function schemaErrors(obj) {
  const m = modelModule(obj?.apiVersion, obj?.kind);
  if (m === null) return [`${describe(obj)}: no schema for this apiVersion/kind`];
  let Model;
  try {
    Model = (await import(m.module))[m.kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== "function") return [`${describe(obj)}: no schema for this apiVersion/kind`];
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    const details = Array.isArray(e.errors)
      ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message ?? x.keyword}`)
      : [e.message];
    return details.map((d) => `${describe(obj)}: ${d}`);
  }
}

// Pass 2 for many objects at once (one compiler run). Returns one list of
// error strings per object.
export function unknownFieldErrors(objects) {
  // Inside this package, so `kubernetes-models` resolves from node_modules.
  const file = path.join(HERE, `.known-fields-${process.pid}-${randomUUID()}.ts`);
  const lines = [];
  const lineOf = [];
  const result = objects.map(() => []);
  objects.forEach((obj, i) => {
    const m = modelModule(obj?.apiVersion, obj?.kind);
    if (m === null) {
      result[i].push(`${describe(obj)}: no type for this apiVersion/kind`);
      return;
    }
    lines.push(`import type { I${m.kind} as T${i} } from "${m.module}";`);
    lineOf.push(null);
  });
  objects.forEach((obj, i) => {
    if (result[i].length > 0) return;
    // One object literal per line: a diagnostic's line names its object.
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj)};`);
    lineOf.push(i);
  });
  while (lineOf.length < lines.length) lineOf.push(null);
  fs.writeFileSync(file, lines.join("\n") + "\n");
  try {
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
      if (d.file === undefined || d.start === undefined) {
        throw new Error(`TypeScript: ${message}`);
      }
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const i = lineOf[line];
      if (i === null || i === undefined) {
        // An import that does not resolve: a kind the package lacks.
        const m = /T(\d+)/.exec(lines[line] ?? "");
        if (m) {
          result[Number(m[1])].push(`${describe(objects[Number(m[1])])}: no type (${message})`);
          continue;
        }
        throw new Error(`TypeScript, line ${line + 1}: ${message}`);
      }
      result[i].push(`${describe(objects[i])}: ${message}`);
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
  return result;
}

// Both passes over every object; returns every error, prefixed by object.
export async function validateAll(objects) {
  const errors = [];
  for (const obj of objects) errors.push(...(await schemaErrors(obj)));
  for (const list of unknownFieldErrors(objects)) errors.push(...list);
  return errors;
}
