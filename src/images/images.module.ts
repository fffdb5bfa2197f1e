import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module.js';
import { ImageStore } from './image-store.js';
import { imageStoreProvider } from './image-store.provider.js';
import { ImageSweepJob } from './image-sweep.job.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesController } from './images.controller.js';
import { ImagesRepository } from './images.repository.js';

/** Stored images: their rows and bytes, the signed URLs that serve them, the public image route. */
@Module({
  imports: [DatabaseModule],
  controllers: [ImagesController],
  providers: [ImageUrlSigner, ImagesRepository, imageStoreProvider, ImageSweepJob],
  exports: [ImageUrlSigner, ImagesRepository, ImageStore],
})
export class ImagesModule {}
