import { randomBytes } from 'node:crypto';
import type { MessageDto } from '../../src/chat/sessions/dto/message.dto.js';

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
