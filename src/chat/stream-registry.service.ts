import { Injectable } from '@nestjs/common';

/**
 * Open turn streams of this process, per user. A slot is taken before any database write, so
 * the MAX_STREAMS_PER_USER check and the reservation are one synchronous step (no race).
 */
@Injectable()
export class StreamRegistry {
  private readonly perUser = new Map<string, number>();

  get open(): number {
    let total = 0;
    for (const count of this.perUser.values()) total += count;
    return total;
  }

  /** Takes a slot, or returns null when the user already has `max` open streams. */
  acquire(userId: string, max: number): (() => void) | null {
    const current = this.perUser.get(userId) ?? 0;
    if (current >= max) return null;
    this.perUser.set(userId, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perUser.get(userId) ?? 1) - 1;
      if (left <= 0) this.perUser.delete(userId);
      else this.perUser.set(userId, left);
    };
  }
}
