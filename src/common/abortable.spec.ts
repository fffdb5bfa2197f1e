import { lastValueFrom, take, toArray } from 'rxjs';
import { fromAbortable } from './abortable.js';

describe('fromAbortable', () => {
  it('passes values and completion through, and never aborts a producer that settled', async () => {
    let seen: AbortSignal | undefined;
    const values = await lastValueFrom(
      fromAbortable<number>(async (emit, signal) => {
        seen = signal;
        emit(1);
        emit(2);
      }).pipe(toArray()),
    );
    expect(values).toEqual([1, 2]);
    expect(seen?.aborted).toBe(false);
  });

  it('aborts the signal with the given reason when the subscriber leaves early', async () => {
    const reason = new Error('left');
    let seen: AbortSignal | undefined;
    const first = await lastValueFrom(
      fromAbortable<number>(
        (emit, signal) => {
          seen = signal;
          emit(1);
          return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        },
        () => reason,
      ).pipe(take(1)),
    );
    expect(first).toBe(1);
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe(reason);
  });

  it('errors with what the producer rejected with', async () => {
    const failure = new Error('upstream');
    await expect(
      lastValueFrom(
        fromAbortable<number>(async () => {
          throw failure;
        }),
      ),
    ).rejects.toBe(failure);
  });
});
