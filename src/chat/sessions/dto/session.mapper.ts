import type { SessionRow } from '../sessions.repository.js';
import type { SessionDto } from './session.dto.js';

/** A session row → its contract shape. */
export function toSessionDto(row: SessionRow): SessionDto {
  return {
    id: row.id,
    title: row.title,
    system_prompt: row.systemPrompt,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}
