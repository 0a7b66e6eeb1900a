// The TypeBox schema's own errors, with field paths: loaded only to explain a
// spec the generated checks (spec/generated/) refused, since TypeBox costs a
// process ~20 MB RSS (validate.ts, feeds.ts).
import { Compile } from "typebox/compile";
import { Settings } from "typebox/system";
import type { FieldError } from "../crds/schema/common.ts";
import { CrawlJobSpec } from "../crds/schema/crawljob.ts";
import { FeedOptions, StorageSpec } from "../crds/schema/feeds.ts";
import type { FeedSchemaChecks } from "./feed-checks.ts";
import { scrapyHint } from "./scrapy-keys.ts";

const checkSpec = Compile(CrawlJobSpec);
const checkOptions = Compile(FeedOptions);
const checkStorage = Compile(StorageSpec);

/** `/spider/extract/0/fields/price` -> `spec.spider.extract[0].fields.price` */
function pointerToPath(base: string, pointer: string): string {
  let out = base;
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    out += /^\d+$/.test(part)
      ? `[${part}]`
      : /^[A-Za-z_$][\w$-]*$/.test(part)
        ? `.${part}`
        : `[${JSON.stringify(part)}]`;
  }
  return out;
}

/** The CrawlJob spec's schema errors, except under spec.feeds and spec.storage (FEED_SCHEMA_CHECKS has better messages there). */
export function crawlJobSchemaErrors(spec: unknown): FieldError[] {
  if (checkSpec.Check(spec)) return [];
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  const add = (path: string, message: string) => {
    if (/^spec\.(feeds|storage)\b/.test(path)) return;
    const key = `${path}\0${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    errors.push({ path, message });
  };
  // TypeBox stops after 8 errors by default (a process-wide setting): lift the
  // cap while collecting, so every problem is listed, then put it back.
  const previous = Settings.Get().maxErrors;
  Settings.Set({ maxErrors: 10_000 });
  let all: ReturnType<typeof checkSpec.Errors>;
  try {
    all = [...checkSpec.Errors(spec)];
  } finally {
    Settings.Set({ maxErrors: previous });
  }
  for (const e of all) {
    const params = e.params as Record<string, unknown>;
    if (e.keyword === "boolean") continue; // repeated as additionalProperties on the parent
    if (e.keyword === "additionalProperties") {
      for (const name of (params.additionalProperties as string[] | undefined) ?? [])
        add(
          pointerToPath("spec", `${e.instancePath}/${name.replaceAll("~", "~0").replaceAll("/", "~1")}`),
          "unknown field",
        );
      continue;
    }
    if (e.keyword === "required") {
      for (const name of (params.requiredProperties as string[] | undefined) ?? [])
        add(pointerToPath("spec", `${e.instancePath}/${name}`), "is required");
      if (!params.requiredProperties) add(pointerToPath("spec", e.instancePath), e.message);
      continue;
    }
    const allowed = params.allowedValues as unknown[] | undefined;
    add(pointerToPath("spec", e.instancePath), allowed ? `${e.message}: one of ${allowed.join(", ")}` : e.message);
  }
  return errors;
}

function feedSchemaErrors(
  check: ReturnType<typeof Compile>,
  value: unknown,
  base: string,
  errors: FieldError[],
  skip: (path: string) => boolean = () => false,
) {
  if (check.Check(value)) return;
  const seen = new Set<string>();
  for (const e of check.Errors(value)) {
    if (e.keyword === "boolean") continue; // reported again as additionalProperties on the parent
    if (e.keyword === "additionalProperties") {
      for (const name of (e.params as { additionalProperties?: string[] }).additionalProperties ?? []) {
        const path = pointerToPath(base, `${e.instancePath}/${name}`);
        const hint = e.instancePath === "" ? scrapyHint(name) : undefined;
        if (!seen.has(path)) errors.push({ path, message: hint ?? "unknown option" });
        seen.add(path);
      }
      continue;
    }
    const path = pointerToPath(base, e.instancePath);
    if (seen.has(path) || skip(path)) continue;
    seen.add(path);
    const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
    errors.push({ path, message: allowed ? `${e.message}: one of ${allowed.join(", ")}` : e.message });
  }
}

/** The schema's errors of spec.feeds and spec.storage, where feed-checks.ts asks for them. */
export const FEED_SCHEMA_CHECKS: FeedSchemaChecks = {
  storage: (value, base, errors) => feedSchemaErrors(checkStorage, value, base, errors),
  options: (value, base, errors, skip) => feedSchemaErrors(checkOptions, value, base, errors, skip),
};
