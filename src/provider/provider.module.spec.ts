import { Test } from '@nestjs/testing';
import { loadConfig } from '../config/app-config.js';
import { ConfigModule } from '../config/config.module.js';
import { DemoProvider } from './demo.provider.js';
import { GuardedLlmProvider } from './guarded-llm.provider.js';
import { IMAGE_PROVIDER, type ImageProvider } from './image-provider.js';
import { LLM_PROVIDER, type LlmProvider } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';
import { OpenAiImagesProvider } from './openai-images.provider.js';
import { ProviderModule, createImageProvider, createProvider } from './provider.module.js';

const SECRET = { AUTH_JWT_SECRET: 'a-test-secret-of-enough-length' };

describe('ProviderModule', () => {
  it('provides the demo providers (chat behind the guard) when no LLM_BASE_URL is configured', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(loadConfig(SECRET)), ProviderModule],
    }).compile();
    expect(moduleRef.get<LlmProvider>(LLM_PROVIDER)).toBeInstanceOf(GuardedLlmProvider);
    expect(moduleRef.get<ImageProvider>(IMAGE_PROVIDER)).toBeInstanceOf(DemoProvider);
    await moduleRef.close();
  });

  it('picks the image flavour from IMAGE_API, with its own base URL', () => {
    const upstream = { ...SECRET, LLM_BASE_URL: 'http://127.0.0.1:9/api/v1', LLM_API_KEY: 'key' };
    expect(createImageProvider(loadConfig(upstream))).toBeInstanceOf(OpenAiCompatibleProvider);
    expect(createImageProvider(loadConfig({ ...upstream, IMAGE_API: 'images' }))).toBeInstanceOf(
      OpenAiImagesProvider,
    );
    expect(
      createImageProvider(
        loadConfig({
          ...SECRET,
          IMAGE_API: 'images',
          IMAGE_BASE_URL: 'http://x.test/v1',
          IMAGE_API_KEY: 'k',
        }),
      ),
    ).toBeInstanceOf(OpenAiImagesProvider);
  });

  it('provides the openai-compatible provider when an upstream is configured', () => {
    const config = loadConfig({
      ...SECRET,
      LLM_BASE_URL: 'http://127.0.0.1:9/api/v1',
      LLM_API_KEY: 'key',
    });
    expect(createProvider(config)).toBeInstanceOf(GuardedLlmProvider);
  });

  it('refuses an openai-compatible config without credentials', () => {
    const config = loadConfig(SECRET);
    expect(() =>
      createProvider({ ...config, provider: { ...config.provider, kind: 'openai-compatible' } }),
    ).toThrow(/LLM_BASE_URL and LLM_API_KEY/);
  });
});
