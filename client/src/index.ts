export * from '../../src/contract/index.js';
export {
  createEaselClient,
  EaselClient,
  type EaselClientOptions,
  newClientMsgId,
  type ResumeOptions,
  type StreamOptions,
  type TurnInput,
} from './client.js';
export { EaselApiError, EaselConnectionError, EaselError } from './errors.js';
export { EaselProtocolError, type NumberedFrame, readFrames } from './sse.js';
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_RETRY,
  type RetryPolicy,
  TurnStream,
} from './turn-stream.js';
export * from './reducer.js';
