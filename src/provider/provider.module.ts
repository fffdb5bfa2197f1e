import { Module } from '@nestjs/common';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DemoProvider } from './demo.provider.js';
import { GuardedLlmProvider } from './guarded-llm.provider.js';
import { IMAGE_PROVIDER, type ImageProvider } from './image-provider.js';
import { LLM_PROVIDER, type LlmProvider } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';
import { OpenAiImagesProvider } from './openai-images.provider.js';

function demoProvider(config: AppConfig): DemoProvider {
  const { demoTokenDelayMs, demoImageDelayMs } = config.provider;
  return new DemoProvider({ tokenDelayMs: demoTokenDelayMs, imageDelayMs: demoImageDelayMs });
}

/** The chat provider (`LLM_BASE_URL`), behind the time limits and text sanitising. */
export function createProvider(config: AppConfig): LlmProvider {
  const { kind, baseUrl, apiKey, chatMaxTokens } = config.provider;
  let inner: LlmProvider;
  if (kind === 'openai-compatible') {
    // loadConfig guarantees both; this guards hand-built configs (tests).
    if (!baseUrl || !apiKey) {
      throw new Error('The openai-compatible provider needs both LLM_BASE_URL and LLM_API_KEY');
    }
    inner = new OpenAiCompatibleProvider({ baseUrl, apiKey, maxTokens: chatMaxTokens });
  } else {
    inner = demoProvider(config);
  }
  return new GuardedLlmProvider(inner, {
    firstTokenTimeoutMs: config.provider.chatFirstTokenTimeoutMs,
    idleTimeoutMs: config.provider.chatIdleTimeoutMs,
  });
}

/** The image provider (`IMAGE_BASE_URL`, `IMAGE_API`); its time limit is the attempt's own. */
export function createImageProvider(config: AppConfig): ImageProvider {
  const { kind, baseUrl, apiKey } = config.imageProvider;
  if (kind === 'demo') return demoProvider(config);
  if (!baseUrl || !apiKey) {
    throw new Error('An image upstream needs both IMAGE_BASE_URL and IMAGE_API_KEY');
  }
  return kind === 'images'
    ? new OpenAiImagesProvider({ baseUrl, apiKey })
    : new OpenAiCompatibleProvider({ baseUrl, apiKey });
}

/** Provides the configured {@link LlmProvider} and {@link ImageProvider}. */
@Module({
  providers: [
    { provide: LLM_PROVIDER, useFactory: createProvider, inject: [APP_CONFIG] },
    { provide: IMAGE_PROVIDER, useFactory: createImageProvider, inject: [APP_CONFIG] },
  ],
  exports: [LLM_PROVIDER, IMAGE_PROVIDER],
})
export class ProviderModule {}
