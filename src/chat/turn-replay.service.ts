import { Inject, Injectable } from '@nestjs/common';
import { concat, defer, from, mergeMap, type Observable, of } from 'rxjs';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ImageUrlSigner } from '../image-gen/image-url.signer.js';
import { ImagesRepository } from '../image-gen/images.repository.js';
import { emit, type Frame } from './frames.js';
import { type MessageRow, MessagesRepository, type TurnRow } from './messages.repository.js';

/**
 * Rebuilds a finished turn's frames from the database: same message ids, one `delta` per
 * message with its full text, the stored image or its failure, and `final.replayed: true`.
 * No provider is called.
 */
@Injectable()
export class TurnReplayService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly messages: MessagesRepository,
    private readonly images: ImagesRepository,
    private readonly signer: ImageUrlSigner,
  ) {}

  frames$(turn: TurnRow): Observable<Frame> {
    return defer(() => from(this.messages.ofTurn(turn))).pipe(
      mergeMap((rows) =>
        concat(...rows.map((row) => this.message$(row)), from(this.ending(turn, rows.length))),
      ),
    );
  }

  private ending(turn: TurnRow, messages: number): Frame[] {
    if (turn.status === 'failed' && turn.error) {
      const imageFailed = messages === 0 ? turn.error.image_failed : undefined;
      const x = imageFailed?.pending_message_id;
      const before: Frame[] =
        imageFailed && x
          ? [
              { type: 'image_pending', message_id: x },
              { type: 'image_failed', message_id: x, reason: imageFailed.reason },
            ]
          : [];
      const error: Frame = {
        type: 'error',
        code: turn.error.code as Extract<Frame, { type: 'error' }>['code'],
        retryable: turn.error.retryable,
        message: turn.error.message,
        user_message: turn.error.user_message,
      };
      return [...before, error];
    }
    return [
      {
        type: 'final',
        user_message_id: turn.userMessageId,
        message_ids: turn.messageIds,
        action_type: turn.actionType ?? 'reply_text',
        replayed: true,
      },
    ];
  }

  private message$(row: MessageRow): Observable<Frame> {
    const { image, image_failed: imageFailed } = row.metadata;
    const id = row.id;
    const text: Frame[] = [
      {
        type: 'meta',
        message_id: id,
        action_type: row.actionType ?? 'reply_text',
        ...(row.model ? { model: row.model } : {}),
      },
      ...(row.content === ''
        ? []
        : [{ type: 'delta' as const, message_id: id, content: row.content }]),
      this.done(row),
    ];
    if (imageFailed?.pending_message_id) {
      const x = imageFailed.pending_message_id;
      return emit(
        { type: 'image_pending', message_id: x },
        { type: 'image_failed', message_id: x, reason: imageFailed.reason },
        ...text,
      );
    }
    if (row.actionType === 'reply_image') {
      return concat(
        emit({ type: 'image_pending', message_id: id }, text[0]),
        this.image$(row),
        of(this.done(row)),
      );
    }
    if (row.actionType !== 'reply_text_image' || (!image && !imageFailed)) return of(...text);
    return concat(
      emit(...text, { type: 'image_pending', message_id: id }),
      imageFailed
        ? emit({ type: 'image_failed', message_id: id, reason: imageFailed.reason })
        : this.image$(row),
    );
  }

  private done(row: MessageRow): Frame {
    return {
      type: 'done',
      message_id: row.id,
      truncated: row.metadata.truncated === true,
      usage: row.metadata.usage ?? null,
      generation_id: row.metadata.generation_id ?? row.metadata.image?.generation_id ?? null,
    };
  }

  private image$(row: MessageRow): Observable<Frame> {
    const image = row.metadata.image;
    if (!image) return of();
    return defer(async (): Promise<Frame> => {
      const stored = this.config.image.inline ? await this.images.findById(image.image_id) : null;
      return {
        type: 'image',
        message_id: row.id,
        url: this.signer.sign(image.image_id).url,
        ...(stored
          ? { data_url: `data:${stored.mime};base64,${stored.bytes.toString('base64')}` }
          : {}),
        mime: image.mime,
        width: image.width,
        height: image.height,
        image_prompt: image.image_prompt,
        model: image.model,
        generation_id: image.generation_id,
      };
    });
  }
}
