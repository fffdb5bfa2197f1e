import { Module } from '@nestjs/common';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DemoProvider } from './demo.provider.js';
import { LLM_PROVIDER, type LlmProvider } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';

export function createProvider(config: AppConfig): LlmProvider {
  const { kind, baseUrl, apiKey, demoTokenDelayMs, demoImageDelayMs } = config.provider;
  if (kind === 'openai-compatible') {
    // loadConfig guarantees both; this guards hand-built configs (tests).
    if (!baseUrl || !apiKey) {
      throw new Error('The openai-compatible provider needs both LLM_BASE_URL and LLM_API_KEY');
    }
    return new OpenAiCompatibleProvider({ baseUrl, apiKey });
  }
  return new DemoProvider({ tokenDelayMs: demoTokenDelayMs, imageDelayMs: demoImageDelayMs });
}

/** Provides the configured {@link LlmProvider} under {@link LLM_PROVIDER}. */
@Module({
  providers: [{ provide: LLM_PROVIDER, useFactory: createProvider, inject: [APP_CONFIG] }],
  exports: [LLM_PROVIDER],
})
export class ProviderModule {}
