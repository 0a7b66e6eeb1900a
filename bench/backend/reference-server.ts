// Runs the reference bulk-ingest backend (examples/ingest-backend) unchanged,
// with the bench's counters attached to its HTTP server. Configured by the
// same environment variables as the backend itself (WEBHOOK_SECRET,
// DATABASE_URL, S3_ENDPOINT, AWS_*).
import { pino } from "pino";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend } from "../../examples/ingest-backend/server.ts";
import { serveBenchIpc } from "./child.ts";

const config = { ...configFromEnv(), port: 0, host: "127.0.0.1" };
const backend = await createIngestBackend(config, { logger: pino({ level: "warn", name: "ingest-backend" }) });
serveBenchIpc(backend.server, backend.url, () => backend.close());
