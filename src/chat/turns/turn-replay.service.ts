import { Inject, Injectable } from '@nestjs/common';
import { concat, defer, from, mergeMap, type Observable, of } from 'rxjs';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ImageFailureReason } from '../../contract/index.js';
import { ImageUrlSigner } from '../../images/image-url.signer.js';
import { ImageStore } from '../../images/image-store.js';
import { type MessageRow, MessagesRepository } from '../sessions/messages.repository.js';
import {
  deltaFrame,
  doneFrame,
  errorFrame,
  finalFrame,
  type Frame,
  imageFailedFrame,
  imageFrame,
  imagePendingFrame,
  metaFrame,
} from './frames.js';
import type { TurnRow } from './turns.repository.js';

/**
 * Rebuilds a finished turn's frames from the database, in the orders the live path sends them:
 * same message ids, one `delta` per message with its full text, the stored image or its
 * failure (no attempts), and `final.replayed: true`. No provider is called.
 */
@Injectable()
export class TurnReplayService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly messages: MessagesRepository,
    private readonly store: ImageStore,
    private readonly signer: ImageUrlSigner,
  ) {}

  frames$(turn: TurnRow): Observable<Frame> {
    return defer(() => from(this.messages.inOrder(turn.messageIds))).pipe(
      mergeMap((rows) =>
        concat(...rows.map((row) => this.message$(row)), from(this.ending(turn, rows.length))),
      ),
    );
  }

  private ending(turn: TurnRow, messages: number): Frame[] {
    if (turn.status === 'failed' && turn.error) {
      // A reply_image whose drawing and text reply Y both failed: the turn holds X's failure.
      const orphaned = messages === 0 ? turn.error.image_failed : undefined;
      const drawn = orphaned?.pending_message_id;
      return [
        ...(orphaned && drawn ? this.drawingFailed(drawn, orphaned.reason) : []),
        errorFrame(turn.error),
      ];
    }
    return [finalFrame(turn.userMessageId, turn.messageIds, turn.actionType ?? 'reply_text', true)];
  }

  private drawingFailed(messageId: string, reason: ImageFailureReason): Frame[] {
    return [imagePendingFrame(messageId), imageFailedFrame(messageId, reason)];
  }

  private message$(row: MessageRow): Observable<Frame> {
    const { image, image_failed: imageFailed } = row.metadata;
    const id = row.id;
    const meta = metaFrame(id, row.actionType ?? 'reply_text', row.model);
    const done = doneFrame(id, {
      truncated: row.metadata.truncated === true,
      usage: row.metadata.usage ?? null,
      generationId: row.metadata.generation_id ?? image?.generation_id ?? null,
    });
    const text = [meta, ...(row.content === '' ? [] : [deltaFrame(id, row.content)]), done];
    // Y of a degraded reply_image: X's failure comes first, as it did live.
    if (imageFailed?.pending_message_id) {
      return from([
        ...this.drawingFailed(imageFailed.pending_message_id, imageFailed.reason),
        ...text,
      ]);
    }
    if (row.actionType === 'reply_image') {
      return concat(of(imagePendingFrame(id), meta), this.image$(row), of(done));
    }
    if (row.actionType !== 'reply_text_image' || (!image && !imageFailed)) return from(text);
    return concat(
      from([...text, imagePendingFrame(id)]),
      imageFailed ? of(imageFailedFrame(id, imageFailed.reason)) : this.image$(row),
    );
  }

  private image$(row: MessageRow): Observable<Frame> {
    const image = row.metadata.image;
    if (!image) return of();
    return defer(async () => {
      const bytes = this.config.image.inline ? await this.store.read(image.image_id) : null;
      return imageFrame(row.id, image, this.signer.sign(image.image_id).url, bytes);
    });
  }
}
