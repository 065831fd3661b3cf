// The containers the state machine holds in memory, stored by column: one typed-array slot per
// container and field instead of one object per container (1 M containers as objects in a Map took
// ~500 MB; as columns they take ~27 MB). Rows are kept in ascending container id order (ids are
// handed out increasing and scm.db iterates them in key order, so rows are only ever appended);
// strings (pipeline ids, owners) are interned; numeric fields that are zero in every row so far
// (usedBytes, numberOfKeys, deleteTransactionId, sequenceId: no command sets them yet) have no
// column until a row needs one. A ContainerInfo object is built only for what a query returns.
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES, type ContainerInfo, type LifeCycleState } from './model.js';

const INITIAL_CAPACITY = 1_024;

/** Ordinal of each enum value in its list: the code a column stores. */
function codes<T extends string>(values: readonly T[]): ReadonlyMap<string, number> {
  return new Map(values.map((v, i) => [v, i]));
}
const STATE_CODES = codes(LIFE_CYCLE_STATES);
const TYPE_CODES = codes(REPLICATION_TYPES);
const FACTOR_CODES = codes(REPLICATION_FACTORS);

function code(map: ReadonlyMap<string, number>, value: string, what: string): number {
  const c = map.get(value);
  if (c === undefined) throw new Error(`unknown ${what} ${JSON.stringify(value)}`);
  return c;
}

export const stateCode = (state: LifeCycleState): number => code(STATE_CODES, state, 'LifeCycleState');

/** The optional numeric columns: absent while every row holds 0. */
type SparseField = 'usedBytes' | 'numberOfKeys' | 'deleteTransactionId' | 'sequenceId';
const SPARSE_FIELDS: readonly SparseField[] = ['usedBytes', 'numberOfKeys', 'deleteTransactionId', 'sequenceId'];

/** Strings stored once, referred to by number. Never shrinks (pipeline ids and owners are few). */
export class StringTable {
  private readonly values: string[] = [];
  private readonly ids = new Map<string, number>();

  intern(value: string): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(value);
      this.ids.set(value, id);
    }
    return id;
  }

  /** The id of a string already interned, if it was. */
  find(value: string): number | undefined {
    return this.ids.get(value);
  }

  get(id: number): string {
    return this.values[id] as string;
  }
}

/** The fields of one row given as numbers (codes and interned ids): the loader's fast path. */
export interface ContainerRow {
  containerID: number;
  state: number;
  pipeline: number;
  usedBytes: number;
  numberOfKeys: number;
  stateEnterTime: number;
  owner: number;
  deleteTransactionId: number;
  sequenceId: number;
  replicationType: number;
  replicationFactor: number;
}

export class ContainerTable {
  readonly strings = new StringTable();
  private lengthValue = 0;
  private capacity: number;
  private ids: Float64Array;
  private states: Uint8Array;
  private types: Uint8Array;
  private factors: Uint8Array;
  private pipelines: Uint32Array;
  private owners: Uint32Array;
  private stateEnterTimes: Float64Array;
  private readonly sparse: Record<SparseField, Float64Array | undefined> = {
    usedBytes: undefined,
    numberOfKeys: undefined,
    deleteTransactionId: undefined,
    sequenceId: undefined,
  };
  private readonly counts = new Float64Array(LIFE_CYCLE_STATES.length);

  /** `capacityHint`: how many rows to make room for up front (e.g. the last container id handed out). */
  constructor(capacityHint = 0) {
    this.capacity = Math.max(INITIAL_CAPACITY, Math.min(capacityHint, 1 << 26));
    this.ids = new Float64Array(this.capacity);
    this.states = new Uint8Array(this.capacity);
    this.types = new Uint8Array(this.capacity);
    this.factors = new Uint8Array(this.capacity);
    this.pipelines = new Uint32Array(this.capacity);
    this.owners = new Uint32Array(this.capacity);
    this.stateEnterTimes = new Float64Array(this.capacity);
  }

  get length(): number {
    return this.lengthValue;
  }

  /** The largest container id held, or undefined when empty. */
  get lastId(): number | undefined {
    return this.lengthValue === 0 ? undefined : (this.ids[this.lengthValue - 1] as number);
  }

  countInState(state: LifeCycleState): number {
    return this.counts[stateCode(state)] as number;
  }

  /** Row of container `id`, or -1. */
  rowOf(id: number): number {
    const n = this.lengthValue;
    if (n === 0) return -1;
    // Ids are usually dense (1, 2, 3, …): try the row the id would have, then search.
    const guess = id - (this.ids[0] as number);
    if (guess >= 0 && guess < n && this.ids[guess] === id) return guess;
    const row = this.lowerBound(id);
    return row < n && this.ids[row] === id ? row : -1;
  }

  /** First row whose id is ≥ id. */
  lowerBound(id: number): number {
    let lo = 0;
    let hi = this.lengthValue;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] as number) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  idAt(row: number): number {
    return this.ids[row] as number;
  }

  stateCodeAt(row: number): number {
    return this.states[row] as number;
  }

  pipelineAt(row: number): number {
    return this.pipelines[row] as number;
  }

  get(id: number): ContainerInfo | undefined {
    const row = this.rowOf(id);
    return row < 0 ? undefined : this.materialize(row);
  }

  /** A frozen ContainerInfo for a row, fields in the order the decoder and allocation give them. */
  materialize(row: number): ContainerInfo {
    return Object.freeze({
      containerID: this.ids[row] as number,
      state: LIFE_CYCLE_STATES[this.states[row] as number] as LifeCycleState,
      pipelineID: this.strings.get(this.pipelines[row] as number),
      usedBytes: this.sparse.usedBytes?.[row] ?? 0,
      numberOfKeys: this.sparse.numberOfKeys?.[row] ?? 0,
      stateEnterTime: this.stateEnterTimes[row] as number,
      owner: this.strings.get(this.owners[row] as number),
      deleteTransactionId: this.sparse.deleteTransactionId?.[row] ?? 0,
      sequenceId: this.sparse.sequenceId?.[row] ?? 0,
      replicationType: REPLICATION_TYPES[this.types[row] as number] as ContainerInfo['replicationType'],
      replicationFactor: REPLICATION_FACTORS[this.factors[row] as number] as ContainerInfo['replicationFactor'],
    });
  }

  /** The row of a container, as numbers. */
  toRow(c: ContainerInfo): ContainerRow {
    return {
      containerID: c.containerID,
      state: code(STATE_CODES, c.state, 'LifeCycleState'),
      pipeline: this.strings.intern(c.pipelineID),
      usedBytes: c.usedBytes,
      numberOfKeys: c.numberOfKeys,
      stateEnterTime: c.stateEnterTime,
      owner: this.strings.intern(c.owner),
      deleteTransactionId: c.deleteTransactionId,
      sequenceId: c.sequenceId,
      replicationType: code(TYPE_CODES, c.replicationType, 'ReplicationType'),
      replicationFactor: code(FACTOR_CODES, c.replicationFactor, 'ReplicationFactor'),
    };
  }

  /** Adds a container whose id is larger than every id held. */
  append(c: ContainerInfo): void {
    this.appendRow(this.toRow(c));
  }

  /** Adds a row whose id is larger than every id held (codes and string ids must be valid). */
  appendRow(r: ContainerRow): void {
    const n = this.lengthValue;
    if (n > 0 && r.containerID <= (this.ids[n - 1] as number)) {
      throw new Error(`containers must be added in ascending id order: ${r.containerID} after ${this.ids[n - 1]}`);
    }
    if (n === this.capacity) this.grow();
    this.lengthValue = n + 1;
    this.ids[n] = r.containerID;
    this.writeRow(n, r);
    this.counts[r.state] = (this.counts[r.state] as number) + 1;
  }

  /** Replaces the fields of an existing container (same id). */
  update(c: ContainerInfo): void {
    const row = this.rowOf(c.containerID);
    if (row < 0) throw new Error(`container ${c.containerID} is not in the table`);
    const r = this.toRow(c);
    const oldState = this.states[row] as number;
    this.counts[oldState] = (this.counts[oldState] as number) - 1;
    this.writeRow(row, r);
    this.counts[r.state] = (this.counts[r.state] as number) + 1;
  }

  private writeRow(row: number, r: ContainerRow): void {
    this.states[row] = r.state;
    this.pipelines[row] = r.pipeline;
    this.owners[row] = r.owner;
    this.stateEnterTimes[row] = r.stateEnterTime;
    this.types[row] = r.replicationType;
    this.factors[row] = r.replicationFactor;
    for (const field of SPARSE_FIELDS) {
      const value = r[field];
      let column = this.sparse[field];
      if (column === undefined) {
        if (value === 0) continue;
        column = this.sparse[field] = new Float64Array(this.capacity);
      }
      column[row] = value;
    }
  }

  private grow(): void {
    const capacity = Math.ceil(this.capacity * 1.5);
    const grown = <A extends Float64Array | Uint32Array | Uint8Array>(old: A, make: (n: number) => A): A => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    const f64 = (n: number) => new Float64Array(n);
    this.ids = grown(this.ids, f64);
    this.stateEnterTimes = grown(this.stateEnterTimes, f64);
    this.states = grown(this.states, (n) => new Uint8Array(n));
    this.types = grown(this.types, (n) => new Uint8Array(n));
    this.factors = grown(this.factors, (n) => new Uint8Array(n));
    this.pipelines = grown(this.pipelines, (n) => new Uint32Array(n));
    this.owners = grown(this.owners, (n) => new Uint32Array(n));
    for (const field of SPARSE_FIELDS) {
      const column = this.sparse[field];
      if (column !== undefined) this.sparse[field] = grown(column, f64);
    }
    this.capacity = capacity;
  }
}
