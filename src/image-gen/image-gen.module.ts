import { Module } from '@nestjs/common';
import { ProviderModule } from '../provider/provider.module.js';
import { ImageGenService } from './image-gen.service.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesController } from './images.controller.js';
import { ImagesRepository } from './images.repository.js';
import { PromptComposer } from './prompt-composer.service.js';

/** Image generation (prompt composing, the model chain) and the signed image URLs. */
@Module({
  imports: [ProviderModule],
  controllers: [ImagesController],
  providers: [ImageGenService, PromptComposer, ImageUrlSigner, ImagesRepository],
  exports: [ImageGenService, PromptComposer, ImageUrlSigner, ImagesRepository],
})
export class ImageGenModule {}
