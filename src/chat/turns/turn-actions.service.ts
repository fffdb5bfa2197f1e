import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  concat,
  defer,
  filter,
  from,
  ignoreElements,
  map,
  merge,
  mergeMap,
  type Observable,
  of,
  share,
  shareReplay,
  take,
} from 'rxjs';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ActionType } from '../../contract/index.js';
import { ImageGenService } from '../../image-gen/image-gen.service.js';
import type {
  GeneratedImage,
  ImageGenEvent,
  ImageGenRequest,
  ImageGenResult,
} from '../../image-gen/image-gen.types.js';
import { ImageUrlSigner } from '../../images/image-url.signer.js';
import type { ChatMessage } from '../../provider/llm-provider.js';
import { MessagesRepository } from '../sessions/messages.repository.js';
import {
  deltaFrame,
  doneFrame,
  type Frame,
  imageAttemptFrame,
  imageFailedFrame,
  imageFrame,
  imagePartialFrame,
  imagePendingFrame,
  metaFrame,
  type StoredImage,
} from './frames.js';
import { ReplyStreamService } from './reply-stream.service.js';
import type { LiveTurn, TurnRun } from './turn-run.js';

const DEGRADED_NOTE =
  'The picture the user asked for could not be made this time. Answer in text, and say in one short sentence that the image could not be generated.';

/**
 * The three actions as Observables of frames, in the contract's exact orders: the text stage,
 * the image stage, and how `reply_image` degrades to a text reply Y.
 */
@Injectable()
export class TurnActionsService {
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
        if (live.request.image?.concurrent === true) return this.drawWhileWriting$(live, id);
        return concat(
          this.text$(run, id, 'reply_text_image', live.context),
          this.imageFor$(live, id, this.generate$(live)),
        );
      }
      case 'reply_image':
        return this.imageOnly$(live);
    }
  }

  /**
   * `reply_text_image` with `image.concurrent`: the drawing (composer, then the chain) starts
   * with the turn, merged with the text. Its frames, and storing its image, wait for `meta`
   * (the message must exist first); what it produced meanwhile is replayed then. Leaving tears
   * both halves down at once.
   */
  private drawWhileWriting$(live: LiveTurn, messageId: string): Observable<Frame> {
    return defer(() => {
      const drawing$ = this.generate$(live).pipe(shareReplay({ refCount: true }));
      const text$ = this.text$(live.run, messageId, 'reply_text_image', live.context).pipe(share());
      return merge(
        drawing$.pipe(ignoreElements()),
        text$,
        text$.pipe(
          filter((frame) => frame.type === 'meta'),
          take(1),
          mergeMap(() => this.imageFor$(live, messageId, drawing$)),
        ),
      );
    });
  }

  /** `meta → delta+ → done` for one assistant message. */
  private text$(
    run: TurnRun,
    messageId: string,
    actionType: ActionType,
    context: readonly ChatMessage[],
  ): Observable<Frame> {
    // One stage records each event in the run and makes its frame (it runs for every delta).
    return this.reply.stream$(context).pipe(
      map((event): Frame => {
        switch (event.type) {
          case 'start':
            run.openMessage(messageId, actionType, event.model);
            return metaFrame(messageId, actionType, event.model);
          case 'delta':
            run.append(messageId, event.content);
            return deltaFrame(messageId, event.content);
          case 'end':
            run.closeMessage(messageId, event.usage, event.generationId);
            return doneFrame(messageId, {
              truncated: false,
              usage: event.usage,
              generationId: event.generationId,
            });
        }
      }),
    );
  }

  /** The turn's drawing: cold, one run of the chain per subscription. */
  private generate$(live: LiveTurn): Observable<ImageGenEvent> {
    return this.imageGen.generate$(this.imageRequest(live));
  }

  private imageRequest(live: LiveTurn): ImageGenRequest {
    const image = live.request.image;
    return {
      partialImages: image?.partial_images ?? 0,
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
    messageId: string,
    drawing$: Observable<ImageGenEvent>,
    onDone: (result: ImageGenResult) => Observable<Frame>,
  ): Observable<Frame> {
    return concat(
      of(imagePendingFrame(messageId)),
      drawing$.pipe(
        mergeMap((event) => {
          switch (event.type) {
            case 'attempt':
              return of(imageAttemptFrame(messageId, event));
            case 'partial':
              return of(imagePartialFrame(messageId, event));
            case 'done':
              return onDone(event.result);
          }
        }),
      ),
    );
  }

  /** The image stage of `reply_text_image`: the image joins the text message `messageId`. */
  private imageFor$(
    live: LiveTurn,
    messageId: string,
    drawing$: Observable<ImageGenEvent>,
  ): Observable<Frame> {
    const { run } = live;
    return this.image$(messageId, drawing$, (result) => {
      if (!result.ok) {
        return defer(() => {
          run.failImage(messageId, { reason: result.reason, attempts: result.attempts });
          return of(imageFailedFrame(messageId, result.reason));
        });
      }
      return this.stored$(run, messageId, result.image, result.attempts).pipe(
        map((stored) => this.imageFrame(messageId, stored, result.image.bytes)),
      );
    });
  }

  /**
   * `reply_image`: X is drawn first. Success: `meta(X) → image(X) → done(X)`. Failure:
   * `image_failed(X)`, then a text reply Y ≠ X that carries the diagnostic; X is never stored.
   */
  private imageOnly$(live: LiveTurn): Observable<Frame> {
    const { run } = live;
    const drawn = randomUUID();
    return this.image$(drawn, this.generate$(live), (result) => {
      if (!result.ok) {
        const reply = randomUUID();
        const context: ChatMessage[] = [
          ...live.context,
          { role: 'system', content: DEGRADED_NOTE },
        ];
        return concat(
          defer(() => {
            run.degrade({
              reason: result.reason,
              attempts: result.attempts,
              pending_message_id: drawn,
            });
            return of(imageFailedFrame(drawn, result.reason));
          }),
          this.text$(run, reply, 'reply_text', context),
        );
      }
      const { image } = result;
      return defer(() => {
        run.addImageMessage(drawn, image.model, image.generationId);
        return this.stored$(run, drawn, image, result.attempts);
      }).pipe(
        mergeMap((stored) =>
          from([
            metaFrame(drawn, 'reply_image', image.model),
            this.imageFrame(drawn, stored, image.bytes),
            doneFrame(drawn, { truncated: false, usage: null, generationId: image.generationId }),
          ]),
        ),
      );
    });
  }

  /** Stores the image's bytes, then its message and row, before any frame points at it. */
  private stored$(
    run: TurnRun,
    messageId: string,
    image: GeneratedImage,
    attempts: ImageGenResult['attempts'],
  ): Observable<StoredImage> {
    return defer(async () => {
      const stored: StoredImage = {
        image_id: randomUUID(),
        mime: image.mime,
        model: image.model,
        image_prompt: image.prompt,
        width: image.width,
        height: image.height,
        generation_id: image.generationId,
        durable_url: null,
        attempts,
      };
      const row = run.attachImage(messageId, stored);
      await this.messages.saveWithImage(
        row,
        {
          id: stored.image_id,
          sessionId: run.sessionId,
          messageId,
          mime: image.mime,
          width: image.width,
          height: image.height,
          size: image.bytes.length,
        },
        image.bytes,
      );
      return stored;
    });
  }

  private imageFrame(messageId: string, stored: StoredImage, bytes: Buffer): Frame {
    const url = this.signer.sign(stored.image_id).url;
    return imageFrame(messageId, stored, url, this.config.image.inline ? bytes : null);
  }
}
