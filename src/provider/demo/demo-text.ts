import { createHash } from 'node:crypto';
import { type ChatMessage, type Usage } from '../llm-provider.js';

const HAN = /\p{Script=Han}/u;

/** SHA-256 of the parts, so the same input always yields the same ids, replies and pictures. */
export function digest(...parts: readonly string[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\u0000');
  return hash.digest();
}

function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'user') return messages[i].content.replace(/\s+/g, ' ').trim();
  }
  return '';
}

function shorten(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  const cut = chars.slice(0, max).join('');
  const space = cut.lastIndexOf(' ');
  return `${(space > max / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

function topicOf(text: string): string {
  return shorten(text.replace(/[\s.!?。！？…]+$/u, ''), 60);
}

const ENGLISH_OPENERS = [
  (topic: string) => `Great question about “${topic}”.`,
  (topic: string) => `Let's talk about “${topic}”.`,
  (topic: string) => `Happy to help with “${topic}”.`,
];

const CHINESE_OPENERS = [
  (topic: string) => `关于「${topic}」，这是个好问题。`,
  (topic: string) => `我们来聊聊「${topic}」。`,
  (topic: string) => `很高兴和你讨论「${topic}」。`,
];

const ENGLISH_BODY =
  "I'm Easel's offline demo model, so this reply is written locally rather than by a real " +
  'language model. Set LLM_BASE_URL and LLM_API_KEY to connect an OpenAI-compatible endpoint, ' +
  'and this same stream will carry genuine answers. Until then, picture a short overview of the ' +
  'topic, a few practical points, and an invitation to dig deeper whenever you like.';

const CHINESE_BODY =
  '我是 Easel 的离线演示模型，这段回复在本地生成，并非来自真正的大语言模型。' +
  '设置 LLM_BASE_URL 和 LLM_API_KEY 连接一个兼容 OpenAI 的服务后，同一条流就会带来真实的回答。' +
  '在那之前，可以想象这里有一段主题概述、几条实用建议，以及欢迎你继续深入提问的邀请。';

/** The demo's chat reply: echoes the last user message, in Chinese when the user wrote Chinese. */
export function demoReply(messages: readonly ChatMessage[]): string {
  const text = lastUserText(messages);
  const pick = digest(text)[0];
  if (HAN.test(text)) {
    const opener = CHINESE_OPENERS[pick % CHINESE_OPENERS.length];
    return `${opener(topicOf(text) || '你的消息')}${CHINESE_BODY}`;
  }
  const opener = ENGLISH_OPENERS[pick % ENGLISH_OPENERS.length];
  return `${opener(topicOf(text) || 'your message')} ${ENGLISH_BODY}`;
}

/** Word-sized pieces whose concatenation is exactly `text`; Han text goes two characters at a time. */
export function tokenize(text: string): string[] {
  return text.match(/\s*(?:\p{Script=Han}{1,2}|[^\s\p{Script=Han}]+)|\s+$/gu) ?? [];
}

function estimateTokens(text: string): number {
  const han = text.match(/\p{Script=Han}/gu)?.length ?? 0;
  return han + Math.ceil((text.length - han) / 4);
}

export function demoUsage(messages: readonly ChatMessage[], completionTokens: number): Usage {
  // Roughly what an OpenAI-style tokenizer charges: content plus a few tokens of framing each.
  const promptTokens = messages.reduce((sum, m) => sum + estimateTokens(m.content) + 4, 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

const REQUEST_PREFIX =
  /^(?:(?:please|can you|could you)\s+)*(?:draw|paint|sketch|generate|create|make|show)\s+(?:me\s+)?(?:(?:an?|the)\s+)?(?:(?:image|picture|illustration|drawing|painting|photo)\s+of\s+)?/i;
const CHINESE_REQUEST_PREFIX =
  /^(?:请|帮我|给我|能不能|可以)*(?:画|生成|绘制)(?:一张|一幅|一个)?(?:图片?|画)?(?:[:：])?/u;

/**
 * The subject an image prompt is about: the composer's "Image request:" line (or a "Subject:"
 * line) when present, else the last user text.
 */
function subjectOf(messages: readonly ChatMessage[]): string {
  const raw = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const labelled = /^\s*(?:image request|subject)\s*[:：]\s*(.+)$/im.exec(raw)?.[1];
  const line = (labelled ?? raw.split('\n').find((l) => l.trim() !== '') ?? '').trim();
  const subject = line
    .replace(REQUEST_PREFIX, '')
    .replace(CHINESE_REQUEST_PREFIX, '')
    .replace(/[\s.!?。！？]+$/u, '')
    .trim();
  return shorten(subject, 200) || 'a quiet landscape';
}

/** The demo composer's answer: the subject wrapped in stock illustration vocabulary. */
export function demoImagePrompt(messages: readonly ChatMessage[]): string {
  return `A detailed illustration of ${subjectOf(messages)}, soft light, rich colour, gentle depth of field, balanced composition`;
}
