import { Test } from '@nestjs/testing';
import { loadConfig } from '../config/app-config.js';
import { ConfigModule } from '../config/config.module.js';
import { DemoProvider } from './demo.provider.js';
import { LLM_PROVIDER, type LlmProvider } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';
import { ProviderModule, createProvider } from './provider.module.js';

const SECRET = { AUTH_JWT_SECRET: 'a-test-secret-of-enough-length' };

describe('ProviderModule', () => {
  it('provides the demo provider when no LLM_BASE_URL is configured', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(loadConfig(SECRET)), ProviderModule],
    }).compile();
    const provider = moduleRef.get<LlmProvider>(LLM_PROVIDER);
    expect(provider).toBeInstanceOf(DemoProvider);
    expect(provider.name).toBe('demo');
    await moduleRef.close();
  });

  it('provides the openai-compatible provider when an upstream is configured', () => {
    const config = loadConfig({
      ...SECRET,
      LLM_BASE_URL: 'http://127.0.0.1:9/api/v1',
      LLM_API_KEY: 'key',
    });
    const provider = createProvider(config);
    expect(provider).toBeInstanceOf(OpenAiCompatibleProvider);
    expect(provider.name).toBe('openai-compatible');
  });

  it('refuses an openai-compatible config without credentials', () => {
    const config = loadConfig(SECRET);
    expect(() =>
      createProvider({ ...config, provider: { ...config.provider, kind: 'openai-compatible' } }),
    ).toThrow(/LLM_BASE_URL and LLM_API_KEY/);
  });
});
