/**
 * Starts the built service (`dist/main.js`) unchanged, plus the bench's IPC stats hook, so
 * Easel's CPU and heap are read the same way as the floor's and the peer's.
 */
import { pathToFileURL } from 'node:url';
import { serveStats } from './ipc.js';

serveStats();
await import(pathToFileURL(process.env.EASEL_MAIN ?? 'dist/main.js').href);
