/** Keys whose values are secrets whatever they hold (compared lower-case, without `-` and `_`). */
const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'xapikey',
  'apikey',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'jwt',
  'password',
  'secret',
  'jwtsecret',
  'signingsecret',
  'clientsecret',
]);

const REDACTED = '[redacted]';
const CREDENTIAL = /\b(Bearer|Basic)\s+[^\s"',;]+/gi;
/** Every JWT starts with a base64url `{"` header: `eyJ`. */
const JWT = /\beyJ[\w-]*\.[\w-]+\.[\w-]*/g;
/** OpenAI / OpenRouter style keys (`sk-…`, `sk-or-v1-…`). */
const API_KEY = /\bsk-[\w-]{8,}/g;
const DATA_URL = /data:[^,\s"']{0,100},[^\s"')]*/g;
/** Long base64 runs are image bytes (e.g. `b64_json`), never something worth a log line. */
const LONG_BASE64 = /[A-Za-z0-9+/]{256,}={0,2}/g;
const MAX_DEPTH = 8;

/** Keeps a data URL's header (`data:image/png;base64,`) and says how long the rest was. */
function truncateDataUrl(url: string): string {
  const comma = url.indexOf(',');
  const head = url.slice(0, comma >= 0 && comma < 64 ? comma + 1 : 32);
  return `${head}…[${url.length} chars]`;
}

function redactString(text: string, secrets: readonly string[]): string {
  if (text.startsWith('data:')) return truncateDataUrl(text);
  let clean = text
    .replace(DATA_URL, truncateDataUrl)
    .replace(CREDENTIAL, `$1 ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(API_KEY, REDACTED)
    .replace(LONG_BASE64, (run) => `[base64 ${run.length} chars]`);
  for (const secret of secrets) clean = clean.replaceAll(secret, REDACTED);
  return clean;
}

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

function walk(
  value: unknown,
  secrets: readonly string[],
  path: WeakSet<object>,
  depth: number,
): unknown {
  if (typeof value === 'string') return redactString(value, secrets);
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return `[${value.byteLength} bytes]`;
  }
  if (path.has(value)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[nested]';
  path.add(value);
  const next = (item: unknown): unknown => walk(item, secrets, path, depth + 1);
  let clean: unknown;
  if (value instanceof Error) {
    clean = {
      type: value.name,
      message: next(value.message),
      stack: next(value.stack),
      ...(value.cause === undefined ? {} : { cause: next(value.cause) }),
    };
  } else if (Array.isArray(value)) {
    clean = value.map(next);
  } else {
    clean = Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, isSecretKey(key) ? REDACTED : next(item)]),
    );
  }
  path.delete(value);
  return clean;
}

/**
 * A copy of `value` safe to log: secret-named keys blanked; bearer tokens, JWTs, API keys and the
 * given `secrets` masked in strings; data URLs and binary data reduced to their size.
 */
export function redact(value: unknown, secrets: readonly string[] = []): unknown {
  return walk(value, secrets, new WeakSet(), 0);
}
