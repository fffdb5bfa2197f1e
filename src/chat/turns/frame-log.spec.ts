import { lastValueFrom, toArray } from 'rxjs';
import { FrameLog, type LoggedFrame, PERSIST_BATCH_MS } from './frame-log.js';
import { deltaFrame, finalFrame, metaFrame } from './frames.js';

const ids = (frames: readonly LoggedFrame[]): number[] => frames.map((frame) => frame.id);

describe('FrameLog', () => {
  it('numbers frames from 1 and serialises each once: every follower gets the same bytes', async () => {
    const log = new FrameLog();
    const early = lastValueFrom(log.follow$(0).pipe(toArray()));
    log.append(metaFrame('m', 'reply_text', 'model'));
    log.append(deltaFrame('m', 'Hi'));
    const late = lastValueFrom(log.follow$(1).pipe(toArray()));
    log.append(finalFrame('u', ['m'], 'reply_text', false));

    const [all, after1] = await Promise.all([early, late]);
    expect(ids(all)).toEqual([1, 2, 3]);
    expect(ids(after1)).toEqual([2, 3]);
    expect(after1[0]).toBe(all[1]);
    expect(JSON.parse(all[1].json)).toEqual({ type: 'delta', message_id: 'm', content: 'Hi' });
    expect(all.map((frame) => frame.terminal)).toEqual([false, false, true]);
    expect(log.ended).toBe(true);
  });

  it('replays an ended log after any cursor and completes at once; ignores frames after the end', async () => {
    const log = new FrameLog();
    log.append(deltaFrame('m', 'a'));
    log.append(finalFrame('u', ['m'], 'reply_text', false));
    log.append(deltaFrame('m', 'late'));
    expect(ids(await lastValueFrom(log.follow$(1).pipe(toArray())))).toEqual([2]);
    expect(await lastValueFrom(log.follow$(2).pipe(toArray()))).toEqual([]);
    expect(log.length).toBe(2);
  });

  it('a persisted log writes in batches and publishes its terminal frame only once written', async () => {
    const log = new FrameLog();
    const written: number[][] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    log.append(deltaFrame('m', 'a'));
    log.persist(async (batch) => {
      written.push(ids(batch));
      if (batch.some((frame) => frame.terminal)) await gate;
    });
    log.append(deltaFrame('m', 'b'));
    const seen: number[] = [];
    log.follow$(0).subscribe((frame) => seen.push(frame.id));
    log.append(finalFrame('u', ['m'], 'reply_text', false));

    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual([1, 2]);
    release();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen).toEqual([1, 2, 3]);
    expect(written.flat()).toEqual([1, 2, 3]);
  });

  it('a persisted log writes the frames of one batch window in one write', async () => {
    const log = new FrameLog();
    const written: number[][] = [];
    log.persist(async (batch) => {
      written.push(ids(batch));
    });
    log.append(deltaFrame('m', 'a'));
    log.append(deltaFrame('m', 'b'));
    log.append(deltaFrame('m', 'c'));
    expect(written).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, PERSIST_BATCH_MS + 20));
    log.append(deltaFrame('m', 'd'));
    await new Promise((resolve) => setTimeout(resolve, PERSIST_BATCH_MS + 20));
    expect(written).toEqual([[1, 2, 3], [4]]);
  });

  it('close() ends every follower without a terminal frame', async () => {
    const log = new FrameLog();
    const following = lastValueFrom(log.follow$(0).pipe(toArray()));
    log.append(deltaFrame('m', 'a'));
    log.close();
    expect(ids(await following)).toEqual([1]);
  });
});
