import type {
  Attempt,
  AttemptStatus,
  ImageFailureReason,
  ImageVariant,
  Message,
  MessageView,
  TurnState,
} from '@easel/client';
import { type Key, t } from './i18n.js';

/** DOM for messages: stored ones (history) and a live turn, drawn from the same models. */

type Attributes = Record<string, string>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) if (child !== null) element.append(child);
  return element;
}

interface AttemptRow {
  readonly index: number;
  readonly total: number;
  readonly model: string;
  readonly variant: ImageVariant;
  readonly state: AttemptStatus;
  /** Stored outcome details (`status 503 · 1.2 s`), known only for stored messages. */
  readonly detail: string | null;
}

interface ImageModel {
  readonly status: 'pending' | 'ready' | 'failed' | 'stopped';
  readonly attempts: readonly AttemptRow[];
  readonly preview: { readonly src: string; readonly partialIndex: number } | null;
  readonly result: {
    readonly src: string;
    readonly width: number;
    readonly height: number;
    readonly model: string;
  } | null;
  readonly failureReason: ImageFailureReason | null;
}

interface MessageModel {
  readonly id: string;
  readonly text: string;
  /** `streaming` shows a caret; `truncated` a "cut short" mark. */
  readonly textStatus: 'streaming' | 'done' | 'truncated';
  readonly model: string | null;
  readonly image: ImageModel | null;
}

const REASONS: Record<ImageFailureReason, Key> = {
  chain_exhausted: 'reasonChainExhausted',
  zero_images: 'reasonZeroImages',
  config_error: 'reasonConfigError',
};

const ATTEMPT_LABELS: Record<AttemptStatus, Key> = {
  running: 'attemptRunning',
  ok: 'attemptOk',
  failed: 'attemptFailed',
  stopped: 'attemptStopped',
};

const IMAGE_LABELS: Record<ImageModel['status'], Key> = {
  pending: 'imagePending',
  ready: 'imageReady',
  failed: 'imageFailed',
  stopped: 'imageStopped',
};

function storedAttempts(attempts: readonly Attempt[]): AttemptRow[] {
  return attempts.map((attempt, position) => ({
    index: position + 1,
    total: attempts.length,
    model: attempt.model,
    variant: attempt.variant,
    state: attempt.outcome === 'ok' ? 'ok' : 'failed',
    detail: [
      attempt.outcome === 'ok' ? null : attempt.outcome,
      attempt.status === undefined ? null : String(attempt.status),
      `${(attempt.ms / 1000).toFixed(1)} s`,
    ]
      .filter((part) => part !== null)
      .join(' · '),
  }));
}

/** A stored assistant message as the view draws it. */
export function fromStored(message: Message): MessageModel {
  const image: ImageModel | null = message.image
    ? {
        status: 'ready',
        attempts: storedAttempts(message.image.attempts),
        preview: null,
        result: {
          src: message.image.durable_url ?? message.image.url,
          width: message.image.width,
          height: message.image.height,
          model: message.image.model,
        },
        failureReason: null,
      }
    : message.image_failed
      ? {
          status: 'failed',
          attempts: storedAttempts(message.image_failed.attempts),
          preview: null,
          result: null,
          failureReason: message.image_failed.reason,
        }
      : null;
  return {
    id: message.id,
    text: message.content,
    textStatus: message.status === 'complete' ? 'done' : 'truncated',
    model: message.model,
    image,
  };
}

/** A message of a live turn (the client's reducer view) as the view draws it. */
export function fromLive(message: MessageView): MessageModel {
  const image = message.image;
  return {
    id: message.id,
    text: message.text,
    textStatus: message.status,
    model: message.model,
    image: image && {
      status: image.status,
      attempts: image.attempts.map((attempt) => ({
        index: attempt.index,
        total: attempt.total,
        model: attempt.model,
        variant: attempt.variant,
        state: attempt.outcome,
        detail: null,
      })),
      preview: image.preview && {
        src: image.preview.dataUrl,
        partialIndex: image.preview.partialIndex,
      },
      result: image.result && {
        src: image.result.dataUrl ?? image.result.url,
        width: image.result.width,
        height: image.result.height,
        model: image.result.model,
      },
      failureReason: image.failureReason,
    },
  };
}

export function userBubble(text: string): HTMLElement {
  return el('article', { class: 'msg user' }, el('div', { class: 'bubble' }, text));
}

/** An assistant message element, redrawn in place as its model changes. */
export class AssistantMessage {
  readonly root: HTMLElement;
  private readonly text = el('div', { class: 'text' });
  private readonly meta = el('div', { class: 'msg-meta' });
  private figure: HTMLElement | null = null;

  constructor(readonly id: string) {
    this.root = el(
      'article',
      { class: 'msg assistant', 'data-id': id },
      el('div', { class: 'avatar', 'aria-hidden': 'true' }),
      el('div', { class: 'msg-body' }, this.text, this.meta),
    );
  }

  update(model: MessageModel): void {
    this.text.textContent = model.text;
    this.text.hidden = model.text === '' && model.textStatus !== 'streaming';
    this.text.classList.toggle('streaming', model.textStatus === 'streaming');
    this.root.dataset.status = model.textStatus;
    this.meta.replaceChildren(
      ...[
        model.model,
        model.textStatus === 'truncated' && model.text !== '' ? t('truncated') : null,
      ]
        .filter((part): part is string => part !== null)
        .map((part) => el('span', {}, part)),
    );
    if (model.image) {
      this.figure ??= this.root
        .querySelector('.msg-body')!
        .insertBefore(el('section', { class: 'picture' }), this.meta);
      drawImage(this.figure, model.image);
    }
  }
}

function drawImage(section: HTMLElement, image: ImageModel): void {
  section.dataset.status = image.status;
  let head = section.querySelector<HTMLElement>('.picture-head');
  if (!head) {
    head = el('div', { class: 'picture-head' });
    section.append(head, el('ol', { class: 'attempts' }), el('div', { class: 'frame' }));
  }
  head.replaceChildren(
    el('span', { class: 'picture-title' }, t('picture')),
    el('span', { class: `badge ${image.status}` }, t(IMAGE_LABELS[image.status])),
  );
  if (image.failureReason) {
    head.append(el('span', { class: 'muted small' }, t(REASONS[image.failureReason])));
  }

  // Rows are updated in place, so a row's entrance animation plays once, not on every frame.
  const list = section.querySelector('.attempts')!;
  for (const attempt of image.attempts) {
    let row = list.querySelector<HTMLElement>(`:scope > [data-index="${attempt.index}"]`);
    if (!row) row = list.appendChild(el('li', { 'data-index': String(attempt.index) }));
    row.className = `attempt ${attempt.state}`;
    row.dataset.outcome = attempt.state;
    row.replaceChildren(
      el('span', { class: 'dot', 'aria-hidden': 'true' }),
      el('span', { class: 'attempt-n' }, `${attempt.index} ${t('of')} ${attempt.total}`),
      el('span', { class: 'attempt-model' }, attempt.model),
      el('span', { class: 'variant' }, attempt.variant),
      el(
        'span',
        { class: 'attempt-outcome' },
        t(ATTEMPT_LABELS[attempt.state]),
        attempt.detail ? el('span', { class: 'muted' }, ` · ${attempt.detail}`) : null,
      ),
    );
  }

  const frame = section.querySelector<HTMLElement>('.frame')!;
  const shown = image.result ?? image.preview;
  frame.hidden = shown === null && image.status !== 'pending';
  let img = frame.querySelector('img');
  if (!shown) {
    img?.remove();
    frame.querySelector('figcaption')?.remove();
    frame.classList.toggle('waiting', image.status === 'pending');
    return;
  }
  frame.classList.remove('waiting');
  if (!img) {
    img = el('img', { alt: '' });
    frame.prepend(img);
  }
  const final = image.result !== null;
  img.className = final ? 'final' : 'preview';
  // Coarse previews blur more; each sharper one reduces the blur, the picture lands sharp.
  img.style.setProperty(
    '--blur',
    final ? '0px' : `${Math.max(1, 10 - 4 * image.preview!.partialIndex)}px`,
  );
  if (img.getAttribute('src') !== shown.src) img.src = shown.src;
  if (image.result) {
    img.width = image.result.width;
    img.height = image.result.height;
    img.alt = `${t('picture')} · ${image.result.model}`;
  }
  let caption = frame.querySelector('figcaption');
  if (!caption) caption = frame.appendChild(el('figcaption'));
  caption.textContent = image.result
    ? `${image.result.model} · ${image.result.width}×${image.result.height}`
    : `${t('preview')} ${image.preview!.partialIndex + 1}`;
}

/** The messages of one live turn: assistant messages keyed by id, in the reducer's order. */
export class TurnView {
  readonly root = el('div', { class: 'turn' });
  private readonly notice = el('p', { class: 'turn-notice', role: 'status' });
  private readonly views = new Map<string, AssistantMessage>();
  private state: TurnState | null = null;

  constructor(userText: string | null) {
    if (userText !== null) this.root.append(userBubble(userText));
    this.root.append(this.notice);
    this.notice.hidden = true;
  }

  /** Shown until the first frame (a resume after reload). */
  say(key: Key | null): void {
    this.notice.hidden = key === null;
    this.notice.textContent = key === null ? '' : t(key);
    this.notice.className = 'turn-notice';
  }

  render(state: TurnState): void {
    this.state = state;
    this.root.dataset.status = state.status;
    const keep = new Set(state.messages.map((message) => message.id));
    for (const [id, view] of this.views) {
      // The reply_image degradation: the text reply took over the failed picture-only message.
      if (!keep.has(id)) {
        view.root.remove();
        this.views.delete(id);
      }
    }
    for (const message of state.messages) {
      let view = this.views.get(message.id);
      if (!view) {
        view = new AssistantMessage(message.id);
        this.views.set(message.id, view);
        this.root.insertBefore(view.root, this.notice);
      }
      view.update(fromLive(message));
    }
    if (state.status === 'cancelled') this.flag('turnStopped', 'stopped');
    else if (state.status === 'failed') {
      this.flag('turnFailed', 'failed');
      this.notice.textContent = `${t('turnFailed')}: ${state.error?.userMessage ?? ''}`;
    } else if (state.messages.length > 0) this.say(null);
  }

  /** Redraws with the current language. */
  refresh(): void {
    if (this.state) this.render(this.state);
  }

  get messageIds(): string[] {
    return [...this.views.keys()];
  }

  private flag(key: Key, kind: string): void {
    this.say(key);
    this.notice.classList.add(kind);
  }
}
