// Simulated time for the simulator: one event queue ordered by (time, insertion), and per node a
// Scheduler (the production driver's time interface) whose callbacks run only while that incarnation
// of the node is alive, wait while the node is paused, and run at the node's own clock rate.
import type { Scheduler, TimerHandle } from '../../src/server/raft-ports.js';

interface Event {
  readonly time: number;
  readonly seq: number;
  readonly run: () => void;
}

/** A min-heap of events ordered by (time, insertion sequence): ties replay deterministically. */
export class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  now = 0;

  at(time: number, run: () => void): void {
    const ev: Event = { time: Math.max(time, this.now), seq: this.seq++, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(ev, h[parent] as Event)) break;
      h[i] = h[parent] as Event;
      i = parent;
    }
    h[i] = ev;
  }

  /** Removes and returns the next event, advancing `now` to its time. */
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined) return undefined;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && before(h[r] as Event, h[l] as Event) ? r : l;
        if (!before(h[c] as Event, last)) break;
        h[i] = h[c] as Event;
        i = c;
      }
      h[i] = last;
    }
    this.now = top.time;
    return top;
  }

  get size(): number {
    return this.heap.length;
  }
}

function before(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** What a node scheduler needs to know about its node. */
export interface SchedulerHost {
  /** Whether callbacks of this incarnation may still run. */
  alive(incarnation: number): boolean;
  /** While paused (SIGSTOP), callbacks wait until this time. */
  pausedUntil(): number;
}

export class NodeScheduler implements Scheduler {
  constructor(
    private readonly queue: EventQueue,
    private readonly host: SchedulerHost,
    private readonly incarnation: number,
    /** > 1: this node's timers run slow (its ticks are longer); < 1: fast. */
    private readonly rate: number,
  ) {}

  now(): number {
    return this.queue.now;
  }

  /** Runs `fn` at `time` if the incarnation is alive, later if the node is paused then. */
  run(time: number, fn: () => void): void {
    this.queue.at(time, () => {
      if (!this.host.alive(this.incarnation)) return;
      const until = this.host.pausedUntil();
      if (until > this.queue.now) {
        this.run(until, fn);
        return;
      }
      fn();
    });
  }

  after(ms: number, fn: () => void): TimerHandle {
    let cancelled = false;
    this.run(this.queue.now + Math.round(ms * this.rate), () => {
      if (!cancelled) fn();
    });
    return { cancel: () => (cancelled = true) };
  }

  every(ms: number, fn: () => void): TimerHandle {
    let cancelled = false;
    const again = (): void => {
      this.run(this.queue.now + Math.round(ms * this.rate), () => {
        if (cancelled) return;
        fn();
        again();
      });
    };
    again();
    return { cancel: () => (cancelled = true) };
  }

  soon(fn: () => void): void {
    this.run(this.queue.now, fn);
  }
}
