import { Injectable } from '@nestjs/common';
import { ImageUrlSigner } from '../../../images/image-url.signer.js';
import type { MessageRow } from '../messages.repository.js';
import type { MessageDto } from './message.dto.js';

/** A message row → its contract shape; image URLs are signed afresh on every read. */
@Injectable()
export class MessageMapper {
  constructor(private readonly signer: ImageUrlSigner) {}

  toDto(row: MessageRow): MessageDto {
    const { image, image_failed: imageFailed } = row.metadata;
    return {
      id: row.id,
      session_id: row.sessionId,
      role: row.role,
      content: row.content,
      client_msg_id: row.clientMsgId,
      action_type: row.actionType,
      status: row.status,
      model: row.model,
      image: image
        ? {
            url: this.signer.sign(image.image_id).url,
            mime: image.mime,
            model: image.model,
            image_prompt: image.image_prompt,
            width: image.width,
            height: image.height,
            durable_url: image.durable_url,
            attempts: image.attempts,
          }
        : null,
      image_failed: imageFailed
        ? { reason: imageFailed.reason, attempts: imageFailed.attempts }
        : null,
      created_at: row.createdAt.toISOString(),
    };
  }
}
