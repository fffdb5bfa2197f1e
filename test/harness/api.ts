import { randomBytes } from 'node:crypto';
import type { MessageDto } from '../../src/chat/sessions/dto/message.dto.js';
import { getTurnEvents, postTurn, type TurnOptions, type TurnResponse } from './sse-client.js';

const json = (token: string): Record<string, string> => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
});

/** `POST /v1/sessions` → the new session id (fails the test on anything but 201). */
export async function createSession(
  baseUrl: string,
  token: string,
  body: Record<string, unknown> = {},
): Promise<string> {
  const response = await fetch(`${baseUrl}/v1/sessions`, {
    method: 'POST',
    headers: json(token),
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

/** The first page of `GET …/messages`, newest first. */
export async function listMessages(
  baseUrl: string,
  sessionId: string,
  token: string,
): Promise<MessageDto[]> {
  const response = await fetch(`${baseUrl}/v1/sessions/${sessionId}/messages`, {
    headers: json(token),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: MessageDto[] }).items;
}

/** A unique idempotency key (`client_msg_id`). */
export function clientMsgId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export type TurnBody = { content: string; client_msg_id: string } & Record<string, unknown>;

/** A turn's request body: `content` under a fresh `client_msg_id`, with any other fields. */
export function turnBody(content: string, fields: Record<string, unknown> = {}): TurnBody {
  return { content, client_msg_id: clientMsgId('turn'), ...fields };
}

/** A resume's cursor: the `Last-Event-ID` header or `?after=`. */
export interface ResumeOptions extends TurnOptions {
  readonly lastEventId?: number;
  readonly after?: number;
}

/** One user's calls on one server, as a client makes them. */
export interface UserClient {
  readonly baseUrl: string;
  readonly token: string;
  /** A new session's id. */
  session(body?: Record<string, unknown>): Promise<string>;
  history(sessionId: string): Promise<MessageDto[]>;
  turn(sessionId: string, body: unknown, options?: TurnOptions): Promise<TurnResponse>;
  /** A turn in a new session: its stream, and the session it ran in. */
  firstTurn(body: unknown, options?: TurnOptions): Promise<TurnResponse & { sessionId: string }>;
  /** `GET …/turns/:client_msg_id/events`. */
  events(sessionId: string, clientMsgId: string, options?: ResumeOptions): Promise<TurnResponse>;
  /** `POST …/turns/:client_msg_id/cancel` (the stop route). */
  cancel(
    sessionId: string,
    clientMsgId: string,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
}

export function userClient(baseUrl: string, token: string): UserClient {
  const turn: UserClient['turn'] = (sessionId, body, options) =>
    postTurn(baseUrl, sessionId, token, body, options);
  return {
    baseUrl,
    token,
    session: (body) => createSession(baseUrl, token, body),
    history: (sessionId) => listMessages(baseUrl, sessionId, token),
    turn,
    firstTurn: async (body, options) => {
      const sessionId = await createSession(baseUrl, token);
      return { ...(await turn(sessionId, body, options)), sessionId };
    },
    events: (sessionId, clientMsgId, { lastEventId, ...options } = {}) =>
      getTurnEvents(baseUrl, sessionId, clientMsgId, token, {
        ...options,
        headers: {
          ...options.headers,
          ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }),
        },
      }),
    cancel: async (sessionId, clientMsgId) => {
      const response = await fetch(
        `${baseUrl}/v1/sessions/${sessionId}/turns/${clientMsgId}/cancel`,
        { method: 'POST', headers: { authorization: `Bearer ${token}` } },
      );
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    },
  };
}
