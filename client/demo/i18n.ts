/** The page's words in English and Chinese; `data-i18n` attributes name a key of `en`. */

const en = {
  tagline: 'Chat that draws — streamed text, a fallback chain of image models, live.',
  signInTitle: 'Sign in',
  signInLead: 'Easel needs a Bearer token (a JWT whose `sub` is your user id).',
  devToken: 'Use the development token',
  devTokenHint:
    'This server made its own secret, so it can hand this machine a token for user "dev".',
  orPaste: 'or paste a token',
  tokenPlaceholder: 'eyJhbGciOi…',
  signIn: 'Sign in',
  signOut: 'Sign out',
  badToken: 'This token was not accepted.',
  signedInAs: 'Signed in as',
  sessions: 'Sessions',
  newSessionPlaceholder: 'New session…',
  newSession: 'New session',
  noSessions: 'No sessions yet. Create one to start.',
  untitled: 'Untitled session',
  delete: 'Delete',
  confirmDelete: 'Delete?',
  pickSession: 'Pick a session, or create one.',
  emptySession: 'Ask for anything — or for a picture: “draw a lighthouse at dusk”.',
  composerPlaceholder: 'Write a message…  (Enter sends, Shift+Enter adds a line)',
  send: 'Send',
  stop: 'Stop',
  stopping: 'Stopping…',
  modeText: 'Text',
  modeImage: 'Image',
  modeAuto: 'Auto',
  modeLabel: 'Reply with',
  previews: 'Previews',
  you: 'You',
  assistant: 'Easel',
  picture: 'Picture',
  imagePending: 'Drawing…',
  imageReady: 'Ready',
  imageFailed: 'No picture',
  imageStopped: 'Stopped',
  attemptRunning: 'drawing',
  attemptOk: 'succeeded',
  attemptFailed: 'failed',
  attemptStopped: 'stopped',
  of: 'of',
  preview: 'Preview',
  turnStopped: 'Stopped. The partial reply was kept.',
  turnFailed: 'The turn failed',
  resuming: 'Picking the running turn up again…',
  truncated: 'cut short',
  reasonChainExhausted: 'every image model failed',
  reasonZeroImages: 'the model returned no image',
  reasonConfigError: 'image generation is not configured',
  language: '中文',
  menu: 'Sessions',
  loadError: 'Could not reach the server.',
  docs: 'API docs',
} as const;

export type Key = keyof typeof en;

const zh: Record<Key, string> = {
  tagline: '会画画的对话——文字流式输出，图像模型逐个回退，全程实时可见。',
  signInTitle: '登录',
  signInLead: 'Easel 需要一个 Bearer 令牌（`sub` 为用户 ID 的 JWT）。',
  devToken: '使用开发令牌',
  devTokenHint: '本服务器自行生成了密钥，因此可以为本机签发用户 "dev" 的令牌。',
  orPaste: '或粘贴令牌',
  tokenPlaceholder: 'eyJhbGciOi…',
  signIn: '登录',
  signOut: '退出',
  badToken: '此令牌未被接受。',
  signedInAs: '当前用户',
  sessions: '会话',
  newSessionPlaceholder: '新会话…',
  newSession: '新建会话',
  noSessions: '还没有会话，新建一个开始吧。',
  untitled: '未命名会话',
  delete: '删除',
  confirmDelete: '确认删除？',
  pickSession: '选择一个会话，或新建一个。',
  emptySession: '问点什么，或者请它画一幅画：“画一座黄昏时的灯塔”。',
  composerPlaceholder: '输入消息…（Enter 发送，Shift+Enter 换行）',
  send: '发送',
  stop: '停止',
  stopping: '正在停止…',
  modeText: '文字',
  modeImage: '图片',
  modeAuto: '自动',
  modeLabel: '回复方式',
  previews: '预览',
  you: '你',
  assistant: 'Easel',
  picture: '图片',
  imagePending: '绘制中…',
  imageReady: '完成',
  imageFailed: '未能生成图片',
  imageStopped: '已停止',
  attemptRunning: '绘制中',
  attemptOk: '成功',
  attemptFailed: '失败',
  attemptStopped: '已停止',
  of: '/',
  preview: '预览',
  turnStopped: '已停止，已保留部分回复。',
  turnFailed: '本轮失败',
  resuming: '正在接回进行中的回复…',
  truncated: '已截断',
  reasonChainExhausted: '所有图像模型均失败',
  reasonZeroImages: '模型没有返回图片',
  reasonConfigError: '未配置图像生成',
  language: 'English',
  menu: '会话',
  loadError: '无法连接服务器。',
  docs: 'API 文档',
};

export const LANGUAGES = ['en', 'zh'] as const;
export type Language = (typeof LANGUAGES)[number];

const dictionaries: Record<Language, Record<Key, string>> = { en, zh };
const STORAGE_KEY = 'easel.lang';

let current: Language =
  (localStorage.getItem(STORAGE_KEY) as Language | null) ??
  (navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en');

export const language = (): Language => current;

export const t = (key: Key): string => dictionaries[current][key];

/** Switches the language, rewrites every `data-i18n` text / `data-i18n-placeholder` in `root`. */
export function setLanguage(next: Language, root: ParentNode = document): void {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
  translate(root);
}

export function translate(root: ParentNode): void {
  for (const element of root.querySelectorAll<HTMLElement>('[data-i18n]')) {
    element.textContent = t(element.dataset.i18n as Key);
  }
  for (const element of root.querySelectorAll<HTMLInputElement>('[data-i18n-placeholder]')) {
    element.placeholder = t(element.dataset.i18nPlaceholder as Key);
  }
  for (const element of root.querySelectorAll<HTMLElement>('[data-i18n-title]')) {
    element.title = t(element.dataset.i18nTitle as Key);
    element.setAttribute('aria-label', element.title);
  }
}
