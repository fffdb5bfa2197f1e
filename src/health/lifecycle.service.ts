import { Injectable, type OnModuleDestroy } from '@nestjs/common';

/**
 * Whether the process is shutting down: readiness fails then so a gateway stops routing here,
 * and new turns are refused. It flips itself on Nest's first shutdown hook (`onModuleDestroy`
 * runs before every `beforeApplicationShutdown`), so the turns' drain always sees it set.
 */
@Injectable()
export class LifecycleService implements OnModuleDestroy {
  private shuttingDown = false;

  get draining(): boolean {
    return this.shuttingDown;
  }

  onModuleDestroy(): void {
    this.shuttingDown = true;
  }
}
