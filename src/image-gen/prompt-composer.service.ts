import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { MetricsService } from '../observability/metrics.service.js';
import { type ChatMessage, type LlmProvider, LLM_PROVIDER } from '../provider/llm-provider.js';
import { runWithDeadline } from './deadline.js';

/** The longest prompt we send to an image model (the contract's `image_prompt` limit). */
export const MAX_COMPOSED_PROMPT_CHARS = 2000;
/** How much of the conversation the composer sees: enough for "make it blue", not a transcript. */
const CONTEXT_MESSAGES = 6;
const CONTEXT_MESSAGE_CHARS = 1000;

const INSTRUCTION = [
  'You write prompts for an image generation model.',
  'Given a request and the conversation it comes from, write one detailed image prompt:',
  'subject, composition, style, lighting, colours and mood, resolving references such as',
  '"it" or "the same, but at night" from the conversation.',
  'Reply with the prompt only: no preamble, no quotes, no markdown, no explanation.',
].join(' ');

export interface ComposeInput {
  readonly subject: string;
  /** Oldest first; only the last few user/assistant messages are used. */
  readonly context: readonly ChatMessage[];
}

/** Turns a short request into a detailed image prompt with one LLM call. */
@Injectable()
export class PromptComposerService {
  private readonly logger = new Logger(PromptComposerService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LLM_PROVIDER) private readonly provider: LlmProvider,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * The composed prompt, or null when composing is off, failed, timed out (after
   * `IMAGE_ATTEMPT_TIMEOUT_MS`, so a stuck composer cannot eat the turn) or answered nothing.
   * Rejects with `signal.reason` when `signal` aborts: the caller has gone, there is no fallback.
   */
  async compose(input: ComposeInput, signal?: AbortSignal): Promise<string | null> {
    const model = this.config.image.composeModel;
    if (model === null) return null;
    const messages: ChatMessage[] = [
      { role: 'system', content: INSTRUCTION },
      { role: 'user', content: describe(input) },
    ];
    const sent = performance.now();
    try {
      const reply = await runWithDeadline(signal, this.config.image.attemptTimeoutMs, (s) =>
        this.provider.complete({ model, messages, signal: s }),
      );
      this.metrics.upstreamLatency('compose', model, performance.now() - sent);
      const prompt = reply.trim().slice(0, MAX_COMPOSED_PROMPT_CHARS).trim();
      return prompt === '' ? null : prompt;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      this.metrics.upstreamLatency('compose', model, performance.now() - sent);
      this.logger.warn(
        `Prompt composing with ${model} failed, using the subject as is: ${String(error)}`,
      );
      return null;
    }
  }
}

function describe(input: ComposeInput): string {
  const recent = input.context
    .filter((message) => message.role !== 'system')
    .slice(-CONTEXT_MESSAGES)
    .map((message) => `${message.role}: ${clip(message.content, CONTEXT_MESSAGE_CHARS)}`);
  const conversation = recent.length > 0 ? `Conversation so far:\n${recent.join('\n')}\n\n` : '';
  return `${conversation}Image request: ${input.subject}`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
