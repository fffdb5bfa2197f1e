import {
  createEaselClient,
  EaselApiError,
  type EaselClient,
  type ErrorFrame,
  type Frame,
  initialTurnState,
  type Message,
  newClientMsgId,
  reduceTurn,
  type Session,
  type TurnRequest,
  type TurnState,
} from '@easel/client';
import { language, setLanguage, t } from './i18n.js';
import { AssistantMessage, el, fromStored, TurnView, userBubble } from './view.js';

/**
 * The demo page: sign in, sessions, history, and turns drawn live from the client's reducer.
 * Turns run with `on_disconnect: "continue"` and are remembered in sessionStorage until they end,
 * so a reload attaches to the same turn again (docs/api-reference.md §8a) instead of losing it.
 */

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

/** The token lives as long as the tab (sessionStorage): it survives a reload, not the browser. */
const TOKEN_KEY = 'easel.token';
/** The turn this tab is running, for the reload-resume. */
const RUNNING_KEY = 'easel.running';
const PREVIEWS = 3;
const STOP_PATIENCE_MS = 5000;

interface RunningTurn {
  readonly sessionId: string;
  readonly request: TurnRequest;
}

interface LiveTurn {
  readonly sessionId: string;
  readonly clientMsgId: string;
  readonly view: TurnView;
  readonly controller: AbortController;
}

let easel: EaselClient | null = null;
let sessions: Session[] = [];
let currentId: string | null = null;
let stored: Message[] = [];
let live: LiveTurn | null = null;
/** Set while a Stop waits for the server's ending. */
let stopTimer: number | undefined;

const messagesEl = $('messages');
const sendButton = $<HTMLButtonElement>('send');
const stopButton = $<HTMLButtonElement>('stop');
const contentInput = $<HTMLTextAreaElement>('content');

function client(): EaselClient {
  if (!easel) throw new Error('not signed in');
  return easel;
}

function describe(error: unknown): string {
  if (error instanceof EaselApiError) return error.userMessage ?? error.message;
  return t('loadError');
}

let toastTimer: number | undefined;
function toast(text: string): void {
  const box = $('toast');
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (box.hidden = true), 5000);
}

function readRunning(): RunningTurn | null {
  const text = sessionStorage.getItem(RUNNING_KEY);
  return text ? (JSON.parse(text) as RunningTurn) : null;
}

/** The token's `sub`, to show who is signed in (the server is what checks the token). */
function userOf(token: string): string | null {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload)) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

// ---- sign in --------------------------------------------------------------------------------

function showSignIn(error: string | null = null): void {
  $('workspace').hidden = true;
  $('sign-in').hidden = false;
  $('sign-out').hidden = true;
  $('who').hidden = true;
  $('menu').hidden = true;
  $('sign-in-error').hidden = error === null;
  $('sign-in-error').textContent = error ?? '';
}

async function signIn(token: string): Promise<void> {
  const candidate = createEaselClient({ baseUrl: location.origin, token });
  let page;
  try {
    page = await candidate.sessions.list({ limit: 100 });
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(
      error instanceof EaselApiError && error.status === 401 ? t('badToken') : describe(error),
    );
    return;
  }
  easel = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  sessions = page.items;
  $('sign-in').hidden = true;
  $('workspace').hidden = false;
  $('sign-out').hidden = false;
  $('menu').hidden = false;
  const who = $('who');
  who.hidden = false;
  who.replaceChildren(
    el('span', { class: 'muted', 'data-i18n': 'signedInAs' }, t('signedInAs')),
    ' ',
    el('strong', {}, userOf(token) ?? '?'),
  );
  const running = readRunning();
  const wanted = running?.sessionId ?? decodeURIComponent(location.hash.slice(1));
  const first = sessions.find((session) => session.id === wanted) ?? sessions[0] ?? null;
  drawSessions();
  if (first) await openSession(first.id);
  else drawChat();
}

$('dev-token').addEventListener('click', async () => {
  try {
    const response = await fetch('/dev/token', { method: 'POST' });
    if (!response.ok) throw await EaselApiError.from(response);
    const { token } = (await response.json()) as { token: string };
    await signIn(token);
  } catch (error) {
    showSignIn(describe(error));
  }
});

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $<HTMLTextAreaElement>('token').value.trim();
  if (token) void signIn(token);
});

$('sign-out').addEventListener('click', () => {
  live?.controller.abort();
  sessionStorage.removeItem(TOKEN_KEY);
  easel = null;
  currentId = null;
  showSignIn();
});

// ---- sessions -------------------------------------------------------------------------------

const sessionTitle = (session: Session | undefined): string => session?.title || t('untitled');

function drawSessions(): void {
  $('no-sessions').hidden = sessions.length > 0;
  $('sessions').replaceChildren(
    ...sessions.map((session) => {
      const open = el(
        'button',
        { class: 'session', type: 'button' },
        el('span', { class: 'session-title' }, sessionTitle(session)),
        el(
          'span',
          { class: 'session-date' },
          new Date(session.updated_at).toLocaleString(language() === 'zh' ? 'zh-CN' : 'en', {
            dateStyle: 'medium',
            timeStyle: 'short',
          }),
        ),
      );
      open.addEventListener('click', () => {
        closeDrawer();
        void openSession(session.id);
      });
      const remove = el('button', { class: 'delete', type: 'button', title: t('delete') });
      remove.append(t('delete'));
      // Two clicks: the first arms the button, so a stray tap deletes nothing.
      remove.addEventListener('click', () => {
        if (remove.dataset.armed !== 'true') {
          remove.dataset.armed = 'true';
          remove.textContent = t('confirmDelete');
          return;
        }
        void deleteSession(session.id);
      });
      return el(
        'li',
        { class: session.id === currentId ? 'active' : '', 'data-session': session.id },
        open,
        remove,
      );
    }),
  );
}

async function refreshSessions(): Promise<void> {
  sessions = (await client().sessions.list({ limit: 100 })).items;
  drawSessions();
}

$('new-session').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('new-session-title');
  try {
    const title = input.value.trim();
    const session = await client().sessions.create(title ? { title } : {});
    input.value = '';
    sessions = [session, ...sessions];
    closeDrawer();
    await openSession(session.id);
  } catch (error) {
    toast(describe(error));
  }
});

async function deleteSession(id: string): Promise<void> {
  try {
    if (live?.sessionId === id) live.controller.abort();
    await client().sessions.delete(id);
    sessions = sessions.filter((session) => session.id !== id);
    if (currentId === id) {
      currentId = null;
      stored = [];
      if (sessions[0]) await openSession(sessions[0].id);
      else drawChat();
    }
    drawSessions();
  } catch (error) {
    toast(describe(error));
  }
}

async function openSession(id: string): Promise<void> {
  currentId = id;
  history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  drawSessions();
  try {
    // Newest first from the API; one page of 100 is this page's whole history.
    stored = (await client().messages.list(id, { limit: 100 })).items.reverse();
  } catch (error) {
    stored = [];
    toast(describe(error));
  }
  if (currentId !== id) return;
  drawChat();
  const running = readRunning();
  if (running?.sessionId === id && !live) void resume(running);
}

// ---- chat -----------------------------------------------------------------------------------

function drawChat(): void {
  const session = sessions.find((candidate) => candidate.id === currentId);
  $('chat-title').textContent = currentId ? sessionTitle(session) : '';
  const items: Node[] = [];
  for (const message of stored) {
    if (message.role === 'user') items.push(userBubble(message.content));
    else {
      const view = new AssistantMessage(message.id);
      view.update(fromStored(message));
      items.push(view.root);
    }
  }
  if (live && live.sessionId === currentId) items.push(live.view.root);
  if (items.length === 0) {
    items.push(el('p', { class: 'placeholder' }, t(currentId ? 'emptySession' : 'pickSession')));
  }
  messagesEl.replaceChildren(...items);
  if (live) hideStoredCopies(live.view.messageIds);
  setBusy(live !== null);
  scrollToEnd();
}

/** A stored partial of the live turn (read while it ran) gives way to the live one. */
function hideStoredCopies(ids: readonly string[]): void {
  for (const id of ids) {
    for (const node of messagesEl.querySelectorAll(`:scope > .msg[data-id="${CSS.escape(id)}"]`)) {
      node.remove();
    }
  }
}

function scrollToEnd(): void {
  const nearEnd = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 160;
  if (nearEnd || live) messagesEl.scrollTop = messagesEl.scrollHeight;
}

function setBusy(busy: boolean): void {
  const here = live !== null && live.sessionId === currentId;
  sendButton.hidden = here;
  stopButton.hidden = !here;
  sendButton.disabled = busy || currentId === null;
  if (!busy) {
    stopButton.disabled = false;
    stopButton.textContent = t('stop');
  }
}

/** What the server sends a stopped turn; used when the page had to leave it instead. */
const LEFT: ErrorFrame = {
  type: 'error',
  code: 'cancelled',
  retryable: false,
  message: 'The page left the turn.',
  user_message: '',
};

/** Runs a turn's frames through the reducer into `view` until the turn ends. */
async function run(
  sessionId: string,
  clientMsgId: string,
  view: TurnView,
  frames: (signal: AbortSignal) => AsyncIterable<Frame>,
): Promise<void> {
  const controller = new AbortController();
  live = { sessionId, clientMsgId, view, controller };
  setBusy(true);
  let state: TurnState = initialTurnState;
  try {
    for await (const frame of frames(controller.signal)) {
      state = reduceTurn(state, frame);
      view.render(state);
      hideStoredCopies(view.messageIds);
      scrollToEnd();
    }
  } catch (error) {
    if (controller.signal.aborted) view.render(reduceTurn(state, LEFT));
    else {
      view.say(null);
      toast(describe(error));
    }
  } finally {
    clearTimeout(stopTimer);
    live = null;
    sessionStorage.removeItem(RUNNING_KEY);
    setBusy(false);
    if (easel) void refreshSessions().catch(() => undefined);
  }
}

function turnRequest(content: string): TurnRequest {
  const mode = document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value;
  const previews = $<HTMLInputElement>('previews').checked ? PREVIEWS : 0;
  return {
    content,
    client_msg_id: newClientMsgId(),
    on_disconnect: 'continue',
    ...(mode === 'text'
      ? {}
      : { image: { ...(mode === 'image' ? { force: true } : {}), partial_images: previews } }),
  };
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const content = contentInput.value.trim();
  const sessionId = currentId;
  if (!content || !sessionId || live) return;
  const request = turnRequest(content);
  sessionStorage.setItem(RUNNING_KEY, JSON.stringify({ sessionId, request }));
  contentInput.value = '';
  const view = new TurnView(content);
  messagesEl.querySelector('.placeholder')?.remove();
  messagesEl.append(view.root);
  void run(sessionId, request.client_msg_id, view, (signal) =>
    client().turns.stream(sessionId, request, { signal }),
  );
});

contentInput.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $<HTMLFormElement>('composer').requestSubmit();
  }
});

/**
 * After a reload: attach to the turn from its first frame (the view starts empty, so nothing is
 * drawn twice). A turn the server no longer knows (404: the request never arrived; 410: ended
 * long ago) is sent again with the same key, which runs it or replays it (api-reference §9).
 */
async function resume({ sessionId, request }: RunningTurn): Promise<void> {
  const known = stored.some(
    (message) => message.role === 'user' && message.client_msg_id === request.client_msg_id,
  );
  const view = new TurnView(known ? null : request.content);
  view.say('resuming');
  messagesEl.querySelector('.placeholder')?.remove();
  messagesEl.append(view.root);
  await run(sessionId, request.client_msg_id, view, async function* (signal) {
    let delivered = 0;
    try {
      for await (const frame of client().turns.resume(sessionId, request.client_msg_id, {
        after: 0,
        onDisconnect: 'continue',
        signal,
      })) {
        delivered += 1;
        yield frame;
      }
    } catch (error) {
      if (!(error instanceof EaselApiError) || delivered > 0) throw error;
      yield* client().turns.stream(sessionId, request, { signal });
    }
  });
}

/**
 * Stop: the stop route, then the stream carries on to the server's own ending
 * (`done(truncated)`, `error{cancelled}`). If the route fails or the ending is slow, the page
 * leaves instead — the client's abort calls the stop route once more on its way out.
 */
stopButton.addEventListener('click', async () => {
  const turn = live;
  if (!turn) return;
  stopButton.disabled = true;
  stopButton.textContent = t('stopping');
  const leave = (): void => turn.controller.abort(new DOMException('stopped', 'AbortError'));
  stopTimer = window.setTimeout(leave, STOP_PATIENCE_MS);
  try {
    await client().turns.cancel(turn.sessionId, turn.clientMsgId);
  } catch {
    leave();
  }
});

// ---- frame --------------------------------------------------------------------------------

const openDrawer = (): void => document.body.classList.add('drawer-open');
function closeDrawer(): void {
  document.body.classList.remove('drawer-open');
}
$('menu').addEventListener('click', () =>
  document.body.classList.contains('drawer-open') ? closeDrawer() : openDrawer(),
);
$('scrim').addEventListener('click', closeDrawer);

$('language').addEventListener('click', () => {
  setLanguage(language() === 'en' ? 'zh' : 'en');
  drawSessions();
  if (!$('workspace').hidden) {
    const liveView = live?.view;
    drawChat();
    liveView?.refresh();
  }
});

setLanguage(language());
$('dev-token-box').hidden =
  document.querySelector<HTMLMetaElement>('meta[name="easel-dev-token"]')?.content !== 'on';
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) void signIn(saved);
else showSignIn();
