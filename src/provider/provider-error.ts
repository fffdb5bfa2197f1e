/** Every way a provider call fails; the callers map these to fallbacks and attempt outcomes. */
export const PROVIDER_ERROR_KINDS = [
  /** Connection refused, reset, cut mid-body, or a stream that closed without its ending. */
  'transport',
  /** Non-2xx answer. */
  'status',
  /** An `{"error":…}` chunk inside a 2xx stream (or a 2xx `{"error":…}` body). */
  'stream',
  /** A 2xx answer that is not what the API promises: not JSON, an HTML page, a missing field. */
  'malformed',
  /** No first token within CHAT_FIRST_TOKEN_TIMEOUT_MS, or no chunk for CHAT_IDLE_TIMEOUT_MS. */
  'timeout',
  /** The configured upstream cannot serve this request at all; no call was made. */
  'unsupported',
  /** The caller's signal aborted the call. */
  'aborted',
] as const;

export type ProviderErrorKind = (typeof PROVIDER_ERROR_KINDS)[number];

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status: number | null = null,
    /** The upstream's own error code (or ours, for `unsupported`), when there is one. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}
