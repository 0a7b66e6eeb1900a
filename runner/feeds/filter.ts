// Which items a feed takes: by item type (Scrapy's item_classes) and field conditions.
import type { FeedOptions, FieldCondition } from "../../crds/schema/feeds.ts";
import type { Item } from "../item.ts";

function text(value: unknown): string {
  return typeof value === "string" ? value : (JSON.stringify(value) ?? "");
}

function holds(cond: FieldCondition, regex: RegExp | undefined, fields: Item["fields"]): boolean {
  const value = fields[cond.field];
  const present = value !== undefined && value !== null;
  if (cond.exists !== undefined && cond.exists !== present) return false;
  if (cond.equals !== undefined && (!present || text(value) !== cond.equals)) return false;
  if (cond.notEquals !== undefined && present && text(value) === cond.notEquals) return false;
  if (regex !== undefined && (!present || !regex.test(text(value)))) return false;
  return true;
}

export function createItemFilter(opts: Pick<FeedOptions, "itemTypes" | "itemFilter">): (item: Item) => boolean {
  const types = opts.itemTypes && opts.itemTypes.length > 0 ? new Set(opts.itemTypes) : undefined;
  const conditions = (opts.itemFilter ?? []).map((c) => ({ c, re: c.matches ? new RegExp(c.matches) : undefined }));
  return (item) => (!types || types.has(item.type)) && conditions.every(({ c, re }) => holds(c, re, item.fields));
}
