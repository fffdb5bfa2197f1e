import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { concat, from, map, mergeMap, type Observable, tap } from 'rxjs';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ActionType } from '../database/schema.js';
import { ImageGenService } from '../image-gen/image-gen.service.js';
import { ImageUrlSigner } from '../image-gen/image-url.signer.js';
import type {
  GeneratedImage,
  ImageGenRequest,
  ImageGenResult,
} from '../image-gen/image-gen.types.js';
import type { ChatMessage } from '../provider/llm-provider.js';
import { emit, type Frame } from './frames.js';
import { MessagesRepository } from './messages.repository.js';
import { ReplyStreamService } from './reply-stream.service.js';
import type { LiveTurn, TurnRun } from './turn-run.js';

const DEGRADED_NOTE =
  'The picture the user asked for could not be made this time. Answer in text, and say in one short sentence that the image could not be generated.';

/**
 * The three actions as Observables of frames, in the contract's exact orders: the text stage,
 * the image stage, and how `reply_image` degrades to a text reply Y.
 */
@Injectable()
export class TurnActions {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly messages: MessagesRepository,
    private readonly reply: ReplyStreamService,
    private readonly imageGen: ImageGenService,
    private readonly signer: ImageUrlSigner,
  ) {}

  /** The frames of the turn's action, up to (not including) `final`. */
  frames$(live: LiveTurn): Observable<Frame> {
    const { run } = live;
    switch (run.actionType) {
      case 'reply_text':
        return this.text$(run, randomUUID(), 'reply_text', live.context);
      case 'reply_text_image': {
        const id = randomUUID();
        return concat(
          this.text$(run, id, 'reply_text_image', live.context),
          this.imageFor$(live, id),
        );
      }
      case 'reply_image':
        return this.imageOnly$(live);
    }
  }

  /** `meta → delta+ → done` for one assistant message. */
  private text$(
    run: TurnRun,
    messageId: string,
    actionType: ActionType,
    context: readonly ChatMessage[],
  ): Observable<Frame> {
    return this.reply.stream$(context).pipe(
      map((event): Frame => {
        switch (event.type) {
          case 'start': {
            const draft = run.draft(messageId, actionType, event.model);
            draft.open = true;
            return {
              type: 'meta',
              message_id: messageId,
              action_type: actionType,
              model: event.model,
            };
          }
          case 'delta':
            run.get(messageId).content += event.content;
            return { type: 'delta', message_id: messageId, content: event.content };
          case 'end': {
            const draft = run.get(messageId);
            draft.open = false;
            draft.metadata = {
              ...draft.metadata,
              usage: event.usage,
              generation_id: event.generationId,
            };
            return {
              type: 'done',
              message_id: messageId,
              truncated: false,
              usage: event.usage,
              generation_id: event.generationId,
            };
          }
        }
      }),
    );
  }

  private imageRequest(live: LiveTurn): ImageGenRequest {
    const image = live.request.image;
    return {
      subject: image?.image_prompt?.trim() || live.request.content,
      context: live.context,
      // IMAGE_MODELS empty means image generation is off: a caller's model does not re-enable it.
      model: this.config.image.models.length === 0 ? null : (image?.model ?? null),
      aspectRatio: image?.aspect_ratio ?? null,
      referenceImageUrl: image?.reference_image_url ?? null,
    };
  }

  /**
   * `image_pending → image_attempt+ → (image | image_failed)` for `messageId`, then `onDone`
   * decides what follows the result. `image_pending` goes out before composing starts.
   */
  private image$(
    live: LiveTurn,
    messageId: string,
    onDone: (result: ImageGenResult) => Observable<Frame>,
  ): Observable<Frame> {
    return concat(
      emit({ type: 'image_pending', message_id: messageId }),
      this.imageGen.generate$(this.imageRequest(live)).pipe(
        mergeMap((event) =>
          event.type === 'attempt'
            ? emit({
                type: 'image_attempt',
                message_id: messageId,
                model: event.model,
                variant: event.variant,
                index: event.index,
                total: event.total,
              })
            : onDone(event.result),
        ),
      ),
    );
  }

  /** The image stage of `reply_text_image`: the image joins the text message `messageId`. */
  private imageFor$(live: LiveTurn, messageId: string): Observable<Frame> {
    const { run } = live;
    return this.image$(live, messageId, (result) => {
      const draft = run.get(messageId);
      if (!result.ok) {
        draft.metadata = {
          ...draft.metadata,
          image_failed: { reason: result.reason, attempts: result.attempts },
        };
        return emit({ type: 'image_failed', message_id: messageId, reason: result.reason });
      }
      return from(this.storeImage(run, messageId, result.image, result.attempts)).pipe(
        map((imageId) => this.imageFrame(messageId, imageId, result.image)),
      );
    });
  }

  /**
   * `reply_image`: X is drawn first. Success: `meta(X) → image(X) → done(X)`. Failure:
   * `image_failed(X)`, then a text reply Y ≠ X that carries the diagnostic; X is never stored.
   */
  private imageOnly$(live: LiveTurn): Observable<Frame> {
    const { run } = live;
    const x = randomUUID();
    return this.image$(live, x, (result) => {
      if (!result.ok) {
        const y = randomUUID();
        const context: ChatMessage[] = [
          ...live.context,
          { role: 'system', content: DEGRADED_NOTE },
        ];
        run.imageFailure = {
          reason: result.reason,
          attempts: result.attempts,
          pending_message_id: x,
        };
        return concat(
          emit({ type: 'image_failed', message_id: x, reason: result.reason }),
          this.text$(run, y, 'reply_text', context).pipe(
            tap((frame) => {
              if (frame.type === 'meta') run.get(y).metadata.image_failed = run.imageFailure!;
            }),
          ),
        );
      }
      const { image } = result;
      run.draft(x, 'reply_image', image.model).metadata = { generation_id: image.generationId };
      return from(this.storeImage(run, x, image, result.attempts)).pipe(
        mergeMap((imageId) =>
          emit(
            { type: 'meta', message_id: x, action_type: 'reply_image', model: image.model },
            this.imageFrame(x, imageId, image),
            {
              type: 'done',
              message_id: x,
              truncated: false,
              usage: null,
              generation_id: image.generationId,
            },
          ),
        ),
      );
    });
  }

  /** Stores the image with its message in one transaction before any frame points at it. */
  private async storeImage(
    run: TurnRun,
    messageId: string,
    image: GeneratedImage,
    attempts: ImageGenResult['attempts'],
  ): Promise<string> {
    const imageId = randomUUID();
    const draft = run.get(messageId);
    draft.metadata = {
      ...draft.metadata,
      image: {
        image_id: imageId,
        mime: image.mime,
        model: image.model,
        image_prompt: image.prompt,
        width: image.width,
        height: image.height,
        generation_id: image.generationId,
        durable_url: null,
        attempts,
      },
    };
    await this.messages.saveMessage(run.row(draft), {
      id: imageId,
      sessionId: run.sessionId,
      messageId,
      mime: image.mime,
      width: image.width,
      height: image.height,
      bytes: image.bytes,
      size: image.bytes.length,
    });
    return imageId;
  }

  private imageFrame(messageId: string, imageId: string, image: GeneratedImage): Frame {
    return {
      type: 'image',
      message_id: messageId,
      url: this.signer.sign(imageId).url,
      ...(this.config.image.inline
        ? { data_url: `data:${image.mime};base64,${image.bytes.toString('base64')}` }
        : {}),
      mime: image.mime,
      width: image.width,
      height: image.height,
      image_prompt: image.prompt,
      model: image.model,
      generation_id: image.generationId,
    };
  }
}
