import { Injectable } from '@nestjs/common';

/** Whether the process is shutting down; readiness fails then so a gateway stops routing here. */
@Injectable()
export class Lifecycle {
  draining = false;
}
