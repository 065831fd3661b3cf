// Bulk reads (ListContainer, ListPipelines, ListDatanodes) take turns on the event loop.
//
// Raft runs on the same event loop as the client port, and a leader releases the reads waiting for
// a read barrier all at once (one Ready confirms them together). Every released read then went on,
// in the same microtask drain, to materialize, encode and serialize its page: one ListContainer of
// 4,096 containers is about 15 ms of CPU, so 64 of them held the loop for about a second. Timers
// (the leader's heartbeats) and socket reads (its followers' acknowledgements) do not run during a
// microtask drain, so the followers timed out and deposed a leader that was only busy.
//
// Here each bulk read's work runs in a turn of its own (setImmediate, scheduling the next turn
// from the turn before, so that the next one comes after the loop's timers and I/O, not in the same
// check phase), one read per turn, in arrival order. The caller's continuation (encoding the page
// and writing the answer) runs in the microtasks right after the work, so a whole answer is made in
// its turn, and between any two of them the loop serves Raft and the other calls. A hold-up of the
// loop is now one page's work, however many reads are waiting.

/** Runs a callback in a later turn of the event loop (setImmediate in the node; a queue in tests). */
export type NextTurn = (callback: () => void) => void;

export class ReadTurns {
  private readonly waiting: Array<() => void> = [];
  private scheduled = false;

  constructor(private readonly nextTurn: NextTurn = (callback) => void setImmediate(callback)) {}

  /** Reads waiting for their turn. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Runs `work` in a turn of its own, after every read queued before it. */
  take<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => {
        try {
          resolve(work());
        } catch (error) {
          reject(error as Error);
        }
      });
      this.scheduleTurn();
    });
  }

  private scheduleTurn(): void {
    if (this.scheduled || this.waiting.length === 0) return;
    this.scheduled = true;
    this.nextTurn(() => {
      this.scheduled = false;
      const work = this.waiting.shift();
      // The next turn is asked for before this one's work: from inside a turn it lands in the
      // loop's next iteration, after the timers and I/O that are due.
      this.scheduleTurn();
      work?.();
    });
  }
}
