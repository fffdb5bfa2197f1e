import { setImmediate as nextPass } from 'node:timers/promises';
import { ApiError } from '../../common/api-error.js';
import type { AppConfig } from '../../config/app-config.js';
import { type StartSlot, TurnAdmissionService } from './turn-admission.service.js';

const admission = (slots: number): TurnAdmissionService =>
  new TurnAdmissionService({ turnStartConcurrency: slots } as AppConfig);

const FAR = (): number => Date.now() + 60_000;
const open = (): AbortSignal => new AbortController().signal;

/** Which of `entries` have settled so far, without waiting for them. */
async function settled(entries: readonly Promise<unknown>[]): Promise<boolean[]> {
  const state = entries.map(() => false);
  entries.forEach((entry, index) =>
    entry.then(
      () => (state[index] = true),
      () => (state[index] = true),
    ),
  );
  await Promise.resolve();
  await Promise.resolve();
  return state;
}

describe('TurnAdmissionService', () => {
  it('admits up to the limit at once; the next waits until a slot is given back', async () => {
    const gate = admission(2);
    const first = await gate.enter(FAR(), open());
    await gate.enter(FAR(), open());
    const third = gate.enter(FAR(), open());
    expect(await settled([third])).toEqual([false]);
    expect(gate.queued).toBe(1);

    first();
    // Handed over on a later pass of the event loop, so I/O runs between starts.
    expect(await settled([third])).toEqual([false]);
    await nextPass();
    expect(await settled([third])).toEqual([true]);
    expect(gate.queued).toBe(0);
  });

  it('admits waiters in arrival order', async () => {
    const gate = admission(1);
    let slot = await gate.enter(FAR(), open());
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      gate.enter(FAR(), open()).then((next) => {
        order.push(n);
        return next;
      }),
    );
    for (const waiter of waiters) {
      slot();
      slot = await waiter;
    }
    expect(order).toEqual([1, 2, 3]);
  });

  it('a waiter gives up at its deadline with the pre-stream 503, and leaves the queue', async () => {
    const gate = admission(1);
    const slot = await gate.enter(FAR(), open());
    const late = gate.enter(Date.now() + 20, open());
    const next = gate.enter(FAR(), open());
    const error: unknown = await late.catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).getStatus()).toBe(503);
    expect((error as ApiError).getResponse()).toMatchObject({ code: 'unavailable' });
    expect(gate.queued).toBe(1);

    slot();
    await expect(next).resolves.toEqual(expect.any(Function));
  });

  it('a waiter whose client leaves rejects with the reason and leaves the queue', async () => {
    const gate = admission(1);
    const slot = await gate.enter(FAR(), open());
    const client = new AbortController();
    const leaving = gate.enter(FAR(), client.signal);
    const next = gate.enter(FAR(), open());
    const reason = new Error('client left');
    client.abort(reason);
    await expect(leaving).rejects.toBe(reason);
    expect(gate.queued).toBe(1);

    slot();
    await expect(next).resolves.toEqual(expect.any(Function));
  });

  it('a client already gone takes no slot', async () => {
    const gate = admission(1);
    const gone = new AbortController();
    gone.abort(new Error('gone'));
    await expect(gate.enter(FAR(), gone.signal)).rejects.toThrow('gone');
    const slot = await gate.enter(FAR(), open());
    expect(typeof slot).toBe('function');
  });

  it('giving a slot back twice frees it once', async () => {
    const gate = admission(1);
    const slot: StartSlot = await gate.enter(FAR(), open());
    slot();
    slot();
    await nextPass();
    await gate.enter(FAR(), open());
    const client = new AbortController();
    const waiting = gate.enter(FAR(), client.signal);
    await nextPass();
    expect(await settled([waiting])).toEqual([false]);
    expect(gate.queued).toBe(1);
    client.abort(new Error('done'));
    await expect(waiting).rejects.toThrow('done');
  });
});
