import { Module } from '@nestjs/common';
import { ObservabilityModule } from '../observability/observability.module.js';
import { ProviderModule } from '../provider/provider.module.js';
import { ImageGenService } from './image-gen.service.js';
import { PromptComposerService } from './prompt-composer.service.js';

/** Image generation: the prompt composer, the attempt plan and the fallback chain of models. */
@Module({
  imports: [ProviderModule, ObservabilityModule],
  providers: [ImageGenService, PromptComposerService],
  exports: [ImageGenService],
})
export class ImageGenModule {}
