// A secondary index over an informer cache (client-go's Indexer): objects by
// the values a function derives from them (an owner's uid, a label, the names
// of the Secrets a spec refers to), kept current by the informer's own events,
// so a reconcile reads its children by key instead of scanning every object.
import type { KubeObject } from "../../kube/client.ts";

/** Where an informer's events come from (an Informer or an InformerGroup). */
export interface EventSource<T> {
  on(event: "add" | "update" | "delete", handler: (obj: T, old?: T) => void): unknown;
}

const objectKey = (obj: KubeObject) => `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;

export class Index<T extends KubeObject> {
  readonly #valuesOf: (obj: T) => readonly string[];
  /** Index value → the objects under it, by namespace/name. */
  readonly #byValue = new Map<string, Map<string, T>>();
  /** namespace/name → the values it is indexed under now (to move it on update, drop it on delete). */
  readonly #indexed = new Map<string, readonly string[]>();

  /** `valuesOf` must be a pure function of the object: the index calls it on every add and update. */
  constructor(source: EventSource<T>, valuesOf: (obj: T) => readonly string[]) {
    this.#valuesOf = valuesOf;
    source.on("add", (obj) => this.#put(obj));
    source.on("update", (obj) => this.#put(obj));
    source.on("delete", (obj) => this.#remove(objectKey(obj)));
  }

  /** The objects indexed under `value`, in no particular order. */
  get(value: string): T[] {
    const objects = this.#byValue.get(value);
    return objects ? [...objects.values()] : [];
  }

  #put(obj: T): void {
    const key = objectKey(obj);
    this.#remove(key);
    const values = [...new Set(this.#valuesOf(obj))];
    if (values.length === 0) return;
    this.#indexed.set(key, values);
    for (const value of values) {
      let objects = this.#byValue.get(value);
      if (!objects) {
        objects = new Map();
        this.#byValue.set(value, objects);
      }
      objects.set(key, obj);
    }
  }

  #remove(key: string): void {
    const values = this.#indexed.get(key);
    if (!values) return;
    this.#indexed.delete(key);
    for (const value of values) {
      const objects = this.#byValue.get(value);
      objects?.delete(key);
      if (objects?.size === 0) this.#byValue.delete(value);
    }
  }
}

/** The uid of the object's controller (ownerReferences[].controller): for "children of". */
export const controllerUid = (obj: KubeObject): string[] => {
  const uid = obj.metadata.ownerReferences?.find((r) => r.controller)?.uid;
  return uid ? [uid] : [];
};
