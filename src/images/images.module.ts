import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesController } from './images.controller.js';
import { ImagesRepository } from './images.repository.js';

/** Stored images: their bytes, the signed URLs that serve them, and the public image route. */
@Module({
  imports: [DatabaseModule],
  controllers: [ImagesController],
  providers: [ImageUrlSigner, ImagesRepository],
  exports: [ImageUrlSigner, ImagesRepository],
})
export class ImagesModule {}
