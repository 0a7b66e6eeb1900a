// What the batch needs from a storage: somewhere to write the compressed bytes while
// the batch fills, and a `finish` that resolves only once the storage confirmed the object.
// A batch that cannot be stored is never thrown away: its bytes stay where they were
// written (a spool or renamed temp file) and the error says where.

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
  /**
   * Resolves with the stored URI once the storage confirmed the whole object; rejects with
   * the final error, a StoreFailedError whose `keptAt` says where the bytes were kept.
   */
  finish(opts: FinishOptions): Promise<string>;
  /** Throws the batch away (an empty batch that is not stored, or a teardown). */
  discard(): Promise<void>;
  /**
   * Gives up on storing the batch but keeps the bytes written so far for recovery;
   * resolves with where they are (undefined when the storage holds nothing, e.g. stdout).
   */
  keep(): Promise<string | undefined>;
}

export interface FeedStorage {
  /** Checks, before any crawling, that files can be created under this folder URI. */
  check(folderUri: string): Promise<void>;
  open(target: StoreTarget): Promise<BatchSink>;
  /** Whether an object exists at the URI (batch ids already taken are skipped at open). */
  exists(uri: string): Promise<boolean>;
  /** Stops every upload in progress (teardown after a failure; nothing is reported). */
  abort?(): void;
  /**
   * Removes what killed runs left in this folder (feedcrawl's own temp files, nothing
   * else) and returns their paths.
   */
  removeStale?(folderUri: string): Promise<string[]>;
  /**
   * Deletes the object if it exists (a batch stored but never reported, found
   * when a crawl with a state recovers). Absent: the storage cannot take back
   * what it wrote (stdout).
   */
  remove?(uri: string): Promise<void>;
  /** Stores a small document (the manifest), create-only: AlreadyExistsError when the name is taken. */
  putSmall(uri: string, body: string, contentType: string): Promise<void>;
}

/** A batch that could not be stored; `keptAt` is where its bytes were kept, if anywhere. */
export class StoreFailedError extends Error {
  override name = "StoreFailedError";
  keptAt: string | undefined;

  constructor(message: string, keptAt?: string, options?: ErrorOptions) {
    super(message, options);
    this.keptAt = keptAt;
  }
}

/** The target exists and overwrite is false. */
export class AlreadyExistsError extends StoreFailedError {
  override name = "AlreadyExistsError";
}
