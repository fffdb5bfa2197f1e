import { lastValueFrom, toArray } from 'rxjs';
import { FrameLog } from './frame-log.js';
import { LiveTurnHandle } from './turn-hub.service.js';
import type { TurnRun } from './turn-run.js';

/** A live `cancel` turn with no grace; counts how often its producer is abandoned. */
function handle(): { live: LiveTurnHandle; abandoned: () => number } {
  let count = 0;
  const live = new LiveTurnHandle({} as TurnRun, 'alice', 'cancel', new FrameLog(), 0, () => {
    count += 1;
  });
  return { live, abandoned: () => count };
}

describe('LiveTurnHandle', () => {
  it('abandons a cancel turn whose only client left before its stream was subscribed', () => {
    const { live, abandoned } = handle();
    const controller = new AbortController();
    live.attach$(0, controller.signal);
    expect(abandoned()).toBe(0);
    controller.abort();
    expect(abandoned()).toBe(1);
  });

  it('abandons it too when the client had already left before it attached', async () => {
    const { live, abandoned } = handle();
    const controller = new AbortController();
    controller.abort();
    const stream = live.attach$(0, controller.signal);
    expect(abandoned()).toBe(1);
    // The stream of a place already given back ends at once, and gives nothing back twice.
    expect(await lastValueFrom(stream.pipe(toArray()))).toEqual([]);
    expect(abandoned()).toBe(1);
  });
});
