// What the batch needs from a storage: somewhere to write the compressed bytes while
// the batch fills, and a `finish` that resolves only once the storage confirmed the object.

export interface StoreTarget {
  uri: string;
  contentType: string;
  contentEncoding?: string;
  /** false: create only, never replace an existing object (the default). */
  overwrite: boolean;
}

export interface FinishOptions {
  bytes: number;
  sha256: string;
  /**
   * Called when the target already exists (and overwrite is false): returns a new URI to
   * store the batch under (the next batch id), or undefined to fail the batch.
   */
  onConflict: () => string | undefined;
}

export interface BatchSink {
  /** Resolves when the chunk is safely accepted (spooled or written to the temp file). */
  write(chunk: Uint8Array): Promise<void>;
  /** Resolves with the stored URI once the storage confirmed the whole object; rejects with the final error. */
  finish(opts: FinishOptions): Promise<string>;
  /** Throws the batch away (an empty batch that is not stored). */
  discard(): Promise<void>;
}

export interface FeedStorage {
  /** Checks, before any crawling, that files can be created under this folder URI. */
  check(folderUri: string): Promise<void>;
  open(target: StoreTarget): Promise<BatchSink>;
  /** Whether an object exists at the URI (batch ids already taken are skipped at open). */
  exists(uri: string): Promise<boolean>;
  /** Stops every upload in progress (teardown after a failure; nothing is reported). */
  abort?(): void;
  /** Stores a small document (the manifest), replacing any earlier one. */
  putSmall(uri: string, body: string, contentType: string): Promise<void>;
}

/** The target exists and overwrite is false. */
export class AlreadyExistsError extends Error {
  override name = "AlreadyExistsError";
}
